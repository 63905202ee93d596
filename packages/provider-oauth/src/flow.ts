import { createHmac } from "node:crypto";
import { AuthError, isPgText, type LinkIntent, type ProviderContext, type VerificationResult } from "@erebus/core/provider";
import type { Request, Response } from "express";
import * as client from "openid-client";
import { oauthErrors } from "./errors.js";
import type { ResolvedOAuthOptions } from "./options.js";
import type { OAuth2Config, ProviderConfig } from "./presets.js";
import { checkMetadata, endpointRefusal, guardedFetch, type EndpointPolicy } from "./secure-endpoints.js";
import type { OAuthProfile } from "./source-type.js";

// Released migrations stay as they were (append-only): 0001 made the provider's own attempt table,
// which core's `erebus_verifications` replaces (issue 11); 0003 drops it. Its rows were attempts
// that live minutes (`stateTtl`, 10 by default): a sign-in under way at the upgrade starts again.
export const stateMigration = {
  id: "0001_oauth_states",
  sql: `CREATE TABLE erebus_oauth_states (
    state_hash TEXT PRIMARY KEY,
    provider TEXT NOT NULL,
    -- SHA-256 of the browser-binding cookie: a callback only works in the browser that started it.
    binding_hash TEXT NOT NULL,
    return_to TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    consumed_at TIMESTAMPTZ
  );
  CREATE INDEX erebus_oauth_states_expires_at_idx ON erebus_oauth_states (expires_at);`,
};

export const dropStatesMigration = {
  id: "0003_drop_oauth_states",
  sql: `-- Attempts live in core's erebus_verifications now (provider 'oauth', purpose 'state').
  DROP TABLE IF EXISTS erebus_oauth_states;`,
};

/** The purpose of an attempt's state in core's store; its subject is the configured provider's id. */
const STATE = "state";

/**
 * The PKCE verifier and the OIDC nonce are derived from the browser's binding secret and the state,
 * so the database keeps only hashes and a stolen state row is useless without the cookie.
 */
const derive = (binding: string, purpose: "pkce" | "nonce", state: string) =>
  createHmac("sha256", binding).update(`${purpose}:${state}`).digest("base64url");

/** Seconds a step-up login at an OpenID provider may be old (`max_age`, checked against the ID token's `auth_time`). */
const STEP_UP_MAX_AGE = 300;

/** A return path that stays on this site: `/x?y#z`, never `//host`, `/\\host` or a scheme. */
export function safeReturnTo(value: unknown): string | undefined {
  if (value === undefined) return "/";
  if (typeof value !== "string" || value.length > 512) return undefined;
  if (!/^\/(?![/\\])[^\s\\]*$/.test(value) || /[\u0000-\u001f\u007f]/.test(value)) return undefined;
  return value;
}

/** An AuthError anywhere in the cause chain (openid-client wraps what our guarded fetch throws). */
function authErrorIn(error: unknown): AuthError | undefined {
  for (let e = error, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) if (e instanceof AuthError) return e;
  return undefined;
}

/** Maps what openid-client throws onto this provider's codes. */
function mapClientError(error: unknown, kind: ProviderConfig["kind"]): AuthError {
  const own = authErrorIn(error);
  if (own) return own;
  if (error instanceof client.AuthorizationResponseError) return oauthErrors.create("ERR_OAUTH_DENIED", { cause: error, detail: error.error });
  if (error instanceof client.ResponseBodyError) {
    return error.status >= 500
      ? oauthErrors.create("ERR_OAUTH_PROVIDER_UNAVAILABLE", { cause: error, retryAfter: 30 })
      : oauthErrors.create("ERR_OAUTH_CODE_INVALID", { cause: error, detail: error.error });
  }
  const code = (error as { code?: unknown }).code;
  const unavailable = new Set(["OAUTH_TIMEOUT", "OAUTH_ABORT", "OAUTH_RESPONSE_IS_NOT_CONFORM", "OAUTH_RESPONSE_IS_NOT_JSON"]);
  const cause = (error as { cause?: unknown }).cause;
  if ((typeof code === "string" && unavailable.has(code)) || error instanceof TypeError || cause instanceof TypeError) {
    return oauthErrors.create("ERR_OAUTH_PROVIDER_UNAVAILABLE", { cause: error, retryAfter: 30 });
  }
  return kind === "oidc"
    ? oauthErrors.create("ERR_OAUTH_ID_TOKEN_INVALID", { cause: error, detail: (error as Error).message })
    : oauthErrors.create("ERR_OAUTH_CODE_INVALID", { cause: error, detail: (error as Error).message });
}

