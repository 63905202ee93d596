import { AuthError, describeRoute, sendProblem, signInResultSchema, type LinkIntent, type ProviderContext, type RouteDoc, type SignInResult, type VerificationResult, type VerifiedIdentity } from "@erebus/core/provider";
import type { Request, Response, Router } from "express";
import * as z from "zod";
import { createAttemptStore, type AttemptData } from "./attempts.js";
import { runStrategy, type StrategyOutcome } from "./drive.js";
import { passportErrors } from "./errors.js";
import { mapIdentity } from "./identity.js";
import type { ResolvedPassportOptions } from "./options.js";
import { refusalOf, type Phase } from "./outcome.js";

const SIGN_IN_ERRORS = ["ERR_PASSPORT_PROFILE_INVALID", "ERR_PASSPORT_STRATEGY_ERROR", "ERR_PASSPORT_TIMEOUT", "ERR_USER_DEACTIVATED", "ERR_IDENTITY_INVALID", "ERR_SOURCE_TYPE_INVALID"];
/** Core's link intent (issue 13): a signed-in person with a fresh session attaches this identity instead of signing in. */
const linkFields = {
  intent: z.enum(["sign-in", "link", "reauthenticate"]).optional().describe('"link": attach the identity to the signed-in person (fresh session required) instead of signing in'),
  merge: z.enum(["true", "false"]).optional().describe("with intent=link: take in the person the identity belongs to"),
};
const LINK_ERRORS = ["ERR_UNAUTHENTICATED", "ERR_SESSION_INVALID", "ERR_REAUTH_REQUIRED", "ERR_LINK_SESSION_MISMATCH", "ERR_REAUTH_IDENTITY_FOREIGN", "ERR_IDENTITY_LINKED_ELSEWHERE", "ERR_IDENTITY_LIMIT", "ERR_LINK_CONFLICT"];
const startQuery = z.object({ returnTo: z.string().max(512).optional().describe("a path on this site to land on after sign-in (default: successRedirect)"), ...linkFields });
const formQuery = z.strictObject(linkFields);
const callbackQuery = z.looseObject({
  code: z.string().max(4096).optional(),
  state: z.string().max(256).optional(),
  error: z.string().max(256).optional(),
  error_description: z.string().max(2048).optional(),
});

/** A return path that stays on this site: `/x?y#z`, never `//host`, `/\\host` or a scheme. */
export function safeReturnTo(value: unknown, fallback: string): string | undefined {
  if (value === undefined) return fallback;
  if (typeof value !== "string" || value.length > 512) return undefined;
  if (!/^\/(?![/\\])[^\s\\]*$/.test(value) || /[\u0000-\u001f\u007f]/.test(value)) return undefined;
  return value;
}

/** API clients (Accept: application/json, no HTML) get JSON; browsers get redirects. */
const wantsJson = (req: Request) => req.accepts(["text/html", "application/json"]) === "application/json";

function docsFor(id: string, label: string, form: z.ZodType) {
  return {
    start: {
      summary: `Passport (${label}): go to the identity provider`,
      description: "302 to the identity provider with a single-use state (and the strategy's PKCE challenge); a cookie binds the attempt to this browser.",
      query: startQuery,
      responses: { 302: { description: "to the identity provider" } },
      errors: ["ERR_PASSPORT_RETURN_TO_INVALID", "ERR_PASSPORT_CALLBACK_INVALID", "ERR_PASSPORT_DENIED", ...SIGN_IN_ERRORS, ...LINK_ERRORS],
    },
    callback: {
      summary: `Passport (${label}): the identity provider's redirect back`,
      description:
        "Uses the state up (once, in the browser that started the sign-in), lets the strategy exchange the code, then starts a session. A browser is redirected (to returnTo, or to errorRedirect?error=ERR_…); a client that asks for JSON gets the sign-in result or a problem document.",
      query: callbackQuery,
      responses: { 200: { description: "signed in (Accept: application/json)", schema: signInResultSchema }, 302: { description: "signed in, or an error, as a redirect" } },
      errors: ["ERR_PASSPORT_CALLBACK_INVALID", "ERR_PASSPORT_STATE_INVALID", "ERR_PASSPORT_STATE_USED", "ERR_PASSPORT_STATE_EXPIRED", "ERR_PASSPORT_BROWSER_MISMATCH", "ERR_PASSPORT_DENIED", ...SIGN_IN_ERRORS, ...LINK_ERRORS],
    },
    form: {
      summary: `Passport (${label}): sign in with the posted credentials`,
      description: `JSON or an HTML form. The strategy "${id}" checks the fields; a form post from a browser is redirected (successRedirect, or errorRedirect?error=ERR_…).`,
      body: form,
      form: true,
      query: formQuery,
      responses: { 200: { description: "signed in", schema: signInResultSchema }, 303: { description: "signed in (or refused) from an HTML form" } },
      errors: ["ERR_PASSPORT_CREDENTIALS_MISSING", "ERR_PASSPORT_CREDENTIALS_INVALID", ...SIGN_IN_ERRORS, ...LINK_ERRORS],
    },
  } satisfies Record<string, RouteDoc>;
}

