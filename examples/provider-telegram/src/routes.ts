import {
  AuthError,
  describeRoute,
  escapeHtml,
  sendPage,
  signInResultSchema,
  type ProviderContext,
  type RouteDoc,
  type SignInResult,
  type LinkIntent,
  type UserReference,
  type VerifiedIdentity,
} from "@erebus/core/provider";
import type { Request, Response, Router } from "express";
import * as z from "zod";
import { telegramErrors } from "./errors.js";
import type { ResolvedTelegramOptions } from "./options.js";
import { TELEGRAM_NETWORK, type TelegramSourceType } from "./source-type.js";
import { secretKeyOf, telegramAuthDataSchema, verifyTelegramAuthData, type TelegramAuthData, type VerifiedTelegramLogin } from "./verify.js";

const loginErrors = ["ERR_TELEGRAM_HASH_INVALID", "ERR_TELEGRAM_AUTH_EXPIRED", "ERR_TELEGRAM_AUTH_DATE_FUTURE", "ERR_TELEGRAM_AUTH_USED"];
/**
 * Linking (issue 13): the widget's data is the whole body (and every field of it is signed), so the
 * intent rides in the query: `POST /telegram/verify?intent=link[&merge=true]`, JSON-callback style.
 */
const verifyQuery = z.strictObject({
  intent: z.enum(["sign-in", "link", "reauthenticate"]).optional().describe('"link": attach this Telegram account to the signed-in person (a fresh session)'),
  merge: z.enum(["true", "false"]).optional().describe("with intent link: if the account belongs to another person, move that person into this one"),
});
const linkErrors = ["ERR_UNAUTHENTICATED", "ERR_SESSION_INVALID", "ERR_REAUTH_REQUIRED", "ERR_REAUTH_IDENTITY_FOREIGN", "ERR_IDENTITY_LINKED_ELSEWHERE", "ERR_IDENTITY_LIMIT", "ERR_LINK_CONFLICT"];
const docs = {
  callback: {
    summary: "Telegram login: the page the widget's redirect (data-auth-url) opens",
    description:
      "Checks the signed data and shows who it signs in as, with a button that POSTs it to /telegram/verify. Never signs in by itself: a GET cannot tell the widget's redirect from a cross-site link carrying someone else's login (login CSRF). problem+json on failure, or an HTML page when the browser asks for HTML.",
    query: telegramAuthDataSchema,
    responses: { 200: { description: "the confirm page", contentType: "text/html" } },
    errors: loginErrors,
  },
  verify: {
    summary: "Telegram login: check the widget's signed data and start a session",
    description:
      "JSON (the widget's data-onauth callback object, as it is) or an HTML form (the confirm page). Each signed login works once. With ?intent=link (JSON, a fresh session) the account is attached to the signed-in person instead.",
    query: verifyQuery,
    body: telegramAuthDataSchema,
    form: true,
    responses: { 200: { description: "signed in", schema: signInResultSchema }, 303: { description: "signed in from the confirm page's form" } },
    errors: [...loginErrors, "ERR_USER_DEACTIVATED", ...linkErrors],
  },
} satisfies Record<string, RouteDoc>;

/** Core's self-contained page (no scripts, never framed, no Referer: the URL carries the signed login), with the avatar allowed. */
const page = (res: Response, status: number, title: string, body: string) => sendPage(res, status, title, body, { imgSrc: "https:" });

/** A browser navigating here asks for HTML first; fetch and programs (Accept: * / * or JSON) get problem+json. */
const wantsHtml = (req: Request) => req.accepts(["application/json", "application/problem+json", "text/html"]) === "text/html";

/** Seconds a Telegram login may be old to link or step up (core's default freshness window). */
const LINK_MAX_AGE = 600;

/** Purpose of the used-login records on core's single-use secret store. */
const USED = "payload";

