import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { cliRunner } from "../../../test/cli.js";

const agentsDir = mkdtempSync(join(tmpdir(), "erebus-agents-"));
// The command reads the agents database from syncProvider({ target }) (or AGENTS_DATABASE_URL in the process environment).
const target = `pglite://${join(agentsDir, "db")}`;
const cli = cliRunner(`import { syncProvider } from "@erebus/sync";\nexport default { providers: [syncProvider({ target: ${JSON.stringify(target)} })] };\n`);
afterAll(() => {
  cli.cleanup();
  rmSync(agentsDir, { recursive: true, force: true });
});

describe("npx erebus sync", () => {
  it("reports pending events and lag with `sync status`", async () => {
    expect((await cli.run(["migrate"])).code).toBe(0);
    expect((await cli.run(["agents", "create", "--type", "monitor", "--id", "m-1"])).code).toBe(0);
    const status = await cli.run(["sync", "status"]);
    expect(status.code).toBe(0);
    expect(JSON.parse(status.out)).toMatchObject({ pending: 1, lastError: null });
    expect((await cli.run(["sync", "frobnicate"])).code).toBe(2);
  });

  it("finding 1: `sync resync` re-copies every row into the cache; `sync grant-reader` refuses what is not a role", async () => {
    const resync = await cli.run(["sync", "resync"]);
    expect(resync.code, resync.err).toBe(0);
    expect(JSON.parse(resync.out)).toMatchObject({ rows: 1, repaired: 0, removed: 0 });
    const unknown = await cli.run(["sync", "grant-reader", "agents_reader"]);
    expect(unknown.code).not.toBe(0);
    expect(unknown.err).toMatch(/no role "agents_reader"/);
    const bad = await cli.run(["sync", "grant-reader", "x;drop"]);
    expect(bad.code).not.toBe(0);
    expect(bad.err).toMatch(/not a role name/);
  });
});
