import { parseOptions } from "@erebus/core/provider";
import * as z from "zod";

/** COSE algorithm ids (RFC 9053, IANA COSE registry) this provider can verify through @simplewebauthn/server. */
export const COSE_ALGORITHMS = { EdDSA: -8, ES256: -7, ES384: -35, ES512: -36, RS256: -257, PS256: -37 } as const;
const knownAlgorithms = new Set<number>(Object.values(COSE_ALGORITHMS));

const AAGUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** Every option of `passkeyProvider()`, with its default. */
export const passkeyOptionsSchema = z.strictObject({
  /** The name authenticators show next to the passkey ("Example App"). Default: the host of core's `baseURL`. */
  rpName: z.string().min(1).max(64).regex(/^[^\u0000-\u001f\u007f]+$/, "must be one line of printable text").optional(),
  /**
   * The relying party id passkeys are bound to. Default: the host name of core's `baseURL`. May be a
   * parent domain of it (`example.com` for `https://app.example.com`), so passkeys work on its other
   * subdomains too. Never taken from a request's headers.
   */
  rpId: z.string().regex(/^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/, "must be a lower-case host name like example.com").optional(),
  /** `required`: refuse registrations and sign-ins without user verification (PIN, biometrics). */
  userVerification: z.enum(["preferred", "required"]).default("preferred"),
  /** `none` (default): no attestation asked for, nothing about the authenticator model trusted. `direct`: ask for it and verify its statement. */
  attestation: z.enum(["none", "direct"]).default("none"),
  /** Seconds a challenge stays usable (WebAuthn ceremonies are interactive; the issue asks 5 minutes). */
  challengeTtl: z.number().int().min(30).max(600).default(300),
  /** Public key algorithms offered and accepted, most preferred first (COSE ids: -8 EdDSA, -7 ES256, -257 RS256, …). */
  algorithms: z
    .array(z.number().int().refine((id) => knownAlgorithms.has(id), "must be a COSE algorithm id this provider verifies: -8, -7, -35, -36, -257, -37"))
    .min(1)
    .default([COSE_ALGORITHMS.EdDSA, COSE_ALGORITHMS.ES256, COSE_ALGORITHMS.RS256]),
  /** Most passkeys one person may register. */
  maxPasskeys: z.number().int().min(1).max(100).default(20),
  /** Seconds since the session last proved a credential within which deleting a passkey is allowed (step-up). Default: core's `people.freshAge` (600). */
  freshAge: z.number().int().min(30).max(86_400).optional(),
  /** More AAGUID → name entries (lower-case AAGUIDs), over the built-in few. */
  authenticatorNames: z.record(z.string().regex(AAGUID, "must be a lower-case AAGUID"), z.string().min(1).max(64)).default({}),
  /** Requests per client IP per minute. */
  rateLimit: z
    .strictObject({ options: z.number().int().positive().default(30), verify: z.number().int().positive().default(30) })
    .default({ options: 30, verify: 30 }),
});

export type PasskeyOptions = z.input<typeof passkeyOptionsSchema>;
export type ResolvedPasskeyOptions = z.output<typeof passkeyOptionsSchema>;

export const resolvePasskeyOptions = (input: unknown): ResolvedPasskeyOptions => parseOptions(passkeyOptionsSchema, input ?? {}, "passkeyProvider");

/**
 * The relying party id and origin, fixed from core's `baseURL` once (WebAuthn §5.1.3/§7.1: the
 * server checks the origin and the RP id hash against values it knows, never request headers).
 */
export function relyingParty(options: ResolvedPasskeyOptions, baseURL: URL): { rpId: string; origin: string; rpName: string } {
  const host = baseURL.hostname;
  const rpId = options.rpId ?? host;
  // WebAuthn §5.1.3: the RP id must be the origin's effective domain or a registrable suffix of it.
  if (rpId !== host && !host.endsWith(`.${rpId}`)) {
    throw new TypeError(`passkeyProvider: option "rpId" (${rpId}) must be the host of baseURL (${host}) or a parent domain of it`);
  }
  if (/^\d+\.\d+\.\d+\.\d+$|^\[/.test(host)) {
    throw new TypeError(`passkeyProvider: baseURL ${baseURL.origin} is an IP address; WebAuthn needs a host name (use http://localhost:<port> in development)`);
  }
  return { rpId, origin: baseURL.origin, rpName: options.rpName ?? baseURL.host };
}
