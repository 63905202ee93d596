import type { OAuthProfile } from "./source-type.js";

/** An OpenID Connect provider: endpoints from the issuer's discovery document (or given). */
export interface OidcConfig {
  kind: "oidc";
  issuer: string;
  clientId: string;
  clientSecret?: string | undefined;
  scopes: string[];
  /** Skip discovery: give the endpoints yourself (`issuer` is still what ID tokens must carry). */
  endpoints?: { authorization: string; token: string; jwks: string; userinfo?: string | undefined } | undefined;
  /** Extra authorization parameters (`prompt`, `hd`, …). */
  params?: Record<string, string> | undefined;
  label?: string | undefined;
}

/** A plain OAuth 2.0 provider (no ID token): the user comes from its API. */
export interface OAuth2Config {
  kind: "oauth2";
  /** Used as `metadata.issuer` and to name the provider in errors. */
  issuer: string;
  clientId: string;
  clientSecret: string;
  scopes: string[];
  endpoints: { authorization: string; token: string };
  /** Reads the user with the access token; `get(url)` is an authorized GET returning parsed JSON. */
  profile(get: (url: string) => Promise<unknown>): Promise<OAuthProfile>;
  params?: Record<string, string> | undefined;
  label?: string | undefined;
}

export type ProviderConfig = OidcConfig | OAuth2Config;

interface Credentials {
  clientId: string;
  clientSecret: string;
  scopes?: string[];
  label?: string;
}

const str = (value: unknown) => (typeof value === "string" && value.length > 0 ? value : undefined);

/**
 * Any OpenID Connect issuer, by discovery (`<issuer>/.well-known/openid-configuration`).
 *
 * @example
 * oidc({ issuer: "https://auth.example.com", clientId: "…", clientSecret: "…" })
 */
export function oidc(options: { issuer: string; clientId: string; clientSecret?: string; scopes?: string[]; endpoints?: OidcConfig["endpoints"]; params?: Record<string, string>; label?: string }): OidcConfig {
  return { kind: "oidc", scopes: ["openid", "email", "profile"], ...options };
}

/** Google (OIDC). */
export function google(options: Credentials & { hostedDomain?: string }): OidcConfig {
  return oidc({
    issuer: "https://accounts.google.com",
    clientId: options.clientId,
    clientSecret: options.clientSecret,
    scopes: options.scopes ?? ["openid", "email", "profile"],
    label: options.label ?? "Google",
    ...(options.hostedDomain ? { params: { hd: options.hostedDomain } } : {}),
  });
}

/**
 * Microsoft Entra ID (OIDC). `tenant` is a tenant id, or `common` / `organizations` / `consumers`
 * for multi-tenant apps: their discovery document names the issuer
 * `https://login.microsoftonline.com/{tenantid}/v2.0`, and openid-client checks each ID token's
 * `iss` against it with the token's own `tid` filled in.
 */
export function microsoft(options: Credentials & { tenant?: string }): OidcConfig {
  const tenant = options.tenant ?? "common";
  if (!/^[A-Za-z0-9.-]+$/.test(tenant)) throw new TypeError(`microsoft: tenant "${tenant}" is not a tenant id or common/organizations/consumers`);
  return oidc({
    issuer: `https://login.microsoftonline.com/${tenant}/v2.0`,
    clientId: options.clientId,
    clientSecret: options.clientSecret,
    scopes: options.scopes ?? ["openid", "email", "profile"],
    label: options.label ?? "Microsoft",
  });
}

/**
 * GitHub (OAuth 2.0, not OIDC): the user from `GET /user`, the email only when `GET /user/emails`
 * lists it as primary and verified. `baseUrl`/`apiUrl` point at GitHub Enterprise Server.
 */
export function github(options: Credentials & { baseUrl?: string; apiUrl?: string }): OAuth2Config {
  const base = (options.baseUrl ?? "https://github.com").replace(/\/+$/, "");
  const api = (options.apiUrl ?? "https://api.github.com").replace(/\/+$/, "");
  return {
    kind: "oauth2",
    issuer: base,
    clientId: options.clientId,
    clientSecret: options.clientSecret,
    scopes: options.scopes ?? ["read:user", "user:email"],
    label: options.label ?? "GitHub",
    endpoints: { authorization: `${base}/login/oauth/authorize`, token: `${base}/login/oauth/access_token` },
    async profile(get) {
      const user = (await get(`${api}/user`)) as Record<string, unknown>;
      const id = user.id;
      if (typeof id !== "number" && typeof id !== "string") throw new Error("GitHub /user has no id");
      const emails = (await get(`${api}/user/emails`).catch(() => [])) as unknown;
      const primary = Array.isArray(emails)
        ? (emails as Record<string, unknown>[]).find((e) => e.primary === true && e.verified === true)
        : undefined;
      return { subject: String(id), verifiedEmail: str(primary?.email) ?? null, name: str(user.name), username: str(user.login), picture: str(user.avatar_url) };
    },
  };
}

/** Discord (OAuth 2.0): the user from `GET /users/@me`; its email only when `verified` is true. */
export function discord(options: Credentials & { baseUrl?: string }): OAuth2Config {
  const base = (options.baseUrl ?? "https://discord.com").replace(/\/+$/, "");
  return {
    kind: "oauth2",
    issuer: base,
    clientId: options.clientId,
    clientSecret: options.clientSecret,
    scopes: options.scopes ?? ["identify", "email"],
    label: options.label ?? "Discord",
    endpoints: { authorization: `${base}/oauth2/authorize`, token: `${base}/api/oauth2/token` },
    async profile(get) {
      const user = (await get(`${base}/api/users/@me`)) as Record<string, unknown>;
      if (typeof user.id !== "string") throw new Error("Discord /users/@me has no id");
      return {
        subject: user.id,
        verifiedEmail: user.verified === true ? (str(user.email) ?? null) : null,
        name: str(user.global_name),
        username: str(user.username),
      };
    },
  };
}
