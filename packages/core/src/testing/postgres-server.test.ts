import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { postgresBinDir } from "./postgres-server.js";

const here = new URL(".", import.meta.url).pathname;

describe.runIf(postgresBinDir() || process.env.CI === "true")("startPostgres: a throwaway server", () => {
  it("review: is stopped and removed when the process that started it ends without stop() (a worker ended by its runner leaked one server per run)", async () => {
    // A process that starts a server and exits at once, never calling stop().
    const child = spawnSync(
      process.execPath,
      ["--conditions=erebus-source", "--import", "tsx", "-e", `import("${here}postgres-server.ts").then(async (m) => { const s = await m.startPostgres(); const fs = await import("node:fs"); console.log(fs.readFileSync(s.dataDir + "/postmaster.pid", "utf8").split("\\n")[0]); console.log(s.dataDir); process.exit(0); })`],
      { encoding: "utf8", timeout: 60_000 },
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
  }, 60_000);
});
