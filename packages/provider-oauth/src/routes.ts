import { AuthError, describeRoute, sendProblem, signInResultSchema, type ProviderContext, type RouteDoc, type VerifiedIdentity } from "@erebus/core/provider";
import type { Request, Response, Router } from "express";
import * as z from "zod";
import { oauthErrors } from "./errors.js";
import { createFlow, safeReturnTo } from "./flow.js";
import type { ResolvedOAuthOptions } from "./options.js";
import type { RefreshTokenStore } from "./refresh-tokens.js";
import type { OAuthSourceType } from "./source-type.js";

/** API clients (Accept: application/json, no HTML) get problem+json; browsers get a redirect. */
const wantsJson = (req: Request) => Boolean(req.accepts(["text/html", "application/json"]) === "application/json");

const callbackErrors = [
  "ERR_OAUTH_PROVIDER_UNKNOWN",
  "ERR_OAUTH_STATE_MISSING",
  "ERR_OAUTH_BROWSER_MISMATCH",
  "ERR_OAUTH_STATE_INVALID",
  "ERR_OAUTH_STATE_USED",
  "ERR_OAUTH_STATE_EXPIRED",
  "ERR_OAUTH_DENIED",
  "ERR_OAUTH_CODE_INVALID",
  "ERR_OAUTH_ID_TOKEN_INVALID",
  "ERR_OAUTH_PROFILE_INVALID",
  "ERR_OAUTH_PROVIDER_UNAVAILABLE",
  "ERR_OAUTH_ENDPOINT_INSECURE",
  "ERR_USER_DEACTIVATED",
  "ERR_IDENTITY_INVALID",
  "ERR_LINK_SESSION_MISMATCH",
  "ERR_REAUTH_IDENTITY_FOREIGN",
  "ERR_IDENTITY_LINKED_ELSEWHERE",
  "ERR_IDENTITY_LIMIT",
  "ERR_LINK_CONFLICT",
];
/** `?intent=link` (a fresh session): the account proven at the provider is added to the signed-in person; `&merge=1` takes in the person it belongs to. */
const startQuery = z.object({
  intent: z.enum(["sign-in", "link", "reauthenticate"]).optional().describe("link: add this account to the signed-in person instead of signing in; reauthenticate: prove an account the person already has to make the session fresh (step-up)"),
  merge: z.enum(["1", "0", "true", "false"]).optional().describe("with intent=link: take in the person the account already belongs to"),
});
const docs = {
  start: {
    summary: "OAuth / OpenID Connect: go to the provider",
    description: "302 to the provider with PKCE (S256), state and, for OIDC, nonce; core's binding cookie ties the attempt to this browser.",
    query: startQuery.extend({ returnTo: z.string().optional().describe("a path on this site to land on after sign-in (default /)") }),
    responses: { 302: { description: "to the provider's authorization endpoint" } },
    errors: ["ERR_OAUTH_PROVIDER_UNKNOWN", "ERR_OAUTH_RETURN_TO_INVALID", "ERR_OAUTH_PROVIDER_UNAVAILABLE", "ERR_OAUTH_ENDPOINT_INSECURE", "ERR_QUERY_INVALID", "ERR_UNAUTHENTICATED", "ERR_REAUTH_REQUIRED"],
  },
  callback: {
    summary: "OAuth / OpenID Connect: the provider's redirect back",
    description:
      "Checks state, browser binding, code (PKCE) and ID token, then starts a session (or, for an attempt started with intent=link, adds the account to the person of the session that asked). A browser is redirected (to returnTo, or to errorRedirect?error=ERR_…); a client that asks for JSON gets the sign-in result or a problem document.",
    query: z.looseObject({ code: z.string().optional(), state: z.string().optional(), error: z.string().optional() }),
    responses: { 200: { description: "signed in (Accept: application/json)", schema: signInResultSchema }, 302: { description: "signed in, or an error, as a redirect" } },
    errors: callbackErrors,
  },
  list: {
    summary: "The configured OAuth / OpenID Connect providers",
    responses: { 200: { description: "for drawing sign-in buttons", schema: z.object({ providers: z.array(z.object({ id: z.string(), label: z.string(), url: z.string() })) }) } },
  },
} satisfies Record<string, RouteDoc>;

