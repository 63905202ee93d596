import { hash, randomBytes, timingSafeEqual } from "node:crypto";
import { AuthError, USER_DEACTIVATED_CHANNEL, type ProviderAuthResult, type ProviderContext, type UserReference } from "@erebus/core";
import type { Request } from "express";
import { apiKeyErrors } from "./errors.js";
import { looksLikeKey, parseKey, type ParsedKey } from "./key.js";
import type { ResolvedApiKeyOptions } from "./options.js";
import { CREATED_PREFIX, KEY_CHANGED_CHANNEL, type KeyStore } from "./store.js";

interface CachedKey {
  id: string;
  secretHash: Buffer;
  previousHash: Buffer | null;
  previousValidUntil: Date | null;
  scopes: string[];
  expiresAt: Date | null;
  revokedAt: Date | null;
  user: UserReference;
  /** The user who created the key; a deactivated owner's keys stop working too. */
  ownerId: string | null;
  ownerActive: boolean;
  /** Which pepper hashed the secret; null for keys older than the column. */
  pepperFingerprint: string | null;
  fetchedAt: number;
  /**
   * Salted digests ({@link createVerifier}'s `digestOf`) of a secret that already matched
   * `secretHash` / `previousHash` in this entry: a repeated request compares against them instead
   * of computing the peppered HMAC again. They live and die with the entry (a revocation or rotation
   * drops it), and are never the secret itself.
   */
  verifiedCurrent: Buffer | null;
  verifiedPrevious: Buffer | null;
}

interface LookupRow extends UserReference {
  __key_id: string;
  __secret_hash: string;
  __previous_secret_hash: string | null;
  __previous_valid_until: Date | null;
  __scopes: string[];
  __expires_at: Date | null;
  __revoked_at: Date | null;
  __owner_id: string | null;
  __owner_active: boolean | null;
  __pepper_fingerprint: string | null;
}

/** The credential in a request: `X-API-Key: <key>`, or `Authorization: Bearer <key>` when it has our prefix. */
function credentialOf(req: Request, prefix: string): string | null {
  const header = req.headers["x-api-key"];
  if (header !== undefined) return typeof header === "string" ? header.trim() : "";
  const authorization = req.headers.authorization;
  const match = authorization ? /^Bearer +(\S+) *$/i.exec(authorization) : null;
  return match && looksLikeKey(match[1]!, prefix) ? match[1]! : null;
}

/** Sets `key → value` in a map used as a bounded LRU: the oldest entry goes when it is full. */
function remember<V>(map: Map<string, V>, key: string, value: V, size: number): void {
  map.delete(key);
  map.set(key, value);
  if (map.size > size) map.delete(map.keys().next().value!);
}

/** Most limited client addresses remembered per instance (past it, the oldest costs a limiter query again). */
const BLOCKED_ADDRESSES = 10_000;

/** Failures that count against the client address: a well-formed key that did not verify. */
const COUNTED_FAILURES = new Set(["ERR_APIKEY_INVALID", "ERR_APIKEY_REVOKED", "ERR_APIKEY_EXPIRED", "ERR_APIKEY_ROTATED", "ERR_APIKEY_PEPPER_MISMATCH"]);

/**
 * Verifies API keys from request headers. No database write per request: a valid key's look-up is
 * served from memory for `cacheTtl` seconds, revocations and rotations evict it on every instance
 * at once (LISTEN/NOTIFY) and at the latest when the entry ages out, and `last_used_at` is written
 * at most once per `lastUsedInterval` per key. An unknown id is remembered for `negativeCacheTtl`
 * seconds (a creation of that id clears it), and failed verifications are limited per client address.
 */
