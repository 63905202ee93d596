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
  // LISTEN holds a connection for as long as it listens; close() gives them back.
  const listeners = new Set<() => Promise<void>>();
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
    async listen(channel, onNotify) {
      const client = await pool.connect();
      client.on("error", () => undefined); // a lost LISTEN connection: the owner re-listens on its next round
      const handler = (message: pg.Notification) => {
        if (message.channel === channel) onNotify(message.payload ?? "");
      };
      client.on("notification", handler);
      try {
        await client.query(`LISTEN ${pg.escapeIdentifier(channel)}`);
      } catch (error) {
        client.release(true);
        throw error;
      }
      const unsubscribe = async () => {
        if (!listeners.delete(unsubscribe)) return;
        client.off("notification", handler);
        await client.query(`UNLISTEN ${pg.escapeIdentifier(channel)}`).catch(() => undefined);
        client.release();
      };
      listeners.add(unsubscribe);
      return unsubscribe;
    },
    async close() {
      await Promise.all([...listeners].map((unsubscribe) => unsubscribe()));
      if (options.ownsConnection) await pool.end();
    },
  };
}