export function oauthRoutes(router: Router, ctx: ProviderContext, options: ResolvedOAuthOptions, refreshTokens: RefreshTokenStore | undefined): void {
  const flows = new Map(Object.entries(options.providers).map(([id, config]) => [id, createFlow(ctx, id, config, options)]));
  // Stored as `oauth:start` (core prefixes the provider id).
  const startLimit = ctx.rateLimit({ name: "start", points: options.startsPerMinute, duration: 60 });

  const flowOf = (req: Request) => {
    const flow = flows.get(String(req.params.provider));
    if (!flow) throw oauthErrors.create("ERR_OAUTH_PROVIDER_UNKNOWN");
    return flow;
  };

  function fail(req: Request, res: Response, error: unknown): void {
    const authError = error instanceof AuthError ? error : oauthErrors.create("ERR_OAUTH_PROVIDER_UNAVAILABLE", { cause: error });
    if (authError.status >= 500) ctx.logger.warn("oauth sign-in failed", { code: authError.code, error: String((authError.cause as Error)?.message ?? "") });
    if (wantsJson(req)) return sendProblem(res, authError);
    const target = new URL(options.errorRedirect, ctx.baseURL);
    target.searchParams.set("error", authError.code);
    res.setHeader("Cache-Control", "no-store");
    res.redirect(302, `${target.pathname}${target.search}`);
  }

  // Start: 302 to the provider. Core's binding cookie (SameSite=Lax: the callback is a top-level
  // GET navigation back from the provider) ties the attempt to this browser: on https it is
  // `__Host-erebus_bind` and keeps the bindings of sign-ins under way in other tabs; on plain http a
  // cookie may have been planted, so the newest start replaces whatever was there.
  router.get("/oauth/:provider", describeRoute(docs.start), startLimit.middleware(), async (req, res) => {
    const flow = flowOf(req);
    const returnTo = safeReturnTo(req.query.returnTo);
    if (!returnTo) throw oauthErrors.create("ERR_OAUTH_RETURN_TO_INVALID");
    // Adding this account to the signed-in person: a fresh session only (401 / 403 otherwise). The
    // intent is stored with the attempt, and the callback attaches only for that same session.
    const { intent, merge } = ctx.parse(startQuery, { intent: req.query.intent, merge: req.query.merge }, "query");
    const link = await ctx.linkIntent(req, { intent, merge: merge === "1" || merge === "true" }, res);
    const url = await flow.start(req, res, returnTo, link);
    res.setHeader("Cache-Control", "no-store");
    res.redirect(302, url.href);
  });

  router.get("/oauth/:provider/callback", describeRoute(docs.callback), async (req, res) => {
    try {
      const flow = flowOf(req);
      const id = String(req.params.provider);
      const attempt = await flow.useState(req);
      let refreshToken: string | undefined;
      // The code exchange is the proof, checked first; then the identity, its refresh token and the
      // session in one commit (the state was used up before the code left for the provider).
      const signedIn = await ctx.signInOnce(req, res, {
        async verify(): Promise<VerifiedIdentity> {
          const result = await flow.exchange(req.query as Record<string, unknown>, attempt);
          refreshToken = result.refreshToken;
          const sourceType: OAuthSourceType = {
            type: "oauth",
            provider: id,
            user_id: result.profile.subject,
            metadata: {
              issuer: result.issuer,
              ...(result.profile.name ? { name: result.profile.name } : {}),
              ...(result.profile.username ? { username: result.profile.username } : {}),
              ...(result.profile.picture ? { picture: result.profile.picture } : {}),
            },
          };
          return { network: "oauth", sourceIdentifier: `${id}:${result.profile.subject}`, sourceType, email: result.profile.verifiedEmail };
        },
        consume: async () => attempt.verification,
        bind: async (q, user) => {
          if (refreshTokens && refreshToken) await refreshTokens.save(user.id, id, refreshToken, q);
        },
      });
      res.setHeader("Cache-Control", "no-store");
      if (wantsJson(req)) return res.json(signedIn);
      res.redirect(302, attempt.returnTo);
    } catch (error) {
      fail(req, res, error);
    }
  });

  // Which providers exist, for a sign-in page to draw its buttons.
  router.get("/oauth", describeRoute(docs.list), (_req, res) => {
    res.json({ providers: Object.entries(options.providers).map(([id, config]) => ({ id, label: config.label ?? id, url: new URL(ctx.url(`/oauth/${id}`)).pathname })) });
  });
}
