import { randomBytes } from "node:crypto";
import pg from "pg";
import { pgliteDatabase } from "../db/pglite.js";
import { postgresDatabase } from "../db/postgres.js";
import type { Database } from "../db/types.js";
import { postgresBinDir, startPostgres, type RunningPostgres } from "./postgres-server.js";

/** A database engine a test runs against. */
export interface Engine {
  name: "pglite" | "postgres";
  /** A fresh, empty database: a new PGlite instance, or a new database on the server (dropped when closed). */
  create(options?: { max?: number }): Promise<Database & { url?: string }>;
}

export interface EnginesOptions {
  /**
   * Admin URL of a PostgreSQL server to create test databases on. `null`: PGlite only. Not given:
   * `EREBUS_TEST_POSTGRES_URL` or a `postgres://` `DATABASE_URL`, else a throwaway server started from
   * the PostgreSQL binaries when they are installed (one per process, stopped when it exits), else PGlite only.
   */
  postgresUrl?: string | null;
}

const isPostgresUrl = (value: string | undefined): value is string => value !== undefined && /^postgres(ql)?:\/\//.test(value);

/** A fresh database on a real server, dropped (WITH FORCE) when closed. */
async function createServerDatabase(adminUrl: string, max = 10): Promise<Database & { url: string }> {
  const name = `erebus_test_${randomBytes(6).toString("hex")}`;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  const pool = new pg.Pool({ connectionString: url.toString(), max });
  pool.on("error", () => undefined);
  const db = postgresDatabase(pool, { ownsConnection: true });
  return {
    ...db,
    url: url.toString(),
    async close() {
      await db.close();
      const again = new pg.Client({ connectionString: adminUrl });
      await again.connect();
      await again.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await again.end();
    },
  };
}

// The throwaway server of this process, started on first use. Process-wide on purpose: starting a
// server costs seconds, and every test file of a worker can share one (each gets its own database).
let shared: Promise<RunningPostgres | undefined> | undefined;
function sharedServerUrl(): Promise<string> {
  shared ??= startPostgres().then((server) => {
    // pg_ctl stop runs synchronously, so it works from an exit handler.
    if (server) process.once("exit", () => void server.stop());
    return server;
  });
  return shared.then((server) => {
    if (!server) throw new Error("the PostgreSQL binaries went away");
    return server.url;
  });
}

/**
 * The engines a provider's tests run against: PGlite (in-process, `@electric-sql/pglite` must be
 * installed) always, and a real PostgreSQL server when there is one (see {@link EnginesOptions}).
 *
 * @example
 * for (const engine of engines()) {
 *   describe(`my provider on ${engine.name}`, () => {
 *     let db: Database;
 *     beforeAll(async () => { db = await engine.create(); });
 *     afterAll(() => db.close());
 *   });
 * }
 */
export function engines(options: EnginesOptions = {}): Engine[] {
  const list: Engine[] = [
    {
      name: "pglite",
      // Imported when used: apps that import the testing entry for testProvider() need no PGlite.
      create: async () => pgliteDatabase(await (await import("@electric-sql/pglite")).PGlite.create(), { ownsConnection: true }),
    },
  ];
  const env = [process.env.EREBUS_TEST_POSTGRES_URL, process.env.DATABASE_URL].find(isPostgresUrl);
  const given = options.postgresUrl === undefined ? env : options.postgresUrl;
  if (given) {
    list.push({ name: "postgres", create: (o) => createServerDatabase(given, o?.max) });
  } else if (options.postgresUrl === undefined && postgresBinDir()) {
    list.push({ name: "postgres", create: async (o) => createServerDatabase(await sharedServerUrl(), o?.max) });
  }
  return list;
}

/** How many identities and sessions a database holds: attack and fuzz tests assert these do not move. */
export async function rowCounts(db: Pick<Database, "query">): Promise<{ users: number; sessions: number }> {
  const { rows } = await db.query<{ users: number; sessions: number }>(
    "SELECT (SELECT count(*)::int FROM user_references) AS users, (SELECT count(*)::int FROM erebus_sessions) AS sessions",
  );
  return rows[0]!;
}

/**
 * The row count of every table in the `public` schema (core's, every provider's), by table name:
 * what "writes no row anywhere" is checked with.
 */
export async function tableRowCounts(db: Pick<Database, "query">, options: { ignore?: readonly string[] } = {}): Promise<Record<string, number>> {
  const { rows: tables } = await db.query<{ name: string }>(
    "SELECT table_name AS name FROM information_schema.tables WHERE table_schema = 'public' AND table_type = 'BASE TABLE' ORDER BY table_name",
  );
  const names = tables.map((t) => t.name).filter((name) => !options.ignore?.includes(name));
  if (names.length === 0) return {};
  const select = names.map((name, i) => `(SELECT count(*)::int FROM "${name.replace(/"/g, '""')}") AS c${i}`).join(", ");
  const { rows } = await db.query<Record<string, number>>(`SELECT ${select}`);
  return Object.fromEntries(names.map((name, i) => [name, rows[0]![`c${i}`]!]));
}
