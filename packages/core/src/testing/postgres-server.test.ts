import { spawnSync } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { postgresBinDir } from "./postgres-server.js";

const here = new URL(".", import.meta.url).pathname;

describe.runIf(postgresBinDir() || process.env.CI === "true")("startPostgres: a throwaway server", () => {
  it("review: is stopped and removed when the process that started it ends without stop() (a worker ended by its runner leaked one server per run); a TMPDIR with a space removes nothing else", async () => {
    // TMPDIR "<base>/my tmp" beside a directory "<base>/my": a watchdog that put the path into its
    // script unquoted would run `rm -rf <base>/my tmp/erebus-pg-…` and delete the neighbour.
    const base = mkdtempSync(join(tmpdir(), "erebus-wd-"));
    const tmp = join(base, "my tmp");
    const neighbour = join(base, "my");
    mkdirSync(tmp);
    mkdirSync(neighbour);
    for (const dir of [base, tmp]) chmodSync(dir, 0o755); // the postgres user (as root) must get through
    // A process that starts a server and exits at once, never calling stop().
    const child = spawnSync(
      process.execPath,
      ["--conditions=erebus-source", "--import", "tsx", "-e", `import("${here}postgres-server.ts").then(async (m) => { const s = await m.startPostgres(); const fs = await import("node:fs"); console.log(fs.readFileSync(s.dataDir + "/postmaster.pid", "utf8").split("\\n")[0]); console.log(s.dataDir); process.exit(0); })`],
      { encoding: "utf8", timeout: 60_000, env: { ...process.env, TMPDIR: tmp } },
    );
    const [pid, dataDir] = child.stdout.trim().split("\n").slice(-2) as [string, string];
    expect(dataDir).toMatch(/erebus-pg-/);
    const alive = () => {
      try {
        process.kill(Number(pid), 0);
        return true;
      } catch {
        return false;
      }
    };
    // The watchdog polls once a second; the server and its directory go soon after.
    for (let i = 0; i < 100 && (existsSync(dataDir) || alive()); i++) await new Promise((resolve) => setTimeout(resolve, 100));
    expect([existsSync(dataDir), alive()]).toEqual([false, false]);
    expect(dataDir.startsWith(tmp)).toBe(true);
    expect(existsSync(neighbour)).toBe(true);
    rmSync(base, { recursive: true, force: true });
  }, 60_000);
});
