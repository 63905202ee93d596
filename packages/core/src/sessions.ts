import { createHash } from "node:crypto";
import { AuthError } from "./errors.js";
import type { Database, Queryable } from "./db/types.js";
import type { SessionCache } from "./session-cache.js";
import type { UserReference } from "./users.js";

/** A session as the API shows it: never the token, never its hash. */
export interface Session {
  id: string;
  userId: string;
  createdAt: Date;
  expiresAt: Date;
  /** When this session last proved a credential (its sign-in, or a later re-proof): freshness for sensitive actions. */
  authenticatedAt: Date;
}

export interface SessionTimes {
  /** Seconds of inactivity after which a session expires. */
  maxAge: number;
  /** Seconds after which a used session's expiry is pushed out again (sliding refresh). */
  updateAge: number;
  /** Seconds after creation after which a session expires however much it is used. */
  absoluteMaxAge: number;
}

/** A session token is 32 CSPRNG bytes, base64url: 43 characters. */
const TOKEN = /^[A-Za-z0-9_-]{43}$/;

/** SHA-256 of the token: what the database stores, so a read of the table yields no usable session. */
export const hashToken = (token: string) => createHash("sha256").update(token).digest("hex");

interface SessionRow extends UserReference {
  __session_id: string;
  __session_created_at: Date;
  __session_expires_at: Date;
  __session_absolute_expires_at: Date;
  __session_authenticated_at: Date;
}

export type SessionCheck =
  | { ok: true; user: UserReference; session: Session; refreshed: boolean }
  | { ok: false; error: AuthError };

