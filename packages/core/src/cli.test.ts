import { execFile } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, describe, expect, it } from "vitest";
import { cliProcess } from "../../../test/cli.js";
import { engines } from "../../../test/engines.js";
import { createAuth } from "./create-auth.js";
import { main } from "./cli.js";
import { connectDatabase } from "./db/connect.js";
import { silentLogger } from "./logger.js";

const run = async (argv: string[], env: Record<string, string>, cwd = process.cwd()) => {
  const out: string[] = [];
  const err: string[] = [];
  const info: string[] = [];
  const code = await main(argv, { env, cwd, out: (l) => out.push(l), err: (l) => err.push(l), info: (l) => info.push(l) });
  return { code, out: out.join("\n"), err: err.join("\n"), info: info.join("\n") };
};

const dirs: string[] = [];
const tempDir = () => {
  const dir = mkdtempSync(join(tmpdir(), "erebus-cli-"));
  dirs.push(dir);
  return dir;
};
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

describe("erebus CLI", () => {
  for (const engine of engines()) {
    it(`migrates, then deactivates and reactivates a user (${engine.name})`, async () => {
      const db = await engine.create();
      const url = engine.name === "postgres" ? db.url! : `pglite://${join(tempDir(), "db")}`;
      if (engine.name === "pglite") await db.close();
      try {
        const first = await run(["migrate"], { DATABASE_URL: url });
        expect(first).toMatchObject({ code: 0 });
        expect(first.out).toMatch(/applied 6 migration\(s\)/);
        expect((await run(["migrate"], { DATABASE_URL: url })).out).toMatch(/up to date/);

        const created = await run(["agents", "create", "--type", "task_runner", "--capabilities", "execute_tasks, monitor_status", "--id", "cron"], { DATABASE_URL: url });
        expect(created.code).toBe(0);
        const agent = JSON.parse(created.out);
        expect(agent).toMatchObject({ network: "system", user_type: "agent", source_identifier: "cron", source_type: { agent_type: "task_runner", capabilities: ["execute_tasks", "monitor_status"] } });
        expect((await run(["agents", "create"], { DATABASE_URL: url })).code).toBe(2);

        const off = await run(["users", "deactivate", agent.id], { DATABASE_URL: url });
        expect(off).toMatchObject({ code: 0 });
        expect(off.out).toContain("deactivated");
        const shown = await run(["users", "show", agent.id], { DATABASE_URL: url });
        expect(JSON.parse(shown.out)).toMatchObject({ id: agent.id, is_active: false });
        expect((await run(["users", "reactivate", agent.id], { DATABASE_URL: url })).code).toBe(0);
        // deactivation revoked nothing here (agents have no sessions); prune runs and reports a count.
        const pruned = await run(["sessions", "prune", "--older-than-days", "0"], { DATABASE_URL: url });
        expect(pruned).toMatchObject({ code: 0, out: expect.stringMatching(/^pruned \d+ session\(s\)$/) });
        expect((await run(["sessions", "prune", "--older-than-days", "x"], { DATABASE_URL: url })).code).toBe(2);
        const missing = await run(["users", "deactivate", "00000000-0000-4000-8000-000000000000"], { DATABASE_URL: url });
        expect(missing.code).toBe(1);
        expect(missing.err).toContain("ERR_USER_NOT_FOUND");
      } finally {
        if (engine.name === "postgres") await db.close();
      }
    });
  }

  it("applies the migrations of providers named in --config", async () => {
    const dir = tempDir();
    const config = join(dir, "erebus.config.mjs");
    writeFileSync(
      config,
      `export default { providers: [{ id: "demo", emits: [], routes() {}, migrations: [{ id: "0001_demo", sql: "CREATE TABLE demo_rows (id int)" }] }] };`,
    );
    const result = await run(["migrate", "--config", config], { DATABASE_URL: `pglite://${join(dir, "db")}` });
    expect(result.code).toBe(0);
    expect(result.out).toContain("demo/0001_demo");
  });

  it("finding 14: the app and the CLI (a child process) on one PGlite directory: the second is refused and nothing is lost", async () => {
    const dir = join(tempDir(), "db");
    const url = `pglite://${dir}`;
    const app = createAuth({ database: url, baseURL: "http://localhost:3000", providers: [], migrate: true, logger: silentLogger });
    let closed = false;
    try {
      await app.ready;
      const before = await app.api.registerSystemAgent({ agentType: "task_runner", capabilities: [], agentId: "made-by-app" });

      // The CLI in a second process while the app runs: refused, with what to do, and no write.
      const refused = await cliProcess(["agents", "create", "--type", "task_runner", "--id", "made-by-cli"], { env: { DATABASE_URL: url } });
      expect(refused.code).toBe(1);
      expect(refused.stdout).toBe("");
      expect(refused.stderr).toContain("ERR_DATABASE_UNAVAILABLE");
      expect(refused.stderr).toContain(`the embedded database ${dir} is in use by process ${process.pid}`);
      expect(refused.stderr).toMatch(/stop the process that has it open \(the app\).*through the running app.*DATABASE_URL=postgres:\/\//);
      expect(refused.stderr.trim().split("\n")).toHaveLength(1);

      // The app goes on writing; everything survives its restart.
      const after = await app.api.registerSystemAgent({ agentType: "task_runner", capabilities: [], agentId: "made-after" });
      await app.close();
      closed = true;
      const shown = await cliProcess(["users", "show", after.id], { env: { DATABASE_URL: url } });
      expect(shown).toMatchObject({ code: 0 });
      expect(shown.stderr).toBe(`erebus: database ${url} (from DATABASE_URL)\n`);
      expect(JSON.parse(shown.stdout)).toMatchObject({ id: after.id, source_identifier: "made-after" });
      const again = createAuth({ database: url, baseURL: "http://localhost:3000", providers: [], logger: silentLogger });
      try {
        expect(await again.api.getUser(before.id)).toMatchObject({ source_identifier: "made-by-app" });
        const { rows } = await again.db.query<{ n: number }>("SELECT count(*)::int AS n FROM user_references WHERE source_identifier = 'made-by-cli'");
        expect(rows).toEqual([{ n: 0 }]);
      } finally {
        await again.close();
      }
    } finally {
      if (!closed) await app.close();
    }
  });

  it("finding 14: the CLI on a corrupted database prints ERR_DATABASE_UNAVAILABLE in one line, never PGlite's code", async () => {
    const dir = join(tempDir(), "db");
    const db = await connectDatabase(`pglite://${dir}`);
    await db.close();
    for (const segment of readdirSync(join(dir, "pg_wal")).filter((f) => /^[0-9A-F]{24}$/.test(f))) writeFileSync(join(dir, "pg_wal", segment), "x");
    const broken = await cliProcess(["migrate"], { env: { DATABASE_URL: `pglite://${dir}` } });
    expect(broken.code).toBe(1);
    expect(broken.stdout).toBe("");
    expect(broken.stderr).toMatch(/^erebus migrate: ERR_DATABASE_UNAVAILABLE: cannot open the embedded database .*: could not locate a valid checkpoint record/);
    expect(broken.stderr.trim().split("\n")).toHaveLength(1);
    expect(broken.stderr.length).toBeLessThan(500);
  });

  it("finding 14: the CLI uses the database of the app's config (relative to the config's folder, whatever the cwd) and prints it", async () => {
    const appDir = tempDir();
    const config = join(appDir, "app.config.mjs");
    writeFileSync(config, `export default { database: "pglite://.data/erebus", baseURL: "http://localhost:4000", providers: [] };`);
    const elsewhere = tempDir();
    const result = await run(["migrate", "--config", config], { DATABASE_URL: "pglite://.data/other" }, elsewhere);
    expect(result).toMatchObject({ code: 0, err: "" });
    expect(result.info).toBe(`erebus: database pglite://${join(appDir, ".data", "erebus")} (from ${config})`);
    expect(readdirSync(join(appDir, ".data"))).toEqual(["erebus"]);
    expect(readdirSync(elsewhere)).toEqual([]);

    // Without a config: DATABASE_URL against the CLI's cwd (not the process's), or the default, said so.
    const fromEnv = await run(["migrate"], { DATABASE_URL: "pglite://.data/erebus" }, appDir);
    expect(fromEnv).toMatchObject({ code: 0, info: `erebus: database pglite://${join(appDir, ".data", "erebus")} (from DATABASE_URL)` });
    const byDefault = await run(["migrate"], {}, appDir);
    expect(byDefault).toMatchObject({ code: 0, out: expect.stringMatching(/up to date/) });
    expect(byDefault.info).toBe(`erebus: database pglite://${join(appDir, ".data", "erebus")} (the default: set DATABASE_URL, or "database" in erebus.config.js, to the app's database)`);
    // …which, run from inside the app's data directory, would be nested in it: refused, nothing created.
    const nested = await run(["migrate"], {}, join(appDir, ".data", "erebus"));
    expect(nested.code).toBe(1);
    expect(nested.err).toMatch(/ERR_DATABASE_UNAVAILABLE: .*inside another embedded database directory/);
    expect(readdirSync(join(appDir, ".data", "erebus"))).not.toContain(".data");
  });

  it("says how to use it on bad input", async () => {
    expect((await run([], {})).code).toBe(2);
    expect((await run(["users", "frobnicate"], { DATABASE_URL: "pglite://memory" })).code).toBe(2);
    const unknown = await run(["nope"], { DATABASE_URL: "pglite://memory" });
    expect(unknown.code).toBe(2);
    expect(unknown.err).toContain('unknown command "nope"');
    const badUrl = await run(["migrate"], { DATABASE_URL: "mysql://x" });
    expect(badUrl.code).toBe(2);
    expect(badUrl.err).toMatch(/option "database"/);
  });

  it("runs as `npx erebus` from the built package", async () => {
    const dir = tempDir();
    const { stdout } = await promisify(execFile)("npx", ["--no-install", "erebus", "migrate"], {
      env: { ...process.env, DATABASE_URL: `pglite://${join(dir, "db")}` },
    });
    expect(stdout).toMatch(/applied 6 migration\(s\)/);
  });
});
