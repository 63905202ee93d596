import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { runCli } from "@erebus/core";

const dir = mkdtempSync(join(tmpdir(), "erebus-sync-cli-"));
const configDir = fileURLToPath(new URL("../.tmp/", import.meta.url));
mkdirSync(configDir, { recursive: true });
const config = join(configDir, `erebus.config.${process.pid}.mjs`);
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
  rmSync(config, { force: true });
});

describe("npx erebus sync", () => {
  it("reports pending events and lag with `sync status`", async () => {
    writeFileSync(config, `import { syncProvider } from "@erebus/sync";\nexport default { providers: [syncProvider()] };\n`);
    const run = async (argv: string[]) => {
      const out: string[] = [];
      const err: string[] = [];
      const code = await runCli([...argv, "--config", config], { env: { DATABASE_URL: `pglite://${join(dir, "db")}` }, cwd: dir, out: (l) => out.push(l), err: (l) => err.push(l) });
      return { code, out: out.join("\n"), err: err.join("\n") };
    };
    expect((await run(["migrate"])).code).toBe(0);
    expect((await run(["agents", "create", "--type", "monitor", "--id", "m-1"])).code).toBe(0);
    const status = await run(["sync", "status"]);
    expect(status.code).toBe(0);
    expect(JSON.parse(status.out)).toMatchObject({ pending: 1, lastError: null });
    expect((await run(["sync", "frobnicate"])).code).toBe(2);
  });
});