export function telegramRoutes(router: Router, ctx: ProviderContext, options: ResolvedTelegramOptions): void {
  const secretKey = secretKeyOf(options.botToken);
  // Stored as `telegram:client` (core namespaces rate-limit names by provider id).
  const limit = ctx.rateLimit({ name: "client", points: options.perClient, duration: 60 });
  const verifyPath = new URL(ctx.url("/telegram/verify")).pathname;

  const verify = (data: TelegramAuthData) => verifyTelegramAuthData(data, { secretKey, maxAge: options.maxAge, clockSkew: options.clockSkew, now: ctx.clock() });
  /** After this the date check refuses the login: until then a used one must stay refused. */
  const staleAt = (login: VerifiedTelegramLogin) => new Date(login.authDate.getTime() + options.maxAge * 1000);

  /**
   * One sign-in, in one commit (ctx.signInOnce): the signature and date first, then the login marked
   * used (single use, atomically: of concurrent requests with one login exactly one is first), the
   * identity and the session together.
   */
  function signIn(req: Request, res: Response, data: TelegramAuthData, link: LinkIntent | undefined): Promise<SignInResult> {
    let login: VerifiedTelegramLogin | undefined;
    return ctx.signInOnce(req, res, {
      // No start step to store an intent with: core takes the one asked for in this request.
      ...(link ? { link } : {}),
      verify(): VerifiedIdentity {
        login = verify(data);
        // Linking or stepping up asks for a fresh proof: a login Telegram dated minutes ago, not one
        // of up to maxAge (a day) that someone may have kept.
        if (link && ctx.clock().getTime() - login.authDate.getTime() > LINK_MAX_AGE * 1000) {
          throw telegramErrors.create("ERR_TELEGRAM_AUTH_EXPIRED", { detail: `linking needs a Telegram login from the last ${LINK_MAX_AGE / 60} minutes` });
        }
        const f = login.fields;
        const sourceType: TelegramSourceType = {
          type: "telegram",
          user_id: login.id,
          first_name: f.first_name!,
          ...(f.last_name === undefined ? {} : { last_name: f.last_name }),
          ...(f.username === undefined ? {} : { username: f.username }),
          ...(f.photo_url === undefined ? {} : { photo_url: f.photo_url }),
          metadata: { last_login: ctx.clock().toISOString(), auth_date: login.authDate.toISOString() },
        };
        return { network: TELEGRAM_NETWORK, sourceIdentifier: login.id, sourceType };
      },
      async consume(q) {
        // A payload whose signature or date failed is no login: nothing of it is remembered.
        if (!login) return;
        const first = await ctx.verifications.remember({ purpose: USED, value: login.hash, until: staleAt(login), q });
        if (!first.ok) throw telegramErrors.create("ERR_TELEGRAM_AUTH_USED");
      },
    });
  }

  function failurePage(res: Response, error: AuthError): void {
    page(res, error.status, "Sign-in failed", `<h1>Sign-in with Telegram failed</h1><p>${escapeHtml(error.title)}.</p><p><code>${escapeHtml(error.code)}</code></p><p><a href="${escapeHtml(options.successRedirect)}">Back</a></p>`);
  }

  function confirmPage(res: Response, data: TelegramAuthData, current: UserReference | null): void {
    const name = [data.first_name, data.last_name].filter(Boolean).join(" ");
    const who = `<strong>${escapeHtml(name)}</strong>${data.username ? ` (@${escapeHtml(data.username)})` : ""}`;
    const hidden = Object.entries(data)
      .filter(([, value]) => value !== undefined)
      .map(([key, value]) => `<input type="hidden" name="${escapeHtml(key)}" value="${escapeHtml(String(value))}">`)
      .join("");
    const other =
      current && !(current.network === TELEGRAM_NETWORK && current.source_identifier === data.id)
        ? `<p>This browser is signed in as <strong>${escapeHtml(current.email ?? `${current.network} ${current.source_identifier}`)}</strong>; continuing signs you out of it. If you did not just sign in with Telegram yourself, stop here: someone may be trying to sign you into their account.</p>`
        : "";
    page(
      res,
      200,
      `Sign in to ${options.appName}`,
      `<h1>Sign in to ${escapeHtml(options.appName)}</h1>${data.photo_url ? `<img alt="" src="${escapeHtml(data.photo_url)}">` : ""}<p>Telegram says you are ${who}.</p>${other}
<form method="post" action="${escapeHtml(verifyPath)}">${hidden}<button type="submit">Continue as ${escapeHtml(data.first_name)}</button></form>
<p><a href="${escapeHtml(options.successRedirect)}">Cancel</a></p>`,
    );
  }

  // The widget's redirect style (data-auth-url) lands here, as a cross-site top-level GET. It only
  // shows the page; the button's POST is same-origin and passes core's cross-site check.
  router.get("/telegram/callback", describeRoute(docs.callback), limit.middleware(), async (req, res) => {
    try {
      const data = ctx.parse(telegramAuthDataSchema, req.query, "query");
      const login = verify(data);
      const seen = await ctx.verifications.peek({ purpose: USED, secret: login.hash });
      if (!seen.ok && seen.reason === "used") throw telegramErrors.create("ERR_TELEGRAM_AUTH_USED");
      const auth = await ctx.authenticate(req, res).catch(() => null);
      confirmPage(res, data, auth?.via === "session" ? auth.user : null);
    } catch (error) {
      if (!wantsHtml(req) || !(error instanceof AuthError) || error.status >= 500) throw error;
      failurePage(res, error);
    }
  });

  router.post("/telegram/verify", describeRoute(docs.verify), limit.middleware(), async (req, res) => {
    const isForm = Boolean(req.is("application/x-www-form-urlencoded"));
    try {
      const data = ctx.parse(telegramAuthDataSchema, req.body);
      const query = ctx.parse(verifyQuery, req.query, "query");
      const link = await ctx.linkIntent(req, { intent: query.intent, merge: query.merge === undefined ? undefined : query.merge === "true" }, res);
      const result = await signIn(req, res, data, link);
      if (isForm) return res.redirect(303, options.successRedirect);
      res.json(result);
    } catch (error) {
      if (!isForm || !wantsHtml(req) || !(error instanceof AuthError) || error.status >= 500) throw error;
      failurePage(res, error);
    }
  });
}
