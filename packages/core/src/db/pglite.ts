import type { PGlite, Transaction } from "@electric-sql/pglite";
import type { Database, Queryable, QueryResult } from "./types.js";

function wrap(q: PGlite | Transaction): Queryable {
  return {
    async query<Row>(sql: string, params: readonly unknown[] = []): Promise<QueryResult<Row>> {
      const result = await q.query<Row>(sql, params as unknown[]);
      return { rows: result.rows, rowCount: result.affectedRows ?? result.rows.length };
    },
    async exec(sql: string) {
      await q.exec(sql);
    },
  };
}

/**
 * Wraps a PGlite instance. PGlite is one Postgres backend in-process: statements are serialized,
 * and a transaction holds the instance until it ends.
 *
 * @example
 * const db = pgliteDatabase(await PGlite.create("./.data/erebus"));
 */
export function pgliteDatabase(pg: PGlite, options: { ownsConnection?: boolean } = {}): Database {
  const base = wrap(pg);
  return {
    engine: "pglite",
    ...base,
    transaction: (fn) => pg.transaction((tx) => fn(wrap(tx))),
    async listen(channel, onNotify) {
      const unsubscribe = await pg.listen(channel, onNotify);
      return async () => unsubscribe();
    },
    async close() {
      if (options.ownsConnection) await pg.close();
    },
  };
}