export function createVerifier(ctx: ProviderContext, store: KeyStore, options: ResolvedApiKeyOptions) {
  const cache = new Map<string, CachedKey>();
  /** Unknown ids → until when (ms) they are answered without a query. */
  const missing = new Map<string, number>();
  /**
   * Bumped by every key change this instance hears of: a look-up that started before a change may
   * have read the database before the key existed, so its miss is not remembered.
   */
  let generation = 0;
  /** Client addresses over the failure limit → until when (ms): refused here without a query. */
  const blocked = new Map<string, number>();
  const failures = ctx.rateLimit({ name: "verify-failed", points: options.maxFailedVerifications, duration: options.failedVerificationWindow });
  const lastWrite = new Map<string, number>();
  let listening: Promise<void> | undefined;
  /** Set once `listen()` has settled: the hot path then skips awaiting it. */
  let listened = false;
  /**
   * The HMAC of a presented secret (an HMAC object's set-up, then hex) was the largest cost of a
   * cached key's request (~12 of ~20 µs). Once a secret has matched a cached entry's hash, the entry
   * keeps a one-shot SHA-256 of it under this verifier's random salt (~1 µs), and the next request
   * with that secret compares with that. Keeping a digest rather than the secret means a heap dump
   * shows no working key; the salt, random per verifier, means the digest is no SHA-256 of the
   * secret found anywhere else (core's token cache, a log).
   */
  const salt = randomBytes(16).toString("base64");
  const digestOf = (secret: string) => hash("sha256", salt + secret, "buffer");

  /** A key was created: an earlier miss of its id is stale (nothing cached can be this key yet). */
  function forgetMiss(id: string): void {
    generation++;
    missing.delete(id);
  }
  function forget(id: string): void {
    forgetMiss(id);
    cache.delete(id);
  }

  function listen(): Promise<void> {
    listening ??= (async () => {
      try {
        await ctx.db.listen(KEY_CHANGED_CHANNEL, (payload) => (payload.startsWith(CREATED_PREFIX) ? forgetMiss(payload.slice(CREATED_PREFIX.length)) : forget(payload)));
        await ctx.db.listen(USER_DEACTIVATED_CHANNEL, (userId) => {
          for (const [id, entry] of cache) if (entry.user.id === userId || entry.ownerId === userId) cache.delete(id);
        });
      } catch (error) {
        // Without notifications the TTL still bounds how long a revoked key keeps working.
        ctx.logger.warn("api key cache: LISTEN failed; revocations take up to cacheTtl", { error: (error as Error).message });
      }
      listened = true;
    })();
    return listening;
  }

  /** A fresh cached look-up of `id`, without a promise (most requests end here). */
  function cached(id: string, now: number): CachedKey | undefined {
    const hit = cache.get(id);
    if (hit && now - hit.fetchedAt < options.cacheTtl * 1000) {
      remember(cache, id, hit, options.cacheSize); // LRU: re-insert as newest
      return hit;
    }
    return undefined;
  }

  async function lookup(id: string): Promise<CachedKey | undefined> {
    const now = ctx.clock().getTime();
    const hit = cached(id, now);
    if (hit) return hit;
    const missedUntil = missing.get(id);
    if (missedUntil !== undefined) {
      // A made-up id repeated (an attacker's, or a client's with a deleted key) costs no query.
      if (missedUntil > now) return undefined;
      missing.delete(id);
    }
    const startedAt = generation;
    const { rows } = await ctx.db.query<LookupRow>(
      `SELECT u.*, k.id AS __key_id, k.secret_hash AS __secret_hash, k.previous_secret_hash AS __previous_secret_hash,
              k.previous_valid_until AS __previous_valid_until, k.scopes AS __scopes, k.expires_at AS __expires_at,
              k.revoked_at AS __revoked_at, k.owner_id AS __owner_id, o.is_active AS __owner_active,
              k.pepper_fingerprint AS __pepper_fingerprint
       FROM erebus_api_keys k
       JOIN user_references u ON u.id = k.user_id
       LEFT JOIN user_references o ON o.id = k.owner_id
       WHERE k.id = $1`,
      [id],
    );
    const row = rows[0];
    if (!row) {
      cache.delete(id);
      if (options.negativeCacheTtl > 0 && options.cacheSize > 0 && generation === startedAt) {
        remember(missing, id, now + options.negativeCacheTtl * 1000, options.cacheSize);
      }
      return undefined;
    }
    const { __key_id, __secret_hash, __previous_secret_hash, __previous_valid_until, __scopes, __expires_at, __revoked_at, __owner_id, __owner_active, __pepper_fingerprint, ...user } =
      row;
    const entry: CachedKey = {
      id: __key_id,
      secretHash: Buffer.from(__secret_hash, "hex"),
      previousHash: __previous_secret_hash ? Buffer.from(__previous_secret_hash, "hex") : null,
      previousValidUntil: __previous_valid_until,
      scopes: __scopes,
      expiresAt: __expires_at,
      revokedAt: __revoked_at,
      user,
      ownerId: __owner_id,
      ownerActive: __owner_active !== false,
      pepperFingerprint: __pepper_fingerprint,
      fetchedAt: now,
      verifiedCurrent: null,
      verifiedPrevious: null,
    };
    if (options.cacheTtl > 0 && options.cacheSize > 0) remember(cache, id, entry, options.cacheSize);
    return entry;
  }

  function touch(id: string, now: Date): void {
    const last = lastWrite.get(id) ?? 0;
    if (now.getTime() - last < options.lastUsedInterval * 1000) return;
    lastWrite.set(id, now.getTime());
    if (lastWrite.size > options.cacheSize * 2) lastWrite.delete(lastWrite.keys().next().value!);
    // Off the request path; the WHERE keeps it to one write per interval across instances too.
    ctx.db
      .query("UPDATE erebus_api_keys SET last_used_at = $2 WHERE id = $1 AND (last_used_at IS NULL OR last_used_at <= $3)", [
        id,
        now,
        new Date(now.getTime() - options.lastUsedInterval * 1000),
      ])
      .catch((error: Error) => ctx.logger.warn("api key: last_used_at not written", { keyId: id, error: error.message }));
  }

  /**
   * Counts a failed verification against the client address in core's shared limiter; past the
   * limit the address is remembered here, so its further requests cost no query at all.
   */
  async function countFailure(client: string): Promise<void> {
    try {
      await failures.consume(client);
    } catch (error) {
      if (error instanceof AuthError && error.code === "ERR_RATE_LIMITED") {
        remember(blocked, client, ctx.clock().getTime() + (error.retryAfter ?? options.failedVerificationWindow) * 1000, BLOCKED_ADDRESSES);
        ctx.logger.warn("api key: failed verifications limited for a client address", { ip: client });
        throw error;
      }
      // The limiter's store is unreachable: the request fails anyway, with its own error.
      ctx.logger.warn("api key: failed verification not counted", { error: (error as Error).message });
    }
  }

  /** Rethrows a failed check, first counting it against the client's address (a query) when it is one that counts. */
  async function counted(req: Request, error: unknown): Promise<never> {
    if (error instanceof AuthError && COUNTED_FAILURES.has(error.code)) await countFailure(req.ip ?? "unknown");
    throw error;
  }

  /** Whether a presented secret is the entry's current or (rotated-out) previous one. */
  function matches(entry: CachedKey, secret: string): { current: boolean; previous: boolean } {
    const digest = digestOf(secret);
    // A secret seen before: constant-time comparisons of fixed-length digests. Which one matched, or
    // that none did, only tells the caller what it already knows (it holds the secret, or it does
    // not, and then the full check below follows anyway).
    if (entry.verifiedCurrent !== null && timingSafeEqual(digest, entry.verifiedCurrent)) return { current: true, previous: false };
    if (entry.verifiedPrevious !== null && timingSafeEqual(digest, entry.verifiedPrevious)) return { current: false, previous: true };
    const presented = Buffer.from(store.hashSecret(secret), "hex");
    // Constant-time comparisons, both always made, so timing tells nothing about either hash.
    const current = timingSafeEqual(presented, entry.secretHash);
    const previous = entry.previousHash !== null && timingSafeEqual(presented, entry.previousHash);
    if (current) entry.verifiedCurrent = digest;
    else if (previous) entry.verifiedPrevious = digest;
    return { current, previous };
  }

  /**
   * Checks a key: synchronously on a cache hit (no await, no trip through the microtask queue: core
   * then authenticates the request synchronously too), else after the look-up.
   */
  function verify(parsed: ParsedKey): ProviderAuthResult | Promise<ProviderAuthResult> {
    const entry = listened ? cached(parsed.id, ctx.clock().getTime()) : undefined;
    if (entry) return check(entry, parsed);
    return (async () => {
      if (!listened) await listen();
      const found = cached(parsed.id, ctx.clock().getTime()) ?? (await lookup(parsed.id));
      if (!found) throw apiKeyErrors.create("ERR_APIKEY_INVALID");
      return check(found, parsed);
    })();
  }

  function check(entry: CachedKey, parsed: ParsedKey): ProviderAuthResult {
    if (entry.pepperFingerprint !== null && entry.pepperFingerprint !== store.fingerprint) {
      // Its hash can never match here: say why, to the operator, instead of a bare "unknown key".
      ctx.logger.error("api key created with a different pepper than this server's: set the same pepper (API_KEY_PEPPER) where keys are created (the CLI) and in the app, or rotate the key from the app", {
        keyId: entry.id,
        keyPepperFingerprint: entry.pepperFingerprint,
        serverPepperFingerprint: store.fingerprint,
      });
      throw apiKeyErrors.create("ERR_APIKEY_PEPPER_MISMATCH");
    }
    const now = ctx.clock();
    const { current, previous } = matches(entry, parsed.secret);
    if (!current && !previous) throw apiKeyErrors.create("ERR_APIKEY_INVALID");
    // Only a caller who knows a secret learns the key's state.
    if (entry.revokedAt && entry.revokedAt <= now) throw apiKeyErrors.create("ERR_APIKEY_REVOKED");
    if (entry.expiresAt && entry.expiresAt <= now) throw apiKeyErrors.create("ERR_APIKEY_EXPIRED");
    if (!current && (!entry.previousValidUntil || entry.previousValidUntil <= now)) throw apiKeyErrors.create("ERR_APIKEY_ROTATED");
    if (entry.user.is_active === false || !entry.ownerActive) throw AuthError.of("ERR_USER_DEACTIVATED");
    touch(entry.id, now);
    return { user: entry.user, via: "api_key", scopes: entry.scopes, credentialId: entry.id };
  }

  return {
    listen,
    /** Drops a key from this instance's caches (the instance that changed it does not wait for NOTIFY). */
    forget,
    /** Drops a remembered miss of a key just created here. */
    forgetMiss,

    authenticate(req: Request): ProviderAuthResult | null | Promise<ProviderAuthResult | null> {
      const credential = credentialOf(req, options.prefix);
      if (credential === null) return null;
      const parsed = parseKey(credential, options.prefix);
      // req.ip is a getter that parses the proxy chain on every read: only read it when it matters.
      const client = blocked.size > 0 ? (req.ip ?? "unknown") : undefined;
      const blockedUntil = client === undefined ? undefined : blocked.get(client);
      if (blockedUntil !== undefined) {
        const left = blockedUntil - ctx.clock().getTime();
        if (left > 0) {
          const limited = AuthError.of("ERR_RATE_LIMITED", { retryAfter: Math.ceil(left / 1000) });
          // The address is shared by every client behind it (a NAT, the old and new pods of a deploy
          // after a rotate-now): one that keeps failing must not stop the right keys. A key this
          // instance has looked up before is still checked, costing no query (at most one per
          // cacheTtl per real key id); its secret is 131 bits, so that is no guessing channel. A
          // failure there is not counted, and any other key is refused without a query.
          if (typeof parsed !== "string" && cache.has(parsed.id)) {
            const refuse = (error: unknown): never => {
              if (error instanceof AuthError && COUNTED_FAILURES.has(error.code)) throw limited;
              throw error;
            };
            try {
              const result = verify(parsed);
              return result instanceof Promise ? result.catch(refuse) : result;
            } catch (error) {
              return refuse(error);
            }
          }
          throw limited;
        }
        blocked.delete(client!);
      }
      if (parsed === "malformed") throw apiKeyErrors.create("ERR_APIKEY_MALFORMED");
      // A wrong checksum is a typo or a made-up key: refused before any database work, and not
      // counted (it costs nothing and can never be a right key).
      if (parsed === "checksum") throw apiKeyErrors.create("ERR_APIKEY_CHECKSUM_INVALID");
      try {
        const result = verify(parsed);
        return result instanceof Promise ? result.catch((error: unknown) => counted(req, error)) : result;
      } catch (error) {
        return counted(req, error);
      }
    },
  };
}
