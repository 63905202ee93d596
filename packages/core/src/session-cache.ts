import type { Database } from "./db/types.js";
import type { Logger } from "./logger.js";
import type { Session } from "./sessions.js";
import type { UserReference } from "./users.js";

/**
 * NOTIFY channel of core's triggers (migration 0003): `s:<session id>` when a session is revoked,
 * shortened or deleted, `u:<user id>` when a user row changes (deactivation, email, source type) or
 * goes. Triggers, not application code, so a change made by the CLI, another service or SQL by hand
 * reaches every instance's cache too.
 */
export const SESSION_CHANGED_CHANNEL = "erebus_session_changed";

export interface CachedSession {
  user: UserReference;
  session: Session;
  absoluteExpiresAt: Date;
  /** When this instance read it (ms): the TTL backstop counts from here. */
  fetchedAt: number;
}

export interface SessionCacheOptions {
  /** Seconds an entry may be served without a query (0: no cache). */
  ttl: number;
  /** Most entries kept; past it the least recently used goes. */
  size: number;
}

/** How long to wait before trying to listen again after LISTEN failed or the triggers were missing. */
const RETRY_MS = 5000;
/** The triggers that announce changes (migration 0003): without all of them nothing may be cached. */
const TRIGGERS = [
  "erebus_sessions_changed",
  "erebus_sessions_deleted",
  "erebus_sessions_truncated",
  "user_references_changed",
  "user_references_deleted",
  "user_references_truncated",
];

/**
 * The in-process cache of session look-ups, keyed by token hash. It serves nothing until its LISTEN is
 * up, drops an entry when a NOTIFY names its session or user, drops everything (and serves nothing)
 * while the LISTEN connection is down, and never keeps a look-up that raced with an invalidation.
 * Expiry is checked on every hit against the entry's own times; the TTL bounds what a lost
 * notification could cost.
 */
export function createSessionCache(db: Database, options: SessionCacheOptions, logger: Logger) {
  const byHash = new Map<string, CachedSession>();
  const enabled = options.ttl > 0 && options.size > 0;
  let live = false;
  let starting: Promise<void> | undefined;
  let retryAt = 0;
  let closed = false;
  let unlisten: (() => Promise<void>) | undefined;
  /**
   * Bumped by every invalidation: a look-up that started before one may have read the row before
   * the change committed, so what it read is served once but not kept.
   */
  let generation = 0;

  function clear(): void {
    generation++;
    byHash.clear();
  }

  function dropSession(sessionId: string): void {
    generation++;
    for (const [hash, entry] of byHash) {
      if (entry.session.id === sessionId) {
        byHash.delete(hash);
        return;
      }
    }
  }

  function dropUser(userId: string): void {
    generation++;
    for (const [hash, entry] of byHash) if (entry.user.id === userId) byHash.delete(hash);
  }

  function onNotify(payload: string): void {
    if (payload.startsWith("s:")) dropSession(payload.slice(2));
    else if (payload.startsWith("u:")) dropUser(payload.slice(2));
    else clear();
  }

  function onLost(): void {
    if (!live) return;
    live = false;
    clear();
    logger.warn("session cache: LISTEN connection lost; sessions are looked up until it is back");
    unlisten = undefined;
    starting = undefined; // the next session check listens again
  }

  /**
   * Starts listening, once, on the first session check (an instance that never checks a session
   * holds no LISTEN connection); until it is up every look-up goes to the database.
   */
  function start(): Promise<void> {
    if (!enabled || closed || Date.now() < retryAt) return starting ?? Promise.resolve();
    starting ??= (async () => {
      try {
        // A database migrated by an older Erebus (or by hand, without core's 0003) announces nothing.
        // Enabled ALWAYS ('A'), on core's own tables: a trigger disabled by hand (or by
        // pg_restore --disable-triggers) announces nothing.
        const { rows } = await db.query<{ n: number }>(
          `SELECT count(DISTINCT tgname)::int AS n FROM pg_catalog.pg_trigger
            WHERE tgname = ANY($1::text[]) AND tgenabled = 'A'
              AND tgrelid IN ('erebus_sessions'::regclass, 'user_references'::regclass)`,
          [TRIGGERS],
        );
        if (rows[0]?.n !== TRIGGERS.length) {
          logger.warn("session cache off: the database lacks core migration 0003_session_notify (run the migrations); sessions are looked up on every request");
          starting = undefined;
          retryAt = Date.now() + RETRY_MS * 6;
          return;
        }
        const stop = await db.listen(SESSION_CHANGED_CHANNEL, onNotify, onLost);
        if (closed) return void (await stop());
        unlisten = stop;
        clear();
        live = true;
      } catch (error) {
        logger.warn("session cache: LISTEN failed; sessions are looked up until it works", { error: (error as Error).message });
        starting = undefined;
        retryAt = Date.now() + RETRY_MS;
      }
    })();
    return starting;
  }

  return {
    enabled,
    start,
    /** The entry for a token hash, if it may be served now; `undefined` sends the caller to the database. */
    get(hash: string, now: number): CachedSession | undefined {
      if (!live) {
        if (starting === undefined) void start();
        return undefined;
      }
      const entry = byHash.get(hash);
      if (!entry) return undefined;
      // Expired here may be refreshed elsewhere: the database decides.
      if (now - entry.fetchedAt >= options.ttl * 1000 || entry.session.expiresAt.getTime() <= now) {
        byHash.delete(hash);
        return undefined;
      }
      // Least recently used goes first when full: re-inserted as the newest.
      byHash.delete(hash);
      byHash.set(hash, entry);
      return entry;
    },
    /** The current generation, to hand back to {@link set} with what a look-up read. */
    generation: () => generation,
    set(hash: string, entry: CachedSession, startedAt: number): void {
      if (!live || generation !== startedAt) return;
      byHash.delete(hash);
      byHash.set(hash, entry);
      if (byHash.size > options.size) byHash.delete(byHash.keys().next().value!);
    },
    dropHash(hash: string): void {
      generation++;
      byHash.delete(hash);
    },
    dropSession,
    dropUser,
    clear,
    get size() {
      return byHash.size;
    },
    async close(): Promise<void> {
      closed = true;
      live = false;
      byHash.clear();
      await unlisten?.().catch(() => undefined);
    },
  };
}

export type SessionCache = ReturnType<typeof createSessionCache>;