/** The posted fields of a form strategy: the option, or passport-local's two fields, strings, nothing else. */
function formSchema(options: ResolvedPassportOptions): z.ZodType {
  if (options.body) return options.body;
  const strategy = options.strategy as { _usernameField?: unknown; _passwordField?: unknown };
  if (typeof strategy._usernameField === "string" && typeof strategy._passwordField === "string") {
    return z.strictObject({ [strategy._usernameField]: z.string().min(1).max(256), [strategy._passwordField]: z.string().min(1).max(1024) });
  }
  return z.record(z.string().max(64), z.string().max(4096));
}

export function passportRoutes(router: Router, ctx: ProviderContext, options: ResolvedPassportOptions): void {
  const { id, strategy } = options;
  const label = strategy.name ?? id;
  // From baseURL, on every request: a strategy would otherwise resolve a relative callbackURL against the Host header.
  const callbackURL = ctx.url(`/passport/${id}/callback`);
  // Stored as `passport-<id>:attempts`: core namespaces rule names by provider id.
  const limiter = ctx.rateLimit({ name: "attempts", points: options.attemptsPerMinute, duration: 60 });
  const docs = docsFor(id, label, formSchema(options));
  const run = (req: Request, extra: Record<string, unknown>, prepare?: (instance: Record<string, unknown>) => void) =>
    runStrategy(strategy, req, { ...options.authenticateOptions, ...extra }, { timeout: options.timeout, logger: ctx.logger, label, ...(prepare ? { prepare } : {}) });

  /** The identity of a successful outcome; any other outcome is its refusal. */
  const identityOf = (outcome: StrategyOutcome, phase: Phase): Promise<VerifiedIdentity> => {
    if (outcome.action !== "success") throw refusalOf(outcome, phase, ctx.logger, label);
    return mapIdentity(options.toIdentity, outcome.user, outcome.info);
  };
  /**
   * One commit: the identity, the session (rotating the request's old one) or the link, and, when
   * given, the client's count. The redirect callback used its state up before the strategy ran and
   * hands the consumed verification over (it carries the link intent, if any); a form post has no
   * secret of its own, so its link intent is issued and used inside the commit.
   */
  const signIn = (
    req: Request,
    res: Response,
    verify: () => Promise<VerifiedIdentity>,
    { limitKey, consumed, link }: { limitKey?: string; consumed?: VerificationResult; link?: LinkIntent } = {},
  ): Promise<SignInResult> =>
    ctx.signInOnce(req, res, {
      verify,
      async consume(q) {
        if (consumed) return consumed;
        if (!link) return undefined;
        const issued = await ctx.verifications.issue({ purpose: "link", ttlSeconds: 60, link }, q);
        return ctx.verifications.consume({ purpose: "link", secret: issued.secret, q });
      },
      ...(limitKey === undefined ? {} : { limit: { limiter, key: limitKey } }),
    });
  const linkOf = (req: Request, res: Response, query: { intent?: "sign-in" | "link" | "reauthenticate" | undefined; merge?: "true" | "false" | undefined }) =>
    ctx.linkIntent(req, { intent: query.intent, ...(query.merge === undefined ? {} : { merge: query.merge === "true" }) }, res);

  function redirectFailure(req: Request, res: Response, error: unknown, status: 302 | 303): void {
    if (!(error instanceof AuthError)) throw error;
    if (error.status >= 500) ctx.logger.warn("passport sign-in failed", { strategy: label, code: error.code });
    const target = new URL(options.errorRedirect, ctx.baseURL);
    target.searchParams.set("error", error.code);
    res.setHeader("Cache-Control", "no-store");
    res.redirect(status, `${target.pathname}${target.search}`);
  }

  if (options.kind === "redirect") {
    const attempts = createAttemptStore(ctx, options.stateTtl);

    router.get(`/passport/${id}`, describeRoute(docs.start), limiter.middleware(), async (req, res) => {
      const query = ctx.parse(startQuery, req.query, "query");
      // The strategies take a request with `code` or `error` for their callback, wherever it arrives;
      // the start is not a callback (and must not consume or refuse anyone's state).
      const raw = req.query as Record<string, unknown>;
      if (raw.code !== undefined || raw.error !== undefined || raw.state !== undefined) throw passportErrors.create("ERR_PASSPORT_CALLBACK_INVALID", { detail: "code, state and error belong on the callback" });
      const returnTo = safeReturnTo(query.returnTo, options.successRedirect);
      if (!returnTo) throw passportErrors.create("ERR_PASSPORT_RETURN_TO_INVALID");
      const link = await linkOf(req, res, query);
      // The strategy's state store, for this request: the strategy reads `this._stateStore`
      // (passport-oauth2, passport-openidconnect), so a per-request instance gets ours instead of
      // the session-backed default, and state is always on, whatever the strategy was built with.
      // store(req, verifier | oidcContext, appState, meta, cb): five arguments fit both libraries.
      const store = {
        store(_req: unknown, kept: unknown, appState: unknown, _meta: unknown, cb: (err: unknown, handle?: string) => void) {
          attempts.issue(req, res, { kept: kept ?? null, appState: appState ?? null, returnTo } satisfies AttemptData, link).then((handle) => cb(null, handle), (error: unknown) => cb(error));
        },
        verify(_req: unknown, _handle: unknown, cb: (err: unknown, ok?: unknown, state?: unknown) => void) {
          cb(passportErrors.create("ERR_PASSPORT_CALLBACK_INVALID"));
        },
      };
      const outcome = await run(req, { callbackURL }, (instance) => {
        instance._stateStore = store;
      });
      if (outcome.action === "redirect") {
        res.setHeader("Cache-Control", "no-store");
        return res.redirect(outcome.status === 303 ? 303 : 302, outcome.url);
      }
      // A strategy that answers the start at once would sign in on a GET with no state and no
      // browser binding: a cross-site link could sign a visitor into someone else's account (login
      // CSRF), or a link intent would be dropped. A strategy that needs no round trip is a form one.
      const refused =
        outcome.action === "success"
          ? passportErrors.create("ERR_PASSPORT_STRATEGY_ERROR", { detail: `a redirect strategy must redirect on its start; use kind "form" for one that signs in at once` })
          : undefined;
      if (refused) ctx.logger.warn("passport: a redirect strategy signed in on its start route; refused (use kind form)", { strategy: label });
      try {
        if (refused) throw refused;
        const result = await signIn(req, res, () => identityOf(outcome, "redirect"));
        if (wantsJson(req)) return res.json(result);
        res.redirect(302, returnTo);
      } catch (error) {
        if (wantsJson(req)) throw error;
        redirectFailure(req, res, error, 302);
      }
    });

    router.get(`/passport/${id}/callback`, describeRoute(docs.callback), async (req, res) => {
      try {
        const query = ctx.parse(callbackQuery, req.query, "query");
        if (!query.state || (query.code === undefined && query.error === undefined)) throw passportErrors.create("ERR_PASSPORT_CALLBACK_INVALID");
        // The state is used up before the strategy runs (also for an `error` callback, which the
        // strategies answer without looking at their store): once, unexpired, in this browser.
        const { data: attempt, verification } = await attempts.consume(req, query.state);
        const state = query.state;
        const store = {
          store(_req: unknown, _kept: unknown, _appState: unknown, _meta: unknown, cb: (err: unknown) => void) {
            cb(passportErrors.create("ERR_PASSPORT_CALLBACK_INVALID"));
          },
          // passport-oauth2 takes (err, verifier | true, appState); passport-openidconnect (err, context, appState).
          verify(_req: unknown, handle: unknown, cb: (err: unknown, ok?: unknown, state?: unknown) => void) {
            if (handle !== state) return cb(passportErrors.create("ERR_PASSPORT_STATE_INVALID"));
            let kept = attempt.kept ?? true;
            const issued = (kept as { issued?: unknown }).issued;
            if (typeof issued === "string") kept = { ...(kept as object), issued: new Date(issued) };
            cb(null, kept, attempt.appState ?? undefined);
          },
        };
        const result = await signIn(req, res, async () =>
          identityOf(await run(req, { callbackURL }, (instance) => {
            instance._stateStore = store;
          }), "redirect"),
          { consumed: verification },
        );
        res.setHeader("Cache-Control", "no-store");
        if (wantsJson(req)) return res.json(result);
        res.redirect(302, attempt.returnTo);
      } catch (error) {
        if (wantsJson(req)) {
          if (error instanceof AuthError) return sendProblem(res, error);
          throw error;
        }
        redirectFailure(req, res, error, 302);
      }
    });
    return;
  }

  if (options.kind === "form") {
    const schema = docs.form.body;
    router.post(`/passport/${id}`, describeRoute(docs.form), async (req, res) => {
      const isForm = Boolean(req.is("application/x-www-form-urlencoded"));
      const wantsPage = isForm && req.accepts(["application/json", "text/html"]) === "text/html";
      const key = req.ip ?? "unknown";
      try {
        // Counted in memory before anything is parsed (malformed posts count too), then on the shared
        // counter by signInOnce, before the strategy runs.
        limiter.consumeLocal(key);
        ctx.parse(schema, req.body);
        const link = await linkOf(req, res, ctx.parse(formQuery, req.query, "query"));
        const result = await signIn(req, res, async () => identityOf(await run(req, {}), "form"), { limitKey: key, ...(link ? { link } : {}) });
        if (wantsPage) return res.redirect(303, options.successRedirect);
        res.json(result);
      } catch (error) {
        if (!wantsPage) throw error;
        redirectFailure(req, res, error, 303);
      }
    });
  }
}
