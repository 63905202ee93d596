import { AuthError } from "../errors.js";
import type { Database, Queryable, QueryResult } from "./types.js";

/** The statements PGlite (and one of its transactions) runs: the part of its API Erebus uses. */
export interface PGliteQueryable {
  query<Row>(sql: string, params?: unknown[]): Promise<{ rows: Row[]; affectedRows?: number }>;
  exec(sql: string): Promise<unknown>;
}

/**
 * A PGlite instance as Erebus uses it. Declared here, structurally, so that `@erebus/core`'s types
 * do not need `@electric-sql/pglite` (an optional peer dependency) installed.
 */
export interface PGliteInstance extends PGliteQueryable {
  transaction<T>(fn: (tx: PGliteQueryable) => Promise<T>): Promise<T>;
  listen(channel: string, onNotify: (payload: string) => void): Promise<() => Promise<void>>;
  close(): Promise<void>;
}

/** What {@link pgliteDatabase} can do besides wrapping: close more (a lock), explain an abort. */
export interface PGliteDatabaseOptions {
  /** Close the instance on `close()` (Erebus opened it). */
  ownsConnection?: boolean;
  /** Runs after the instance closed (connectDatabase releases the data directory's lock here). */
  onClose?: () => void;
  /** The last thing Postgres said (a FATAL/PANIC line), for the reason of an abort. */
  lastError?: () => string | undefined;
}

/**
 * A WebAssembly abort (Postgres PANIC inside PGlite) leaves the instance dead; it becomes
 * ERR_DATABASE_UNAVAILABLE with a one-line reason instead of a RuntimeError whose stack points into
 * 100 KB of minified code.
 */
function mapAbort(error: unknown, lastError: (() => string | undefined) | undefined): unknown {
  if (!(error instanceof WebAssembly.RuntimeError)) return error;
  const reason = lastError?.() ?? error.message.split("\n")[0];
  return AuthError.of("ERR_DATABASE_UNAVAILABLE", { detail: `the embedded database stopped: ${reason}`, cause: error });
}

function wrap(q: PGliteQueryable, lastError: PGliteDatabaseOptions["lastError"]): Queryable {
  return {
    async query<Row>(sql: string, params: readonly unknown[] = []): Promise<QueryResult<Row>> {
      try {
        const result = await q.query<Row>(sql, params as unknown[]);
        return { rows: result.rows, rowCount: result.affectedRows ?? result.rows.length };
      } catch (error) {
        throw mapAbort(error, lastError);
      }
    },
    async exec(sql: string) {
      try {
        await q.exec(sql);
      } catch (error) {
        throw mapAbort(error, lastError);
      }
    },
  };
}

/**
 * Wraps a PGlite instance. PGlite is one Postgres backend in-process: statements are serialized,
 * and a transaction holds the instance until it ends. One process per data directory: use
 * `connectDatabase("pglite://<dir>")`, which locks the directory, rather than opening it yourself.
 *
 * @example
 * const { PGlite } = await import("@electric-sql/pglite");
 * const db = pgliteDatabase(await PGlite.create());
 */
export function pgliteDatabase(pg: PGliteInstance, options: PGliteDatabaseOptions = {}): Database {
  const base = wrap(pg, options.lastError);
  let closed: Promise<void> | undefined;
  return {
    engine: "pglite",
    ...base,
    async transaction(fn) {
      try {
        return await pg.transaction((tx) => fn(wrap(tx, options.lastError)));
      } catch (error) {
        throw mapAbort(error, options.lastError);
      }
    },
    async listen(channel, onNotify) {
      const unsubscribe = await pg.listen(channel, onNotify);
      return async () => unsubscribe();
    },
    close() {
      closed ??= (async () => {
        try {
          // An aborted instance cannot close cleanly; its lock is released all the same.
          if (options.ownsConnection) await pg.close().catch((error) => {
            if (!(error instanceof WebAssembly.RuntimeError)) throw error;
          });
        } finally {
          options.onClose?.();
        }
      })();
      return closed;
    },
  };
}
