import type { Request, RequestHandler } from "express";
import { createHash } from "node:crypto";
import { AuthError } from "./errors.js";
import { isPgText } from "./pg-text.js";
import type { Database, Queryable } from "./db/types.js";

/** Most client keys one limit counts in memory per process (past it the oldest window is forgotten). */
const LOCAL_KEYS = 10_000;

export interface RateLimitRule {
  /** Distinguishes this limit's counters from others' (`siwe-verify`). */
  name: string;
  /** Requests allowed per window. */
  points: number;
  /** Window length in seconds. */
  duration: number;
}

export interface RateLimiter {
  /**
   * Counts one hit for `key` on the shared counter (every instance's hits count): one statement of
   * its own, on an UNLOGGED table, so it waits for no fsync and holds the counter's row for
   * microseconds. Throws 429 `ERR_RATE_LIMITED` (with Retry-After) past the limit. The hot path's
   * choice: count before the costly work (a signature, an RPC), whatever its outcome.
   */
  consume(key: string, points?: number): Promise<void>;
  /**
   * Counts one hit for `key` inside the caller's transaction, on the same counter as `consume`: the
   * hit counts only if the caller commits. Throws 429 `ERR_RATE_LIMITED` past the limit, which rolls
   * the caller's transaction back. The counter's row stays locked until that transaction ends (its
   * commit's fsync included), so every other hit on the key waits for it: for a per-subject limit
   * (an email address), not for a per-client one on a busy route.
   */
  consumeIn(q: Queryable, key: string, points?: number): Promise<void>;
  /**
   * Counts one hit for `key` in this process only (no query): a first line of defence before any
   * parsing or query, with the shared counter (`consume`) hit after it. Throws 429
   * `ERR_RATE_LIMITED` past the limit.
   */
  consumeLocal(key: string, points?: number): void;
  /**
   * Reads the shared counter for `key` without counting (one SELECT, no commit): throws 429
   * `ERR_RATE_LIMITED` when it is already past the limit.
   */
  check(key: string): Promise<void>;
  /** Express middleware counting one hit per client (by `req.ip`, or `keyOf(req)`). */
  middleware(keyOf?: (req: Request) => string | undefined): RequestHandler;
}

/**
 * The counter's key as stored (a varchar(255) column). Keys come from requests (an address, a name):
 * one PostgreSQL refuses (U+0000, an unpaired surrogate) or that is too long is replaced by a hash of
 * its UTF-16 code units, so distinct keys stay distinct and no key can fail the query.
 */
function storedKey(key: string): string {
  if (key.length <= 180 && isPgText(key)) return key;
  return `sha256:${createHash("sha256").update(Buffer.from(key, "utf16le")).digest("hex")}`;
}

/**
 * Postgres-backed fixed-window limits, so a limit holds across every app instance that shares the
 * database. The counter table is core's (`erebus_rate_limits`, UNLOGGED: counters start again after
 * a server crash), and each hit is one upsert. The rows are those rate-limiter-flexible's
 * RateLimiterPostgres writes (key `erebus:<name>:<key>`, points, expiry in ms), which Erebus used before.
 */
export function createRateLimiterFactory(db: Database, options: { enabled: boolean }) {
  return function rateLimit(rule: RateLimitRule): RateLimiter {
    if (!/^[a-z0-9:_-]{1,64}$/.test(rule.name)) throw new TypeError(`rate limit name "${rule.name}" must be a short token`);
    if (!Number.isInteger(rule.points) || rule.points < 1) throw new TypeError(`rate limit "${rule.name}": points must be a positive integer`);
    if (!Number.isInteger(rule.duration) || rule.duration < 1) throw new TypeError(`rate limit "${rule.name}": duration must be a positive number of seconds`);
    // A window that has ended starts again at this hit.
    const upsert = `INSERT INTO erebus_rate_limits VALUES ($1, $2, $3)
      ON CONFLICT(key) DO UPDATE SET
        points = CASE WHEN erebus_rate_limits.expire <= $4 THEN $2 ELSE erebus_rate_limits.points + ($2) END,
        expire = CASE WHEN erebus_rate_limits.expire <= $4 THEN $3 ELSE erebus_rate_limits.expire END
      RETURNING points, expire`;
    const local = new Map<string, { points: number; resetAt: number }>();
    function consumeLocal(key: string, points = 1): void {
      if (!options.enabled) return;
      const now = Date.now();
      let entry = local.get(key);
      if (!entry || entry.resetAt <= now) {
        entry = { points: 0, resetAt: now + rule.duration * 1000 };
        local.delete(key);
        local.set(key, entry);
        // Bounded: the oldest window goes first (it is the first to end anyway).
        if (local.size > LOCAL_KEYS) local.delete(local.keys().next().value!);
      }
      entry.points += points;
      if (entry.points > rule.points) throw AuthError.of("ERR_RATE_LIMITED", { retryAfter: Math.max(1, Math.ceil((entry.resetAt - now) / 1000)) });
    }
    async function consumeIn(q: Queryable, key: string, points = 1): Promise<void> {
      if (!options.enabled) return;
      const now = Date.now();
      const { rows } = await q.query<{ points: number; expire: number }>(upsert, [`erebus:${rule.name}:${storedKey(key)}`, points, now + rule.duration * 1000, now]);
      const row = rows[0]!;
      if (row.points > rule.points) {
        throw AuthError.of("ERR_RATE_LIMITED", { retryAfter: Math.max(1, Math.ceil((Number(row.expire) - now) / 1000)) });
      }
    }
    const consume = (key: string, points = 1): Promise<void> => consumeIn(db, key, points);
    async function check(key: string): Promise<void> {
      if (!options.enabled) return;
      const now = Date.now();
      const { rows } = await db.query<{ points: number; expire: number }>("SELECT points, expire FROM erebus_rate_limits WHERE key = $1", [`erebus:${rule.name}:${storedKey(key)}`]);
      const row = rows[0];
      if (row && Number(row.expire) > now && row.points >= rule.points) {
        throw AuthError.of("ERR_RATE_LIMITED", { retryAfter: Math.max(1, Math.ceil((Number(row.expire) - now) / 1000)) });
      }
    }
    return {
      consume,
      consumeIn,
      consumeLocal,
      check,
      middleware(keyOf) {
        return async function erebusRateLimit(req, _res, next) {
          await consume(keyOf?.(req) ?? req.ip ?? "unknown");
          next();
        };
      },
    };
  };
}

export type RateLimitFactory = ReturnType<typeof createRateLimiterFactory>;

/**
 * Deletes counters whose window has ended: rate-limiter-flexible's own clean-up is off (it runs on a
 * timer in every process), so without this the table grows by one row per client and limit forever.
 * The counters' `expire` is wall-clock milliseconds (the library reads `Date.now()`, not core's
 * injectable clock), so that is what an ended window is measured against. Returns how many went.
 */
export async function pruneRateLimits(db: Database, now: number = Date.now()): Promise<number> {
  const { rowCount } = await db.query("DELETE FROM erebus_rate_limits WHERE expire < $1", [now]);
  return rowCount;
}
