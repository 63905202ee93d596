import pg from "pg";
import type { Database, Queryable, QueryResult } from "./types.js";

// int8 as a JS number, like PGlite does, so both engines hand back the same shapes.
// Erebus's own int8 columns (counters, sequence numbers) stay far below 2^53.
const types = {
  getTypeParser(oid: number, format?: "text" | "binary") {
    if (oid === 20 && format !== "binary") return (value: string) => Number(value);
    return pg.types.getTypeParser(oid, format as "text");
  },
};

function wrap(client: pg.Pool | pg.PoolClient): Queryable {
  return {
    async query<Row>(sql: string, params: readonly unknown[] = []): Promise<QueryResult<Row>> {
      const result = await client.query({ text: sql, values: params as unknown[], types });
      return { rows: result.rows as Row[], rowCount: result.rowCount ?? result.rows.length };
    },
    async exec(sql: string) {
      await client.query(sql);
    },
  };
}

/**
 * Wraps a node-postgres pool (a PostgreSQL server).
 *
 * @example
 * const db = postgresDatabase(new pg.Pool({ connectionString: process.env.DATABASE_URL }));
 */
export function postgresDatabase(pool: pg.Pool, options: { ownsConnection?: boolean } = {}): Database {
  // One connection LISTENs for every channel and every subscriber of this Database: a LISTEN holds
  // its connection for as long as it listens, and each subscriber (the session cache, the API-key
  // cache, the sync relay, every app instance sharing the Database) taking one of its own would run
  // a small pool dry. Taken on the first listen, given back when the last subscriber leaves.
  interface Subscriber {
    onNotify: (payload: string) => void;
    onLost: (() => void) | undefined;
  }
  interface Shared {
    client: Promise<pg.PoolClient>;
    channels: Map<string, { subscribers: Set<Subscriber>; listening: Promise<void> }>;
    /** Lost, or given back: a listen that finds it so takes a new connection. */
    lost: boolean;
    detach?: () => void;
    /** The LISTEN/UNLISTEN statements, one after another: subscribers start and stop concurrently, and a pg client takes one query at a time. */
    queue: Promise<unknown>;
  }
  /** Runs `sql` on the shared connection after the statements queued before it. */
  function serially(state: Shared, client: pg.PoolClient, sql: string): Promise<void> {
    const run = state.queue.then(() => client.query(sql));
    state.queue = run.catch(() => undefined);
    return run.then(() => undefined);
  }
  let shared: Shared | undefined;

  function connect(): Shared {
    if (shared) return shared;
    const state: Shared = { client: pool.connect(), channels: new Map(), lost: false, queue: Promise.resolve() };
    shared = state;
    state.client.then(
      (client) => {
        // A lost LISTEN connection: every subscriber is told (each listens again when it needs to),
        // and the unheard "error" event does not crash the process.
        const onError = () => {
          if (state.lost) return;
          state.lost = true;
          if (shared === state) shared = undefined;
          client.release(true);
          for (const { subscribers } of state.channels.values()) for (const s of subscribers) s.onLost?.();
          state.channels.clear();
        };
        const onNotification = (message: pg.Notification) => {
          const channel = state.channels.get(message.channel);
          if (channel) for (const s of channel.subscribers) s.onNotify(message.payload ?? "");
        };
        client.on("error", onError);
        client.on("end", onError);
        client.on("notification", onNotification);
        state.detach = () => {
          client.off("end", onError);
          client.off("notification", onNotification);
        };
      },
      () => {
        if (shared === state) shared = undefined;
      },
    );
    return state;
  }

  async function release(state: Shared): Promise<void> {
    if (state.lost || state.channels.size > 0) return;
    state.lost = true; // ending it ourselves is not a loss
    if (shared === state) shared = undefined;
    const client = await state.client;
    // Statements still queued on it (another channel's UNLISTEN) finish before it goes back to the pool.
    await state.queue;
    state.detach?.();
    client.release();
  }

  const subscriptions = new Set<() => Promise<void>>();
  // Once closing, no new LISTEN: a cache told "lost" by close() would otherwise take a connection
  // again on its next look-up, and pool.end() waits forever for a connection that is never given back.
  let closing = false;
  const closedError = () => Object.assign(new Error("the database is closed"), { code: "ERR_DATABASE_CLOSED" });
  return {
    engine: "postgres",
    ...wrap(pool),
    async transaction(fn) {
      const client = await pool.connect();
      // A connection lost while checked out emits "error" on the client; the statement in flight
      // rejects anyway, but an unheard "error" event would crash the process.
      const onError = () => undefined;
      client.on("error", onError);
      try {
        await client.query("BEGIN");
        const result = await fn(wrap(client));
        await client.query("COMMIT");
        return result;
      } catch (error) {
        await client.query("ROLLBACK").catch(() => undefined);
        throw error;
      } finally {
        client.off("error", onError);
        client.release();
      }
    },
    async listen(channel, onNotify, onLost) {
      if (closing) throw closedError();
      let state = connect();
      let client = await state.client;
      // Given back (or lost) while we waited for it: take a new one.
      while (state.lost) {
        if (closing) throw closedError();
        state = connect();
        client = await state.client;
      }
      if (closing) {
        await release(state).catch(() => undefined);
        throw closedError();
      }
      const subscriber: Subscriber = { onNotify, onLost };
      let entry = state.channels.get(channel);
      if (!entry) {
        entry = { subscribers: new Set(), listening: serially(state, client, `LISTEN ${pg.escapeIdentifier(channel)}`) };
        state.channels.set(channel, entry);
      }
      entry.subscribers.add(subscriber);
      const leave = async () => {
        entry.subscribers.delete(subscriber);
        if (entry.subscribers.size === 0 && state.channels.get(channel) === entry) state.channels.delete(channel);
        await release(state).catch(() => undefined);
      };
      try {
        await entry.listening;
      } catch (error) {
        await leave();
        throw error;
      }
      // Closed while the LISTEN was on its way: close() found this subscriber not yet subscribed and
      // the connection still in use, so it is given back here (pool.end() waits for it).
      if (closing) {
        await leave();
        throw closedError();
      }
      const unsubscribe = async () => {
        if (!subscriptions.delete(unsubscribe)) return;
        const current = state.channels.get(channel);
        if (state.lost || current !== entry) return;
        entry.subscribers.delete(subscriber);
        if (entry.subscribers.size > 0) return;
        state.channels.delete(channel);
        await serially(state, client, `UNLISTEN ${pg.escapeIdentifier(channel)}`).catch(() => undefined);
        await release(state);
      };
      subscriptions.add(unsubscribe);
      return unsubscribe;
    },
    async close() {
      closing = true;
      // Subscribers that did not leave on their own (another app instance sharing this Database)
      // hear nothing from now on: tell them, so a cache stops serving what it can no longer hear about.
      const remaining = shared ? [...shared.channels.values()].flatMap(({ subscribers }) => [...subscribers]) : [];
      await Promise.all([...subscriptions].map((unsubscribe) => unsubscribe()));
      for (const subscriber of remaining) subscriber.onLost?.();
      if (shared) await release(shared).catch(() => undefined);
      if (options.ownsConnection) await pool.end();
    },
  };
}
