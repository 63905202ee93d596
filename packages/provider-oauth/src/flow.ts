import { createHash, createHmac } from "node:crypto";
import { AuthError, isPgText, type ProviderContext } from "@erebus/core";
import * as client from "openid-client";
import { oauthErrors } from "./errors.js";
import type { ResolvedOAuthOptions } from "./options.js";
import type { OAuth2Config, ProviderConfig } from "./presets.js";
import { checkMetadata, endpointRefusal, guardedFetch, type EndpointPolicy } from "./secure-endpoints.js";
import type { OAuthProfile } from "./source-type.js";

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

const sha256 = (value: string) => createHash("sha256").update(value).digest("hex");
/**
 * The PKCE verifier and the OIDC nonce are derived from the browser's binding secret and the state,
 * so the database keeps only hashes and a stolen state row is useless without the cookie.
 */
const derive = (binding: string, purpose: "pkce" | "nonce", state: string) =>
  createHmac("sha256", binding).update(`${purpose}:${state}`).digest("base64url");

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
  returnTo: string;
  refreshToken: string | undefined;
}

/** The authorization-code flow for one configured provider. */
export function createFlow(ctx: ProviderContext, id: string, config: ProviderConfig, options: ResolvedOAuthOptions) {
  const redirectUri = `${ctx.baseURL.origin}${ctx.basePath === "/" ? "" : ctx.basePath}/oauth/${id}/callback`;
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

    /** Stores the attempt and returns the provider's authorization URL (PKCE S256 always, state always, nonce for OIDC). */
    async start(binding: string, returnTo: string): Promise<URL> {
      let server: client.Configuration;
      try {
        server = await getConfiguration();
      } catch (error) {
        const own = authErrorIn(error);
        ctx.logger.warn("oauth discovery failed", { provider: id, error: own?.detail ?? (error as Error).message });
        throw own ?? oauthErrors.create("ERR_OAUTH_PROVIDER_UNAVAILABLE", { cause: error, retryAfter: 30 });
      }
      const state = ctx.random(32).toString("base64url");
      const now = ctx.clock();
      await ctx.db.query(
        `INSERT INTO erebus_oauth_states (state_hash, provider, binding_hash, return_to, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)`,
        [sha256(state), id, sha256(binding), returnTo, now, new Date(now.getTime() + options.stateTtl * 1000)],
      );
      await ctx.db.query(
        "DELETE FROM erebus_oauth_states WHERE state_hash IN (SELECT state_hash FROM erebus_oauth_states WHERE expires_at < $1 LIMIT 20)",
        [new Date(now.getTime() - 86_400_000)],
      );
      const parameters: Record<string, string> = {
        redirect_uri: redirectUri,
        scope: config.scopes.join(" "),
        code_challenge: await client.calculatePKCECodeChallenge(derive(binding, "pkce", state)),
        code_challenge_method: "S256",
        state,
        ...(config.params ?? {}),
      };
      if (config.kind === "oidc") parameters.nonce = derive(binding, "nonce", state);
      return client.buildAuthorizationUrl(server, parameters);
    },

    /**
     * Handles the callback: consumes the state (once, in the browser that started it), exchanges the
     * code with the PKCE verifier, validates the ID token (issuer, audience, expiry, nonce, signature
     * from the issuer's JWKS: openid-client), and reads the user.
     */
    async callback(query: Record<string, unknown>, bindings: readonly string[]): Promise<CallbackResult> {
      const state = typeof query.state === "string" ? query.state : undefined;
      if (!state) throw oauthErrors.create("ERR_OAUTH_STATE_MISSING");
      if (bindings.length === 0) throw oauthErrors.create("ERR_OAUTH_BROWSER_MISMATCH");
      const now = ctx.clock();
      const hashes = new Map(bindings.map((b) => [sha256(b), b]));
      const { rows } = await ctx.db.query<{ return_to: string; binding_hash: string }>(
        `UPDATE erebus_oauth_states SET consumed_at = $4
         WHERE state_hash = $1 AND provider = $2 AND binding_hash = ANY($3::text[]) AND consumed_at IS NULL AND expires_at > $4
         RETURNING return_to, binding_hash`,
        [sha256(state), id, [...hashes.keys()], now],
      );
      const binding = rows[0] && hashes.get(rows[0].binding_hash);
      if (!rows[0] || !binding) {
        const { rows: found } = await ctx.db.query<{ binding_hash: string; consumed_at: Date | null; provider: string }>(
          "SELECT binding_hash, consumed_at, provider FROM erebus_oauth_states WHERE state_hash = $1",
          [sha256(state)],
        );
        const row = found[0];
        if (!row || row.provider !== id) throw oauthErrors.create("ERR_OAUTH_STATE_INVALID");
        if (!hashes.has(row.binding_hash)) throw oauthErrors.create("ERR_OAUTH_BROWSER_MISMATCH");
        if (row.consumed_at) throw oauthErrors.create("ERR_OAUTH_STATE_USED");
        throw oauthErrors.create("ERR_OAUTH_STATE_EXPIRED");
      }
      const returnTo = rows[0].return_to;
      if (typeof query.error === "string") throw oauthErrors.create("ERR_OAUTH_DENIED", { detail: query.error.slice(0, 100) });

      const server = await getConfiguration().catch((error: unknown) => {
        throw authErrorIn(error) ?? oauthErrors.create("ERR_OAUTH_PROVIDER_UNAVAILABLE", { cause: error, retryAfter: 30 });
      });
      // The URL the provider redirected to, rebuilt from configuration (never from the Host header).
      const current = new URL(redirectUri);
      for (const [key, value] of Object.entries(query)) if (typeof value === "string") current.searchParams.set(key, value);
      try {
        const tokens = await client.authorizationCodeGrant(server, current, {
          pkceCodeVerifier: derive(binding, "pkce", state),
          expectedState: state,
          ...(config.kind === "oidc" ? { expectedNonce: derive(binding, "nonce", state), idTokenExpected: true } : {}),
        });
        const profile = config.kind === "oidc" ? await oidcProfile(server, tokens) : await oauth2Profile(server, config, tokens.access_token);
        return { profile, issuer: config.kind === "oidc" ? server.serverMetadata().issuer : config.issuer, returnTo, refreshToken: tokens.refresh_token };
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