export function createSessionStore(
  db: Database,
  times: SessionTimes,
  clock: () => Date,
  random: (bytes: number) => Buffer,
  cache?: SessionCache,
) {
  const invalid = (): SessionCheck => ({ ok: false, error: AuthError.of("ERR_SESSION_INVALID") });
  /** Whether a session expiring at `expiresAt` is due for its sliding refresh at `now` (ms). */
  const refreshDue = (expiresAt: number, absolute: number, now: number) => times.maxAge * 1000 - (expiresAt - now) >= times.updateAge * 1000 && expiresAt < absolute;

  /**
   * The sliding refresh: one write, and only if no instance did it since (the WHERE), so a session
   * is written at most once per updateAge however many instances serve it. `undefined` when the row
   * changed under us (refreshed elsewhere, or revoked): the caller then reads it again.
   */
  async function refresh(id: string, now: number, absolute: number): Promise<Date | undefined> {
    const next = new Date(Math.min(now + times.maxAge * 1000, absolute));
    const { rowCount } = await db.query(
      "UPDATE erebus_sessions SET expires_at = $2 WHERE id = $1 AND revoked_at IS NULL AND expires_at <= $3",
      [id, next, new Date(now + (times.maxAge - times.updateAge) * 1000)],
    );
    return rowCount > 0 ? next : undefined;
  }

  async function lookup(hash: string, now: Date): Promise<SessionCheck> {
    const startedAt = cache?.generation() ?? 0;
    const { rows } = await db.query<SessionRow>(
      `SELECT u.*, s.id AS __session_id, s.created_at AS __session_created_at,
              s.expires_at AS __session_expires_at, s.absolute_expires_at AS __session_absolute_expires_at,
              s.authenticated_at AS __session_authenticated_at
       FROM erebus_sessions s JOIN user_references u ON u.id = s.user_id
       WHERE s.token_hash = $1 AND s.revoked_at IS NULL AND s.expires_at > $2`,
      [hash, now],
    );
    const row = rows[0];
    if (!row) return invalid();
    const {
      __session_id: id,
      __session_created_at: createdAt,
      __session_expires_at: expiresAt,
      __session_absolute_expires_at: absolute,
      __session_authenticated_at: authenticatedAt,
      ...user
    } = row;
    if (user.is_active === false) return { ok: false, error: AuthError.of("ERR_USER_DEACTIVATED") };
    let session: Session = { id, userId: user.id, createdAt, expiresAt, authenticatedAt };
    let refreshed = false;
    if (refreshDue(expiresAt.getTime(), absolute.getTime(), now.getTime())) {
      const next = await refresh(id, now.getTime(), absolute.getTime());
      // Refreshed by another instance between our read and our write: ours stays as read, and is not cached.
      if (next === undefined) return { ok: true, user, session, refreshed: false };
      session = { ...session, expiresAt: next };
      refreshed = true;
    }
    cache?.set(hash, { user, session, absoluteExpiresAt: absolute, fetchedAt: now.getTime() }, startedAt);
    return { ok: true, user, session, refreshed };
  }

  /**
   * `check`'s answer, synchronously when it needs no database (a malformed token, or a cached session
   * whose sliding refresh is not due: most requests), else a promise. The token is hashed once.
   */
  function checkNow(token: string): SessionCheck | Promise<SessionCheck> {
    if (!TOKEN.test(token)) return invalid();
    const hash = hashToken(token);
    const now = clock();
    const hit = cache?.get(hash, now.getTime());
    if (hit === undefined) return lookup(hash, now);
    if (!refreshDue(hit.session.expiresAt.getTime(), hit.absoluteExpiresAt.getTime(), now.getTime())) return { ok: true, user: hit.user, session: hit.session, refreshed: false };
    return refreshCached(hash, now, hit);
  }

  /** A cached session whose sliding refresh is due: one UPDATE, or the database's word when it was refreshed elsewhere or revoked. */
  async function refreshCached(hash: string, now: Date, hit: NonNullable<ReturnType<NonNullable<typeof cache>["get"]>>): Promise<SessionCheck> {
    const next = await refresh(hit.session.id, now.getTime(), hit.absoluteExpiresAt.getTime());
    if (next === undefined) {
      // Refreshed by another instance, or revoked: the database says which.
      cache!.dropHash(hash);
      return lookup(hash, now);
    }
    hit.session = { ...hit.session, expiresAt: next };
    return { ok: true, user: hit.user, session: hit.session, refreshed: true };
  }

  return {
    /** Creates a session for a user and returns its token: the only time the token exists outside the client. */
    async create(userId: string, meta: { userAgent?: string | undefined; ip?: string | undefined } = {}, q: Queryable = db): Promise<{ token: string; session: Session }> {
      const token = random(32).toString("base64url");
      const now = clock();
      const absolute = new Date(now.getTime() + times.absoluteMaxAge * 1000);
      const expires = new Date(Math.min(now.getTime() + times.maxAge * 1000, absolute.getTime()));
      const { rows } = await q.query<{ id: string }>(
        `INSERT INTO erebus_sessions (token_hash, user_id, created_at, expires_at, absolute_expires_at, user_agent, ip, authenticated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $3) RETURNING id`,
        [hashToken(token), userId, now, expires, absolute, meta.userAgent?.slice(0, 512) ?? null, meta.ip ?? null],
      );
      return { token, session: { id: rows[0]!.id, userId, createdAt: now, expiresAt: expires, authenticatedAt: now } };
    },

    /**
     * Looks a token up. Unknown, malformed, expired and revoked tokens are all `ERR_SESSION_INVALID`
     * (the client learns nothing about which); a deactivated user's session is `ERR_USER_DEACTIVATED`.
     * A malformed token is refused without a database round trip; a session this instance looked up
     * before is served from its cache (no query) until a NOTIFY names it or its user, it expires, or
     * the cache's TTL ends.
     */
    async check(token: string): Promise<SessionCheck> {
      return checkNow(token);
    },

    /** `check`'s answer, synchronously when it needs no database (a cached session: no await on the hot path), else a promise. */
    checkNow,

    /** Revokes the session a token belongs to (on `q`: a transaction of the caller's). Returns whether there was one to revoke. */
    async revoke(token: string, q: Queryable = db): Promise<boolean> {
      if (!TOKEN.test(token)) return false;
      const hash = hashToken(token);
      const { rowCount } = await q.query(
        "UPDATE erebus_sessions SET revoked_at = $2 WHERE token_hash = $1 AND revoked_at IS NULL",
        [hash, clock()],
      );
      // Here at once; the other instances hear it from the trigger's NOTIFY.
      cache?.dropHash(hash);
      return rowCount > 0;
    },

    /**
     * Marks the session as having just proved a credential again (step-up), on `q`. The trigger's
     * NOTIFY drops it from every instance's cache; this one drops it at once.
     */
    async reauthenticated(sessionId: string, q: Queryable = db): Promise<Date> {
      const now = clock();
      await q.query("UPDATE erebus_sessions SET authenticated_at = $2 WHERE id = $1 AND revoked_at IS NULL", [sessionId, now]);
      cache?.dropSession(sessionId);
      return now;
    },

    /** Revokes every session of a user ("sign out everywhere"). Returns how many. */
    async revokeAll(userId: string, q: Queryable = db): Promise<number> {
      const { rowCount } = await q.query(
        "UPDATE erebus_sessions SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL",
        [userId, clock()],
      );
      cache?.dropUser(userId);
      return rowCount;
    },

    /** Deletes sessions that expired or were revoked more than `olderThanSeconds` ago. */
    async prune(olderThanSeconds = 86_400): Promise<number> {
      const cutoff = new Date(clock().getTime() - olderThanSeconds * 1000);
      const { rowCount } = await db.query(
        "DELETE FROM erebus_sessions WHERE expires_at < $1 OR revoked_at < $1",
        [cutoff],
      );
      return rowCount;
    },
  };
}

export type SessionStore = ReturnType<typeof createSessionStore>;
