import * as client from "openid-client";
import { oauthErrors } from "./errors.js";

/** Which plain-http URLs openid-client may talk to (everything else must be https). */
export interface EndpointPolicy {
  /** Core's `production`: loopback http is a development convenience only. */
  production: boolean;
  /** The app said `allowInsecureRequests: true`: plain http to any host. */
  allowInsecureRequests: boolean;
}

/** localhost, 127.0.0.0/8 and ::1 (WHATWG URL has already normalised `127.1`, `0x7f000001`, …). */
export function isLoopbackHost(hostname: string): boolean {
  return hostname === "localhost" || hostname === "[::1]" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(hostname);
}

/**
 * Why `url` must not be used (undefined when it may): https always; plain http only to a loopback
 * host outside production, or anywhere when `allowInsecureRequests` is set. Plain http to another
 * host would send the authorization code, the PKCE verifier and the client secret in clear text,
 * and let anyone on the path answer with their own keys or user (RFC 9700 §2.6, OIDC Core §16.17).
 */
export function endpointRefusal(url: string | URL, policy: EndpointPolicy): string | undefined {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return "is not a URL";
  }
  if (parsed.protocol === "https:") return undefined;
  if (parsed.protocol !== "http:") return `uses ${parsed.protocol}; only https is allowed`;
  if (policy.allowInsecureRequests) return undefined;
  if (!isLoopbackHost(parsed.hostname)) return "is plain http to a host that is not loopback; use https (or set allowInsecureRequests: true)";
  if (policy.production) return "is plain http to loopback, which is allowed only outside production; use https";
  return undefined;
}

/** The endpoint fields of discovered metadata that a client (or the browser it redirects) may use. */
function endpointsOf(metadata: client.ServerMetadata): [string, string][] {
  const found: [string, string][] = [["issuer", metadata.issuer]];
  for (const [key, value] of Object.entries(metadata)) {
    if ((key.endsWith("_endpoint") || key === "jwks_uri") && typeof value === "string") found.push([key, value]);
  }
  for (const [key, value] of Object.entries(metadata.mtls_endpoint_aliases ?? {})) {
    if (typeof value === "string") found.push([`mtls_endpoint_aliases.${key}`, value]);
  }
  return found;
}

/**
 * Refuses discovered metadata that names an endpoint the policy does not allow, before anything is
 * sent there: 502 `ERR_OAUTH_ENDPOINT_INSECURE` naming the field.
 */
export function checkMetadata(metadata: client.ServerMetadata, policy: EndpointPolicy): void {
  for (const [field, url] of endpointsOf(metadata)) {
    const reason = endpointRefusal(url, policy);
    if (reason) throw oauthErrors.create("ERR_OAUTH_ENDPOINT_INSECURE", { detail: `discovery: ${field} (${url}) ${reason}` });
  }
}

/**
 * The `fetch` openid-client uses: checks every URL against the policy first. openid-client's own
 * https switch is all or nothing per configuration, and a loopback issuer in development needs it
 * off, so this is what keeps its discovered endpoints (and a preset's API URLs) honest.
 */
export function guardedFetch(policy: EndpointPolicy, fetchImpl: typeof fetch = fetch): client.CustomFetch {
  return (url, options) => {
    const reason = endpointRefusal(url, policy);
    if (reason) return Promise.reject(oauthErrors.create("ERR_OAUTH_ENDPOINT_INSECURE", { detail: `${url} ${reason}` }));
    return fetchImpl(url, options as RequestInit);
  };
}
