import type { Request, RequestHandler } from "express";
import rateLimiterFlexible from "rate-limiter-flexible";
import { AuthError } from "./errors.js";
import type { Database } from "./db/types.js";

const { RateLimiterPostgres, RateLimiterRes } = rateLimiterFlexible;

export interface RateLimitRule {
  /** Distinguishes this limit's counters from others' (`siwe-verify`). */
  name: string;
  /** Requests allowed per window. */
  points: number;
  /** Window length in seconds. */
  duration: number;
}

export interface RateLimiter {
  /** Counts one hit for `key`; throws 429 `ERR_RATE_LIMITED` (with Retry-After) past the limit. */
  consume(key: string, points?: number): Promise<void>;
  /** Express middleware counting one hit per client (by `req.ip`, or `keyOf(req)`). */
  middleware(keyOf?: (req: Request) => string | undefined): RequestHandler;
}

/**
 * Postgres-backed limits (rate-limiter-flexible's RateLimiterPostgres over core's database), so a
 * limit holds across every app instance that shares the database. The counter table is created by
 * core's migration, and each hit is one upsert.
 */
export function createRateLimiterFactory(db: Database, options: { enabled: boolean }) {
  // rate-limiter-flexible speaks to a node-postgres-like "pool": query({ text, values }) → { rows, rowCount }.
  const storeClient = {
    query: (q: { text: string; values?: unknown[] }) => db.query(q.text, q.values ?? []),
  };
  return function rateLimit(rule: RateLimitRule): RateLimiter {
    if (!/^[a-z0-9:_-]{1,64}$/.test(rule.name)) throw new TypeError(`rate limit name "${rule.name}" must be a short token`);
    if (!Number.isInteger(rule.points) || rule.points < 1) throw new TypeError(`rate limit "${rule.name}": points must be a positive integer`);
    if (!Number.isInteger(rule.duration) || rule.duration < 1) throw new TypeError(`rate limit "${rule.name}": duration must be a positive number of seconds`);
    const limiter = new RateLimiterPostgres({
      storeClient,
      storeType: "pool",
      tableName: "erebus_rate_limits",
      tableCreated: true,
      keyPrefix: `erebus:${rule.name}`,
      points: rule.points,
      duration: rule.duration,
      clearExpiredByTimeout: false,
    });
    async function consume(key: string, points = 1): Promise<void> {
      if (!options.enabled) return;
      try {
        await limiter.consume(key.slice(0, 180), points);
      } catch (rejection) {
        if (rejection instanceof RateLimiterRes) {
          throw AuthError.of("ERR_RATE_LIMITED", { retryAfter: Math.max(1, Math.ceil(rejection.msBeforeNext / 1000)) });
        }
        throw rejection;
      }
    }
    return {
      consume,
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
