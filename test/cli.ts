import { execFile } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { runCli } from "@erebus/core";

/**
 * Runs `erebus` in-process against an embedded database in a temp folder, with an erebus.config.mjs
 * whose source is `config`. The config lives inside the repository (test/.tmp) so that it resolves
 * @erebus/* as an app's config would. `cleanup()` removes both.
 */
export function cliRunner(config: string, env: Record<string, string> = {}) {
  const dir = mkdtempSync(join(tmpdir(), "erebus-cli-"));
  const configDir = fileURLToPath(new URL("./.tmp/", import.meta.url));
  mkdirSync(configDir, { recursive: true });
  const file = join(configDir, `erebus.config.${process.pid}.${Math.random().toString(36).slice(2)}.mjs`);
  writeFileSync(file, config);
  return {
    async run(argv: string[]) {
      const out: string[] = [];
      const err: string[] = [];
      const info: string[] = [];
      const code = await runCli([...argv, "--config", file], {
        env: { DATABASE_URL: `pglite://${join(dir, "db")}`, ...env },
        cwd: dir,
        out: (l) => out.push(l),
        err: (l) => err.push(l),
        info: (l) => info.push(l),
      });
      return { code, out: out.join("\n"), err: err.join("\n"), info: info.join("\n") };
    },
    cleanup() {
      rmSync(dir, { recursive: true, force: true });
      rmSync(file, { force: true });
    },
  };
}

/**
 * Runs `erebus` as its own process (from the TypeScript sources, as `npx erebus` runs the built
 * package): what a user does in a second terminal while the app runs. Never rejects: resolves to
 * the exit code and what the process wrote.
 */
export function cliProcess(argv: string[], options: { env?: Record<string, string>; cwd?: string } = {}) {
  const main = fileURLToPath(new URL("./cli-main.ts", import.meta.url));
  // By URL: `--import tsx` would be resolved from the child's cwd, which may lie outside the repo.
  const tsx = new URL("../node_modules/tsx/dist/loader.mjs", import.meta.url).href;
  return new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    execFile(
      process.execPath,
      ["--conditions=erebus-source", "--import", tsx, main, ...argv],
      { env: { PATH: process.env.PATH ?? "", ...options.env }, cwd: options.cwd ?? process.cwd(), timeout: 60_000 },
      (error, stdout, stderr) => resolve({ code: error ? (typeof error.code === "number" ? error.code : 1) : 0, stdout, stderr }),
    );
  });
}