export interface CallbackResult {
  profile: OAuthProfile;
  issuer: string;
  refreshToken: string | undefined;
}

/** An attempt whose state the callback used up: what the code exchange and the sign-in need. */
export interface UsedAttempt {
  state: string;
  /** The browser's binding value that matched: the PKCE verifier and the nonce derive from it. */
  binding: string;
  returnTo: string;
  /** The consumed verification (a link intent rides on it), handed to `ctx.signInOnce`. */
  verification: Extract<VerificationResult, { ok: true }>;
}

const stateError = (reason: Extract<VerificationResult, { ok: false }>["reason"]) => {
  if (reason === "browser") return oauthErrors.create("ERR_OAUTH_BROWSER_MISMATCH");
  if (reason === "used") return oauthErrors.create("ERR_OAUTH_STATE_USED");
  if (reason === "expired") return oauthErrors.create("ERR_OAUTH_STATE_EXPIRED");
  return oauthErrors.create("ERR_OAUTH_STATE_INVALID");
};

/** The authorization-code flow for one configured provider. */
export function createFlow(ctx: ProviderContext, id: string, config: ProviderConfig, options: ResolvedOAuthOptions) {
  const redirectUri = ctx.url(`/oauth/${id}/callback`);
  const policy: EndpointPolicy = { production: ctx.production, allowInsecureRequests: options.allowInsecureRequests };
  // Configured URLs are checked now, so a production app with a loopback issuer fails at start-up
  // (oauthProvider() already refused plain http to other hosts).
  for (const [field, url] of [["issuer", config.issuer], ...Object.entries(config.endpoints ?? {}).map(([k, v]) => [`endpoints.${k}`, v])] as [string, string | undefined][]) {
    const reason = url && endpointRefusal(url, policy);
    if (reason) throw new TypeError(`oauthProvider: option "providers.${id} ("${id}").${field}" ${reason}`);
  }
  // openid-client's https switch is per configuration: off whenever some plain http may be allowed,
  // and then every request goes through guardedFetch, which decides per URL.
  const execute: ((c: client.Configuration) => void)[] = policy.allowInsecureRequests || !policy.production ? [client.allowInsecureRequests] : [];
  const fetchGuard = guardedFetch(policy);
  // openid-client skips the ID token's signature when it comes straight from the token endpoint over
  // TLS (OIDC Core 3.1.3.7 allows it); we check it against the issuer's JWKS anyway.
  if (config.kind === "oidc") execute.push(client.enableNonRepudiationChecks);
  let configuration: Promise<client.Configuration> | undefined;

  function getConfiguration(): Promise<client.Configuration> {
    configuration ??= (async () => {
      if (config.kind === "oidc" && !config.endpoints) {
        const discovered = await client.discovery(new URL(config.issuer), config.clientId, config.clientSecret, undefined, {
          execute,
          timeout: options.timeout,
          [client.customFetch]: fetchGuard,
        });
        // Before the browser is sent anywhere or a code is exchanged: every endpoint it names must pass the policy.
        checkMetadata(discovered.serverMetadata(), policy);
        return discovered;
      }
      const metadata: client.ServerMetadata =
        config.kind === "oidc"
          ? {
              issuer: config.issuer,
              authorization_endpoint: config.endpoints!.authorization,
              token_endpoint: config.endpoints!.token,
              jwks_uri: config.endpoints!.jwks,
              ...(config.endpoints!.userinfo ? { userinfo_endpoint: config.endpoints!.userinfo } : {}),
            }
          : { issuer: config.issuer, authorization_endpoint: config.endpoints.authorization, token_endpoint: config.endpoints.token };
      const made = new client.Configuration(metadata, config.clientId, config.clientSecret);
      for (const extension of execute) extension(made);
      made.timeout = options.timeout;
      made[client.customFetch] = fetchGuard;
      return made;
    })();
    // A failed discovery is retried on the next sign-in rather than cached.
    configuration.catch(() => (configuration = undefined));
    return configuration;
  }

  return {
    redirectUri,

    /**
     * Stores the attempt in core's single-use store, bound to this browser (core sets its binding
     * cookie on `res`), and returns the provider's authorization URL (PKCE S256 always, state
     * always, nonce for OIDC).
     */
    async start(req: Request, res: Response, returnTo: string, link?: LinkIntent): Promise<URL> {
      let server: client.Configuration;
      try {
        server = await getConfiguration();
      } catch (error) {
        const own = authErrorIn(error);
        ctx.logger.warn("oauth discovery failed", { provider: id, error: own?.detail ?? (error as Error).message });
        throw own ?? oauthErrors.create("ERR_OAUTH_PROVIDER_UNAVAILABLE", { cause: error, retryAfter: 30 });
      }
      // A fresh binding at every start (core never adopts a value the browser came with), so nobody
      // who planted or saw one can finish this attempt.
      const { secret: state, binding } = await ctx.verifications.issue({
        purpose: STATE,
        subject: id,
        ttlSeconds: options.stateTtl,
        data: { returnTo },
        browser: { req, res },
        ...(link ? { link } : {}),
      });
      if (!binding) throw new Error("oauth: core returned no browser binding for the attempt");
      const parameters: Record<string, string> = {
        redirect_uri: redirectUri,
        scope: config.scopes.join(" "),
        code_challenge: await client.calculatePKCECodeChallenge(derive(binding, "pkce", state)),
        code_challenge_method: "S256",
        state,
        ...(config.params ?? {}),
      };
      if (config.kind === "oidc") parameters.nonce = derive(binding, "nonce", state);
      // A step-up must be a fresh proof at the provider, not a silent single sign-on: ask it to log
      // the person in again, and (OIDC) check the ID token's auth_time at the callback.
      if (link?.reauthenticate) {
        parameters.prompt = "login";
        if (config.kind === "oidc") parameters.max_age = String(STEP_UP_MAX_AGE);
      }
      return client.buildAuthorizationUrl(server, parameters);
    },

    /**
     * Uses the callback's state up: once, for this provider, in the browser that started it. In a
     * commit of its own, before the code goes to the provider: a replayed or foreign callback never
     * reaches the token endpoint, and a code is exchanged at most once (RFC 6749 §4.1.2: a provider
     * may revoke every token of a code used twice).
     */
    async useState(req: Request): Promise<UsedAttempt> {
      const state = typeof req.query.state === "string" ? req.query.state : undefined;
      if (!state) throw oauthErrors.create("ERR_OAUTH_STATE_MISSING");
      const used = await ctx.verifications.consume({ purpose: STATE, secret: state, subject: id, browser: req });
      if (!used.ok) throw stateError(used.reason);
      if (!used.binding) throw oauthErrors.create("ERR_OAUTH_BROWSER_MISMATCH");
      return { state, binding: used.binding, returnTo: typeof used.data.returnTo === "string" ? used.data.returnTo : "/", verification: used };
    },

    /**
     * Exchanges the code with the PKCE verifier, validates the ID token (issuer, audience, expiry,
     * nonce, signature from the issuer's JWKS: openid-client), and reads the user. Writes nothing.
     */
    async exchange(query: Record<string, unknown>, attempt: UsedAttempt): Promise<CallbackResult> {
      if (typeof query.error === "string") throw oauthErrors.create("ERR_OAUTH_DENIED", { detail: query.error.slice(0, 100) });
      const server = await getConfiguration().catch((error: unknown) => {
        throw authErrorIn(error) ?? oauthErrors.create("ERR_OAUTH_PROVIDER_UNAVAILABLE", { cause: error, retryAfter: 30 });
      });
      // The URL the provider redirected to, rebuilt from configuration (never from the Host header).
      const current = new URL(redirectUri);
      for (const [key, value] of Object.entries(query)) if (typeof value === "string") current.searchParams.set(key, value);
      const { state, binding } = attempt;
      try {
        const tokens = await client.authorizationCodeGrant(server, current, {
          pkceCodeVerifier: derive(binding, "pkce", state),
          expectedState: state,
          ...(config.kind === "oidc" ? { expectedNonce: derive(binding, "nonce", state), idTokenExpected: true } : {}),
          ...(config.kind === "oidc" && attempt.verification.link?.reauthenticate ? { maxAge: STEP_UP_MAX_AGE } : {}),
        });
        const profile = config.kind === "oidc" ? await oidcProfile(server, tokens) : await oauth2Profile(server, config, tokens.access_token);
        return { profile, issuer: config.kind === "oidc" ? server.serverMetadata().issuer : config.issuer, refreshToken: tokens.refresh_token };
      } catch (error) {
        throw mapClientError(error, config.kind);
      }
    },
  };
}

