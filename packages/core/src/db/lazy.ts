import { connectDatabase, type ConnectOptions } from "./connect.js";
import type { Database } from "./types.js";

/**
 * A Database that connects on first use: lets `createAuth` stay synchronous when given a URL, and
 * lets the CLI answer a usage error without opening (or locking) a database at all.
 * `onConnect` runs once the connection is open (the CLI prints which database that is).
 */
export function lazyDatabase(
  url: string,
  options: ConnectOptions & { onConnect?: () => void } = {},
): Database & { connected: Promise<Database> } {
  const { onConnect, ...connect } = options;
  let connected: Promise<Database> | undefined;
  const get = () =>
    (connected ??= connectDatabase(url, connect).then((db) => {
      onConnect?.();
      return db;
    }));
  return {
    engine: url.startsWith("pglite://") ? "pglite" : "postgres",
    get connected() {
      return get();
    },
    query: async (sql, params) => (await get()).query(sql, params),
    exec: async (sql) => (await get()).exec(sql),
    transaction: async (fn) => (await get()).transaction(fn),
    listen: async (channel, onNotify, onLost) => (await get()).listen(channel, onNotify, onLost),
    async close() {
      // A connection that failed to open has nothing to close.
      if (connected) await (await connected.catch(() => undefined))?.close();
    },
  };
}
