import { parseOptions } from "@erebus/core/provider";
import * as z from "zod";

const DAY = 86_400;

/** Every option of `apiKeyProvider()`, with its default. */
export const apiKeyOptionsSchema = z.strictObject({
  /** Key prefix, so scanners can find leaked keys: `erb` gives `erb_<id>_<secret><checksum>`. */
  prefix: z.string().regex(/^[a-z][a-z0-9]{1,15}$/, "must be 2-16 lower-case letters and digits").default("erb"),
  /**
   * A server secret (≥ 32 bytes) mixed into stored hashes (HMAC-SHA-256): a stolen table then
   * cannot even be checked against guesses. Without it, keys are stored as SHA-256. Changing it
   * invalidates every key. Read it from the environment, never commit it.
   */
  pepper: z.string().min(32, "must be at least 32 characters").optional(),
  /** Seconds a valid key's look-up may be served from memory. Revocations reach other instances at once (LISTEN/NOTIFY) and always within this time. */
  cacheTtl: z.number().int().min(0).max(300).default(10),
  /** Most look-ups kept in memory (and as many remembered unknown ids). */
  cacheSize: z.number().int().min(0).max(1_000_000).default(10_000),
  /**
   * Seconds an unknown key id is remembered, so repeating a made-up key costs no query. A key created
   * with that id clears it at once (on other instances through LISTEN/NOTIFY); 0 turns it off.
   */
  negativeCacheTtl: z.number().int().min(0).max(300).default(10),
  /**
   * Failed verifications (well-formed keys that are unknown, wrong, revoked, expired or rotated) a
   * client address may make per `failedVerificationWindow`, counted by core's Postgres limiter across
   * every instance; past it, every key from that address is 429 until the window ends.
   */
  maxFailedVerifications: z.number().int().positive().max(1_000_000).default(30),
  /** Seconds of the failed-verification window. */
  failedVerificationWindow: z.number().int().positive().max(DAY).default(60),
  /** Seconds the old secret keeps working after a rotation, unless the request says otherwise. */
  rotationGracePeriod: z.number().int().min(0).max(30 * DAY).default(DAY),
  /** Seconds between two writes of a key's `last_used_at`. */
  lastUsedInterval: z.number().int().min(1).max(DAY).default(60),
  /** Scopes a key may carry; `undefined` allows any scope token. */
  allowedScopes: z.array(z.string().regex(/^[a-z][a-z0-9_.:-]{0,63}$/)).optional(),
  /** Longest lifetime a web user may give a key, in days; keys never expire when `expiresInDays` is left out. */
  maxExpiresInDays: z.number().int().positive().max(3650).default(365),
  /** Active keys per owner. */
  maxKeysPerUser: z.number().int().positive().max(10_000).default(50),
  /** Key creations per client and minute. */
  createPerMinute: z.number().int().positive().default(10),
  /**
   * Step-up: creating or rotating a key over HTTP (a new secret that acts as the person) needs a
   * session that proved a credential within core's `people.freshAge` (403 `ERR_REAUTH_REQUIRED`
   * otherwise; a step-up with `intent: "reauthenticate"` makes it fresh). Revoking and listing never do.
   */
  freshSession: z.boolean().default(true),
});

export type ApiKeyOptions = z.input<typeof apiKeyOptionsSchema>;
export type ResolvedApiKeyOptions = z.output<typeof apiKeyOptionsSchema>;

export const resolveApiKeyOptions = (input: unknown): ResolvedApiKeyOptions => parseOptions(apiKeyOptionsSchema, input ?? {}, "apiKeyProvider");
