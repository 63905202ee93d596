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
      const code = await runCli([...argv, "--config", file], {
        env: { DATABASE_URL: `pglite://${join(dir, "db")}`, ...env },
        cwd: dir,
        out: (l) => out.push(l),
        err: (l) => err.push(l),
      });
      return { code, out: out.join("\n"), err: err.join("\n") };
    },
    cleanup() {
      rmSync(dir, { recursive: true, force: true });
      rmSync(file, { force: true });
    },
  };
}