/** Text PostgreSQL can store: no NUL, no unpaired surrogate (what a user may put in a profile name at the provider). */
const storable = (v: unknown): v is string => typeof v === "string" && v.length > 0 && isPgText(v);
/** A profile field we keep, or undefined: an unusable display field is dropped rather than failing the sign-in. */
const text = (v: unknown) => (storable(v) && v.length <= 512 ? v : undefined);
/** Only an https picture URL: apps put it in `src`/`href`, where `javascript:` or `data:` would be script. */
const pictureUrl = (v: unknown) => {
  const value = text(v);
  return value && URL.canParse(value) && new URL(value).protocol === "https:" ? value : undefined;
};

async function oidcProfile(server: client.Configuration, tokens: client.TokenEndpointResponse & client.TokenEndpointResponseHelpers): Promise<OAuthProfile> {
  const claims = tokens.claims();
  if (!claims) throw oauthErrors.create("ERR_OAUTH_ID_TOKEN_INVALID", { detail: "no ID token" });
  // OIDC Core §2: at most 255 ASCII characters. It becomes `source_identifier`, so nothing PostgreSQL refuses.
  if (!storable(claims.sub) || claims.sub.length > 255) throw oauthErrors.create("ERR_OAUTH_PROFILE_INVALID", { detail: "sub" });
  let merged: Record<string, unknown> = { ...claims };
  // Many providers put email/name in userinfo only; fetchUserInfo checks its sub equals the ID token's.
  if (merged.email === undefined && server.serverMetadata().userinfo_endpoint) {
    merged = { ...(await client.fetchUserInfo(server, tokens.access_token, claims.sub)), ...merged };
  }
  const email = text(merged.email);
  return {
    subject: claims.sub,
    // Only an address the provider says it verified.
    verifiedEmail: email && merged.email_verified === true ? email.toLowerCase() : null,
    name: text(merged.name),
    username: text(merged.preferred_username),
    picture: pictureUrl(merged.picture),
  };
}

async function oauth2Profile(server: client.Configuration, config: OAuth2Config, accessToken: string): Promise<OAuthProfile> {
  const get = async (url: string) => {
    const res = await client.fetchProtectedResource(server, accessToken, new URL(url), "GET");
    if (!res.ok) throw oauthErrors.create(res.status >= 500 ? "ERR_OAUTH_PROVIDER_UNAVAILABLE" : "ERR_OAUTH_PROFILE_INVALID", { detail: `${url} answered ${res.status}` });
    return res.json();
  };
  let profile: OAuthProfile;
  try {
    profile = await config.profile(get);
  } catch (error) {
    if (error instanceof AuthError) throw error;
    throw oauthErrors.create("ERR_OAUTH_PROFILE_INVALID", { cause: error, detail: (error as Error).message });
  }
  if (!/^[A-Za-z0-9._-]{1,128}$/.test(profile.subject)) throw oauthErrors.create("ERR_OAUTH_PROFILE_INVALID", { detail: "subject" });
  const email = text(profile.verifiedEmail);
  return { subject: profile.subject, verifiedEmail: email ? email.toLowerCase() : null, name: text(profile.name), username: text(profile.username), picture: pictureUrl(profile.picture) };
}
