import { randomBytes } from "node:crypto";
import { PGlite } from "@electric-sql/pglite";
import pg from "pg";
import { inject } from "vitest";
import { pgliteDatabase, postgresDatabase, type Database } from "@erebus/core";

export interface Engine {
  name: "pglite" | "postgres";
  /** A fresh, empty database: a new PGlite instance, or a new database on the server. */
  create(options?: { max?: number }): Promise<Database & { url?: string }>;
}

/** A fresh database on the real server, dropped when closed. */
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

/**
 * The engines the suite runs against: PGlite always, the real PostgreSQL server when the global
 * setup found one (always under CI=true).
 */
export function engines(): Engine[] {
  const list: Engine[] = [
    { name: "pglite", create: async () => pgliteDatabase(await PGlite.create(), { ownsConnection: true }) },
  ];
  const adminUrl = inject("postgresUrl");
  if (adminUrl) list.push({ name: "postgres", create: (options) => createServerDatabase(adminUrl, options?.max) });
  return list;
}

/** The server engine, or undefined (the caller then skips, which CI=true never lets happen). */
export function serverEngine(): Engine | undefined {
  return engines().find((engine) => engine.name === "postgres");
}

/** How many identities and sessions a database holds: attack and fuzz tests assert these do not move. */
export async function rowCounts(db: Pick<Database, "query">): Promise<{ users: number; sessions: number }> {
  const { rows } = await db.query<{ users: number; sessions: number }>(
    "SELECT (SELECT count(*)::int FROM user_references) AS users, (SELECT count(*)::int FROM erebus_sessions) AS sessions",
  );
  return rows[0]!;
}
