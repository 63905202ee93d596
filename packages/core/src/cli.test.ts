import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, describe, expect, it } from "vitest";
import { engines } from "../../../test/engines.js";
import { main } from "./cli.js";

const run = async (argv: string[], env: Record<string, string>, cwd = process.cwd()) => {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(argv, { env, cwd, out: (l) => out.push(l), err: (l) => err.push(l) });
  return { code, out: out.join("\n"), err: err.join("\n") };
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
        expect(first.out).toMatch(/applied 2 migration\(s\)/);
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
    expect(stdout).toMatch(/applied 2 migration\(s\)/);
  });
});
