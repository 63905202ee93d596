import { mkdirSync } from "node:fs";
import { resolve } from "node:path";
import pg from "pg";
import { pgliteDatabase } from "./pglite.js";
import { postgresDatabase } from "./postgres.js";
import type { Database } from "./types.js";

/**
 * Opens a database from a URL: `postgres://…` / `postgresql://…` for a server,
 * `pglite://memory` for an in-memory embedded database, `pglite://<dir>` for an embedded one on disk
 * (relative to the working directory, e.g. `pglite://.data/erebus`).
 *
 * @example
 * const db = await connectDatabase(process.env.DATABASE_URL ?? "pglite://.data/erebus");
 */
export async function connectDatabase(url: string, options: { max?: number } = {}): Promise<Database> {
  if (/^postgres(ql)?:\/\//.test(url)) {
    const pool = new pg.Pool({ connectionString: url, max: options.max ?? 10 });
    // An idle client that loses its server emits "error"; without a listener that kills the process.
    pool.on("error", () => undefined);
    return postgresDatabase(pool, { ownsConnection: true });
  }
  if (url.startsWith("pglite://")) {
    const { PGlite } = await import("@electric-sql/pglite");
    const where = url.slice("pglite://".length);
    if (where === "memory" || where === "") {
      return pgliteDatabase(await PGlite.create(), { ownsConnection: true });
    }
    const dir = resolve(where);
    mkdirSync(dir, { recursive: true });
    return pgliteDatabase(await PGlite.create(dir), { ownsConnection: true });
  }
  throw new TypeError(
    `DATABASE_URL must start with postgres://, postgresql:// or pglite:// (got "${url.replace(/\/\/[^@/]*@/, "//***@")}")`,
  );
}
