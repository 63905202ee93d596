import { resolve } from "node:path";
import pg from "pg";
import { AuthError } from "../errors.js";
import { lockDataDirectory } from "./lock.js";
import { pgliteDatabase, type PGliteInstance } from "./pglite.js";
import { postgresDatabase } from "./postgres.js";
import type { Database } from "./types.js";

/** The part of the `@electric-sql/pglite` module connectDatabase uses. */
export interface PGliteModule {
  PGlite: {
    create(
      dataDir?: string,
      options?: { onStdout?: (text: string) => boolean; onStderr?: (text: string) => boolean },
    ): Promise<PGliteInstance>;
  };
}

export interface ConnectOptions {
  /** Pool size for a PostgreSQL server (default 10). */
  max?: number;
  /**
   * How `@electric-sql/pglite` is loaded (default: `import("@electric-sql/pglite")`, only for
   * `pglite://` URLs). It is an optional peer dependency: apps on a PostgreSQL server need not install it.
   */
  loadPGlite?: () => Promise<PGliteModule>;
  /** What a relative `pglite://` path is resolved against (default: the working directory). */
  cwd?: string;
}

const PGLITE = "@electric-sql/pglite";

async function loadPGlite(load: () => Promise<PGliteModule>): Promise<PGliteModule> {
  try {
    return await load();
  } catch (error) {
    const code = (error as NodeJS.ErrnoException | null)?.code;
    if ((code === "ERR_MODULE_NOT_FOUND" || code === "MODULE_NOT_FOUND") && String((error as Error).message).includes(PGLITE)) {
      throw AuthError.of("ERR_DATABASE_UNAVAILABLE", {
        detail: `pglite:// URLs need the package ${PGLITE}, which is not installed: run "npm install ${PGLITE}" (or use a postgres:// URL)`,
        cause: error,
      });
    }
    throw error;
  }
}

/** The last line Postgres wrote that says why it stopped, without its timestamp prefix. */
function lastReason(lines: readonly string[], dir: string | undefined): string | undefined {
  const newestFirst = [...lines].reverse();
  const line = newestFirst.find((l) => /\b(FATAL|PANIC|ERROR):/.test(l)) ?? newestFirst.find((l) => /could not|invalid|not a valid/.test(l));
  if (!line) return undefined;
  const text = line.replace(/^.*?\b(FATAL|PANIC|ERROR):\s*/, "").replace(/^postgres:\s*/, "").trim();
  // PGlite mounts the directory at /pglite/data: name the real one.
  return (dir ? text.replaceAll("/pglite/data", dir) : text).replace(/\s+/g, " ").slice(0, 300);
}

async function openPGlite(module: PGliteModule, dir: string | undefined): Promise<Database> {
  // PGlite hands Postgres's output to these hooks (and prints it only in debug mode). Keep the last
  // lines: they are the reason given when the database cannot be opened or aborts later.
  const lines: string[] = [];
  const keep = (text: string) => {
    lines.push(text);
    if (lines.length > 20) lines.shift();
    return true;
  };
  const lock = dir === undefined ? undefined : lockDataDirectory(dir);
  let instance: PGliteInstance;
  try {
    instance = await module.PGlite.create(dir, { onStdout: keep, onStderr: keep });
  } catch (error) {
    lock?.release();
    const reason = lastReason(lines, dir) ?? (error as Error).message.split("\n")[0];
    throw AuthError.of("ERR_DATABASE_UNAVAILABLE", {
      detail: `cannot open the embedded database ${dir ?? "in memory"}: ${reason}`,
      cause: error,
    });
  }
  return pgliteDatabase(instance, {
    ownsConnection: true,
    onClose: () => lock?.release(),
    lastError: () => lastReason(lines, dir),
  });
}

/**
 * Opens a database from a URL: `postgres://…` / `postgresql://…` for a server,
 * `pglite://memory` for an in-memory embedded database, `pglite://<dir>` for an embedded one on disk
 * (relative to the working directory, e.g. `pglite://.data/erebus`). An embedded directory is
 * locked for this process until `close()`: a second process gets ERR_DATABASE_UNAVAILABLE.
 *
 * @example
 * const db = await connectDatabase(process.env.DATABASE_URL ?? "pglite://.data/erebus");
 */
export async function connectDatabase(url: string, options: ConnectOptions = {}): Promise<Database> {
  if (/^postgres(ql)?:\/\//.test(url)) {
    const pool = new pg.Pool({ connectionString: url, max: options.max ?? 10 });
    // An idle client that loses its server emits "error"; without a listener that kills the process.
    pool.on("error", () => undefined);
    return postgresDatabase(pool, { ownsConnection: true });
  }
  if (url.startsWith("pglite://")) {
    const module = await loadPGlite(options.loadPGlite ?? (() => import("@electric-sql/pglite") as unknown as Promise<PGliteModule>));
    const dir = pgliteDirectory(url, options.cwd);
    return openPGlite(module, dir);
  }
  throw new TypeError(
    `DATABASE_URL must start with postgres://, postgresql:// or pglite:// (got "${url.replace(/\/\/[^@/]*@/, "//***@")}")`,
  );
}

/** The absolute data directory of a `pglite://` URL, or undefined for `pglite://memory`. */
export function pgliteDirectory(url: string, cwd = process.cwd()): string | undefined {
  const where = url.slice("pglite://".length);
  // Only the word "memory" means memory: an empty path is a missing variable (`pglite://${DIR}`),
  // and opening memory then would lose every write at the next restart without a word.
  if (where === "") throw new TypeError('a pglite:// URL needs a directory ("pglite://.data/erebus") or "pglite://memory"');
  return where === "memory" ? undefined : resolve(cwd, where);
}
