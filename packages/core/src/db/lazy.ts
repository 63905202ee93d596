import { connectDatabase } from "./connect.js";
import type { Database } from "./types.js";

/** A Database that connects on first use: lets `createAuth` stay synchronous when given a URL. */
export function lazyDatabase(url: string): Database & { connected: Promise<Database> } {
  let connected: Promise<Database> | undefined;
  const get = () => (connected ??= connectDatabase(url));
  return {
    engine: url.startsWith("pglite://") ? "pglite" : "postgres",
    get connected() {
      return get();
    },
    query: async (sql, params) => (await get()).query(sql, params),
    exec: async (sql) => (await get()).exec(sql),
    transaction: async (fn) => (await get()).transaction(fn),
    listen: async (channel, onNotify) => (await get()).listen(channel, onNotify),
    async close() {
      if (connected) await (await connected).close();
    },
  };
}
