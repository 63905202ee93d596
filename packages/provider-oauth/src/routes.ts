import { AuthError, describeRoute, sendProblem, signInResultSchema, type ProviderContext, type RouteDoc } from "@erebus/core";
import { parse as parseCookies, serialize as serializeCookie } from "cookie";
import type { Request, Response, Router } from "express";
import * as z from "zod";
import { oauthErrors } from "./errors.js";
import { createFlow, safeReturnTo } from "./flow.js";
import type { ResolvedOAuthOptions } from "./options.js";
import { createRefreshTokenStore } from "./refresh-tokens.js";
import type { OAuthSourceType } from "./source-type.js";

const BINDING = /^[A-Za-z0-9_-]{43}$/;
/** Sign-ins a browser can have under way at once on https (tabs); the oldest binding drops out first. */
const MAX_BINDINGS = 4;

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
];
const docs = {
  start: {
    summary: "OAuth / OpenID Connect: go to the provider",
    description: "302 to the provider with PKCE (S256), state and, for OIDC, nonce; a binding cookie ties the attempt to this browser.",
    query: z.object({ returnTo: z.string().optional().describe("a path on this site to land on after sign-in (default /)") }),
    responses: { 302: { description: "to the provider's authorization endpoint" } },
    errors: ["ERR_OAUTH_PROVIDER_UNKNOWN", "ERR_OAUTH_RETURN_TO_INVALID", "ERR_OAUTH_PROVIDER_UNAVAILABLE", "ERR_OAUTH_ENDPOINT_INSECURE"],
  },
  callback: {
    summary: "OAuth / OpenID Connect: the provider's redirect back",
    description:
      "Checks state, browser binding, code (PKCE) and ID token, then starts a session. A browser is redirected (to returnTo, or to errorRedirect?error=ERR_…); a client that asks for JSON gets the sign-in result or a problem document.",
    query: z.looseObject({ code: z.string().optional(), state: z.string().optional(), error: z.string().optional() }),
    responses: { 200: { description: "signed in (Accept: application/json)", schema: signInResultSchema }, 302: { description: "signed in, or an error, as a redirect" } },
    errors: callbackErrors,
  },
  list: {
    summary: "The configured OAuth / OpenID Connect providers",
    responses: { 200: { description: "for drawing sign-in buttons", schema: z.object({ providers: z.array(z.object({ id: z.string(), label: z.string(), url: z.string() })) }) } },
  },
} satisfies Record<string, RouteDoc>;

export function oauthRoutes(router: Router, ctx: ProviderContext, options: ResolvedOAuthOptions) {
  const flows = new Map(Object.entries(options.providers).map(([id, config]) => [id, createFlow(ctx, id, config, options)]));
  const refreshTokens = options.refreshTokenKey ? createRefreshTokenStore(ctx, options.refreshTokenKey) : undefined;
  const startLimit = ctx.rateLimit({ name: "oauth-start", points: options.startsPerMinute, duration: 60 });
  const https = ctx.baseURL.protocol === "https:";
  const secure = https || ctx.production;
  const cookiePath = `${ctx.basePath === "/" ? "" : ctx.basePath}/oauth`;
  // On https the binding cookie is `__Host-`: the browser accepts it only from this exact origin,
  // Secure, Path=/ and without Domain, so a sibling subdomain (or plain-http on the network) cannot
  // plant one (RFC 6265bis §4.1.3.2). A planted `erebus_oauth` is then simply never read.
  const binding = https
    ? { name: "__Host-erebus_oauth", path: "/" }
    : { name: "erebus_oauth", path: cookiePath };

  const flowOf = (req: Request) => {
    const flow = flows.get(String(req.params.provider));
    if (!flow) throw oauthErrors.create("ERR_OAUTH_PROVIDER_UNKNOWN");
    return flow;
  };
  /** The bindings this browser holds, oldest first (several on https, one on http). */
  const bindingsOf = (req: Request): string[] => {
    try {
      const value = req.headers.cookie ? parseCookies(req.headers.cookie)[binding.name] : undefined;
      return (value ?? "").split(".").filter((b) => BINDING.test(b)).slice(-MAX_BINDINGS);
    } catch {
      return [];
    }
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

  // Start: 302 to the provider. The binding cookie ties the attempt to this browser.
  router.get("/oauth/:provider", describeRoute(docs.start), startLimit.middleware(), async (req, res) => {
    const flow = flowOf(req);
    const returnTo = safeReturnTo(req.query.returnTo);
    if (!returnTo) throw oauthErrors.create("ERR_OAUTH_RETURN_TO_INVALID");
    // A fresh binding at every start: an existing value is never adopted, so nobody who planted or
    // saw one can finish this attempt. On https the earlier `__Host-` bindings stay (only this
    // origin can have set them), so sign-ins started in other tabs still finish; on plain http a
    // cookie may have been planted, so the newest start replaces whatever was there.
    const fresh = ctx.random(32).toString("base64url");
    const kept = https ? bindingsOf(req).slice(-(MAX_BINDINGS - 1)) : [];
    const url = await flow.start(fresh, returnTo);
    res.append(
      "Set-Cookie",
      // SameSite=Lax: the callback is a top-level GET navigation back from the provider.
      serializeCookie(binding.name, [...kept, fresh].join("."), { httpOnly: true, sameSite: "lax", secure, path: binding.path, maxAge: options.stateTtl }),
    );
    res.setHeader("Cache-Control", "no-store");
    res.redirect(302, url.href);
  });

  router.get("/oauth/:provider/callback", describeRoute(docs.callback), async (req, res) => {
    try {
      const flow = flowOf(req);
      const id = String(req.params.provider);
      const result = await flow.callback(req.query as Record<string, unknown>, bindingsOf(req));
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
      const user = await ctx.resolveIdentity({
        network: "oauth",
        sourceIdentifier: `${id}:${result.profile.subject}`,
        sourceType,
        email: result.profile.verifiedEmail,
      });
      if (refreshTokens && result.refreshToken) await refreshTokens.save(user.id, id, result.refreshToken);
      const signedIn = await ctx.signIn(req, res, user);
      res.setHeader("Cache-Control", "no-store");
      if (wantsJson(req)) return res.json(signedIn);
      res.redirect(302, result.returnTo);
    } catch (error) {
      fail(req, res, error);
    }
  });

  // Which providers exist, for a sign-in page to draw its buttons.
  router.get("/oauth", describeRoute(docs.list), (_req, res) => {
    res.json({ providers: Object.entries(options.providers).map(([id, config]) => ({ id, label: config.label ?? id, url: `${cookiePath}/${id}` })) });
  });

  return { refreshTokens };
}
