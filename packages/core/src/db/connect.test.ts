import { execFile, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, describe, expect, it } from "vitest";
import { AuthError } from "../errors.js";
import { connectDatabase } from "./connect.js";
import { LOCK_FILE } from "./lock.js";

const root = mkdtempSync(join(tmpdir(), "erebus-db-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const refusal = async (promise: Promise<unknown>) => {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(AuthError);
  expect(error).toMatchObject({ code: "ERR_DATABASE_UNAVAILABLE", status: 503 });
  return (error as AuthError).message;
};

/** A PID that no process has any more: a child that ran and was reaped. */
const deadPid = () => spawnSync(process.execPath, ["-e", ""]).pid!;

describe("connectDatabase on a PGlite directory", () => {
  // One initialized directory for the tests below (initdb is the slow part), used in turn.
  const dir = join(root, "shared");

  it("finding 14: a second opener of one PGlite directory is refused with ERR_DATABASE_UNAVAILABLE saying what to do, and nothing is lost", async () => {
    const first = await connectDatabase(`pglite://${dir}`);
    try {
      await first.exec("CREATE TABLE notes (body text); INSERT INTO notes VALUES ('kept')");
      const lock = JSON.parse(readFileSync(join(dir, LOCK_FILE), "utf8"));
      expect(lock).toMatchObject({ pid: process.pid });

      const message = await refusal(connectDatabase(`pglite://${dir}`));
      expect(message).toContain(`in use by process ${process.pid}`);
      expect(message).toMatch(/stop the process that has it open/);
      expect(message).toMatch(/DATABASE_URL=postgres:\/\//);
      expect(message).toMatch(/through the running app/);
      expect(message).not.toContain("\n");

      // The refused opener touched nothing: the first still works and still holds the lock.
      await first.exec("INSERT INTO notes VALUES ('after')");
      expect(existsSync(join(dir, LOCK_FILE))).toBe(true);
    } finally {
      await first.close();
    }
    expect(existsSync(join(dir, LOCK_FILE))).toBe(false);
    const again = await connectDatabase(`pglite://${dir}`);
    try {
      expect((await again.query("SELECT body FROM notes ORDER BY body")).rows).toEqual([{ body: "after" }, { body: "kept" }]);
    } finally {
      await again.close();
    }
  });

  it("finding 14: a stale lock left by a dead process is taken over", async () => {
    const pid = deadPid();
    writeFileSync(join(dir, LOCK_FILE), `${JSON.stringify({ pid, host: (await import("node:os")).hostname(), since: "2026-01-01T00:00:00.000Z" })}\n`);
    const db = await connectDatabase(`pglite://${dir}`);
    try {
      expect(JSON.parse(readFileSync(join(dir, LOCK_FILE), "utf8"))).toMatchObject({ pid: process.pid });
      expect((await db.query("SELECT count(*)::int AS n FROM notes")).rows).toEqual([{ n: 2 }]);
    } finally {
      await db.close();
    }
    expect(existsSync(join(dir, LOCK_FILE))).toBe(false);

    // A lock whose holder is alive (here: this process's parent) is not taken over, even when it has
    // not been touched for long (a paused or suspended holder).
    writeFileSync(join(dir, LOCK_FILE), `${JSON.stringify({ pid: process.ppid, host: (await import("node:os")).hostname(), since: "2026-01-01T00:00:00.000Z" })}\n`);
    expect(await refusal(connectDatabase(`pglite://${dir}`))).toContain(`in use by process ${process.ppid}`);
    const longAgo = new Date(Date.now() - 5 * 60_000);
    utimesSync(join(dir, LOCK_FILE), longAgo, longAgo);
    expect(await refusal(connectDatabase(`pglite://${dir}`))).toContain(`in use by process ${process.ppid}`);
    rmSync(join(dir, LOCK_FILE));
  });

  it("review: a lock left by a killed container is taken over (our own PID from an earlier process; another host's lock nobody touches), a live one is not", async () => {
    const os = await import("node:os");
    const lock = join(dir, LOCK_FILE);
    // A container restarted after a kill: the same PID (1, say) as the process that left the lock.
    writeFileSync(lock, `${JSON.stringify({ pid: process.pid, host: os.hostname(), since: "2026-01-01T00:00:00.000Z" })}\n`);
    let db = await connectDatabase(`pglite://${dir}`);
    await db.close();
    expect(existsSync(lock)).toBe(false);

    // Another host name (a new container): a lock untouched for over a minute is stale, a fresh one is held.
    writeFileSync(lock, `${JSON.stringify({ pid: 4242, host: "old-container-7f3a", since: "2026-01-01T00:00:00.000Z" })}\n`);
    expect(await refusal(connectDatabase(`pglite://${dir}`))).toContain("in use by process 4242 on old-container-7f3a");
    const longAgo = new Date(Date.now() - 5 * 60_000);
    utimesSync(lock, longAgo, longAgo);
    db = await connectDatabase(`pglite://${dir}`);
    try {
      expect(JSON.parse(readFileSync(lock, "utf8"))).toMatchObject({ pid: process.pid });
      // While this process holds it, a second open in this same process is still refused.
      expect(await refusal(connectDatabase(`pglite://${dir}`))).toContain(`in use by process ${process.pid}`);
    } finally {
      await db.close();
    }
  });

  it("review: pglite:// with an empty path is refused, not silently an in-memory database that loses every write", async () => {
    await expect(connectDatabase("pglite://")).rejects.toThrow(TypeError);
    await expect(connectDatabase("pglite://")).rejects.toThrow(/pglite:\/\/memory/);
  });

  it("finding 14: a corrupted data directory is ERR_DATABASE_UNAVAILABLE with a one-line reason", async () => {
    // Not a data directory at all.
    const garbage = join(root, "garbage");
    mkdirSync(garbage);
    writeFileSync(join(garbage, "PG_VERSION"), "zz\n");
    const notData = await refusal(connectDatabase(`pglite://${garbage}`));
    expect(notData).toMatch(/^cannot open the embedded database .*garbage: /);
    expect(notData).not.toContain("\n");
    expect(existsSync(join(garbage, LOCK_FILE))).toBe(false);

    // A real database whose WAL is gone: Postgres PANICs and the WebAssembly module aborts.
    for (const segment of readdirSync(join(dir, "pg_wal")).filter((f) => /^[0-9A-F]{24}$/.test(f))) {
      writeFileSync(join(dir, "pg_wal", segment), "x");
    }
    const aborted = await refusal(connectDatabase(`pglite://${dir}`));
    expect(aborted).toMatch(/could not locate a valid checkpoint record/);
    expect(aborted).not.toMatch(/Aborted\(\)|\n/);
    expect(aborted.length).toBeLessThan(400);
    expect(existsSync(join(dir, LOCK_FILE))).toBe(false);
  });

  it("finding 14: a NUL in a pglite:// path is ERR_DATABASE_UNAVAILABLE, not a crash", async () => {
    const message = await refusal(connectDatabase(`pglite://${join(root, "a\u0000b")}`));
    expect(message).toMatch(/^cannot create the embedded database directory/);
  });

  it("finding 14: a directory inside another database's directory is refused (a path resolved against the wrong folder)", async () => {
    const outer = join(root, "outer");
    mkdirSync(outer);
    writeFileSync(join(outer, "PG_VERSION"), "17\n");
    const message = await refusal(connectDatabase(`pglite://${join(outer, ".data", "erebus")}`));
    expect(message).toContain(`inside another embedded database directory (${outer})`);
  });
});

describe("@electric-sql/pglite as an optional peer dependency", () => {
  it("finding 15: without @electric-sql/pglite installed, a pglite:// URL is refused naming the package to install", async () => {
    let loads = 0;
    const loadPGlite = async () => {
      loads++;
      throw Object.assign(new Error("Cannot find package '@electric-sql/pglite' imported from /app/node_modules/@erebus/core/dist/db/connect.js"), { code: "ERR_MODULE_NOT_FOUND" });
    };
    const message = await refusal(connectDatabase("pglite://memory", { loadPGlite }));
    expect(message).toContain('npm install @electric-sql/pglite');
    expect(message).toMatch(/postgres:\/\//);

    // A PostgreSQL server URL never loads it.
    const server = await connectDatabase("postgres://127.0.0.1:9/none", { loadPGlite });
    await server.close();
    expect(loads).toBe(1);
  });

  it("finding 15: @erebus/core imports and runs on a server URL where @electric-sql/pglite cannot be resolved", async () => {
    // A resolve hook that makes the package missing, as in an app that did not install it.
    const hook = `export async function resolve(specifier, context, next) {
      if (specifier === "@electric-sql/pglite" || specifier.startsWith("@electric-sql/pglite/")) {
        throw Object.assign(new Error("Cannot find package '@electric-sql/pglite'"), { code: "ERR_MODULE_NOT_FOUND" });
      }
      return next(specifier, context);
    }`;
    const register = `import { register } from "node:module"; register(${JSON.stringify(`data:text/javascript,${encodeURIComponent(hook)}`)});`;
    const script = `
      const core = await import("@erebus/core");
      const server = await core.connectDatabase("postgres://127.0.0.1:9/none");
      await server.close();
      const error = await core.connectDatabase("pglite://memory").catch((e) => e);
      console.log(JSON.stringify({ exports: typeof core.pgliteDatabase, code: error.code, message: error.message }));`;
    const tsx = new URL("../../../../node_modules/tsx/dist/loader.mjs", import.meta.url).href;
    const { stdout } = await promisify(execFile)(
      process.execPath,
      ["--conditions=erebus-source", "--import", tsx, "--import", `data:text/javascript,${encodeURIComponent(register)}`, "--input-type=module", "-e", script],
      { cwd: fileURLToPath(new URL("../../../..", import.meta.url)) },
    );
    expect(JSON.parse(stdout)).toEqual({
      exports: "function",
      code: "ERR_DATABASE_UNAVAILABLE",
      message: expect.stringContaining("npm install @electric-sql/pglite"),
    });
  });
});
