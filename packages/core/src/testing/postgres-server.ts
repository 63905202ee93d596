import { execFileSync, spawn, spawnSync } from "node:child_process";
import { chmodSync, existsSync, mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface RunningPostgres {
  url: string;
  dataDir: string;
  stop(): Promise<void>;
  /** pg_ctl restart (fast shutdown): every open connection is dropped. */
  restart(): void;
}

const CANDIDATE_BIN_DIRS = ["/usr/lib/postgresql/17/bin", "/usr/lib/postgresql/16/bin", "/usr/lib/postgresql/15/bin", "/usr/local/pgsql/bin"];

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

/** Where PostgreSQL's server binaries are (`PG_BIN_DIR`, or the usual install directories), or undefined. */
export const postgresBinDir = () => process.env.PG_BIN_DIR ?? CANDIDATE_BIN_DIRS.find((dir) => existsSync(join(dir, "initdb")));

/**
 * Starts a throwaway PostgreSQL server on 127.0.0.1 from the installed binaries (initdb + pg_ctl),
 * or returns undefined when there are none. As root, the server runs as the `postgres` user
 * (PostgreSQL refuses to run as root), with its data directory under the system temp dir.
 * fsync is off: the data is thrown away with the server.
 *
 * @example
 * const server = await startPostgres();
 * if (server) { console.log(server.url); await server.stop(); }
 */
export async function startPostgres(): Promise<RunningPostgres | undefined> {
  const binDir = postgresBinDir();
  if (!binDir) return undefined;
  const asRoot = process.getuid?.() === 0;
  const run = (cmd: string, args: string[]) => {
    const [file, argv] = asRoot ? ["runuser", ["-u", "postgres", "--", join(binDir, cmd), ...args]] : [join(binDir, cmd), args];
    const result = spawnSync(file, argv, { encoding: "utf8" });
    if (result.status !== 0) throw new Error(`${cmd} failed: ${result.stderr || result.stdout}`);
  };
  const dataDir = mkdtempSync(join(tmpdir(), "erebus-pg-"));
  chmodSync(dataDir, 0o700);
  if (asRoot) execFileSync("chown", ["postgres:postgres", dataDir]);
  const port = await freePort();
  run("initdb", ["-D", dataDir, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"]);
  // pg_ctl hands -o to a shell: the socket directory is quoted (TMPDIR may hold spaces).
  const serverOptions = `-p ${port} -k '${dataDir.replaceAll("'", "'\\''")}' -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200`;
  run("pg_ctl", ["-D", dataDir, "-o", serverOptions, "-l", join(dataDir, "server.log"), "-w", "-t", "60", "start"]);
  // A watchdog stops the server when the process that started it is gone without calling stop() (a
  // test worker ended by its runner, Ctrl-C, a crash): a throwaway server must not outlive its run.
  // Every value reaches the shell as an argument ($1…), never as script text (TMPDIR and PG_BIN_DIR
  // may hold spaces); the directory goes only once no server runs in it.
  const script = [
    'pid="$1"; dir="$2"; shift 2',
    'while kill -0 "$pid" 2>/dev/null; do sleep 1; done',
    '"$@" >/dev/null 2>&1',
    'if [ ! -e "$dir/postmaster.pid" ]; then rm -rf -- "$dir"; fi',
  ].join("\n");
  const stopArgv = [...(asRoot ? ["runuser", "-u", "postgres", "--"] : []), join(binDir, "pg_ctl"), "-D", dataDir, "-m", "immediate", "-w", "stop"];
  const watchdog = spawn("sh", ["-c", script, "erebus-pg-watchdog", String(process.pid), dataDir, ...stopArgv], { detached: true, stdio: "ignore" });
  watchdog.on("error", () => undefined); // no sh (Windows): no watchdog, stop() still works
  watchdog.unref();
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    dataDir,
    restart() {
      run("pg_ctl", ["-D", dataDir, "-o", serverOptions, "-l", join(dataDir, "server.log"), "-m", "fast", "-w", "-t", "60", "restart"]);
    },
    async stop() {
      watchdog.kill();
      try {
        run("pg_ctl", ["-D", dataDir, "-m", "immediate", "-w", "stop"]);
      } finally {
        rmSync(dataDir, { recursive: true, force: true });
      }
    },
  };
}

/**
 * Finds a PostgreSQL server for a test run (a vitest `globalSetup` calls it once): `DATABASE_URL`
 * when it is a `postgres://` URL, else a throwaway server from the binaries, else `url: null`
 * (tests then run on PGlite only). With `required` (the repo passes `CI === "true"`), no server is an error.
 *
 * @example
 * // vitest global setup
 * export async function setup(project) {
 *   const postgres = await findPostgres({ required: process.env.CI === "true" });
 *   project.provide("postgresUrl", postgres.url);
 *   return () => postgres.stop();
 * }
 */
export async function findPostgres(options: { required?: boolean } = {}): Promise<{ url: string | null; stop(): Promise<void> }> {
  const fromEnv = process.env.DATABASE_URL;
  if (fromEnv && /^postgres(ql)?:\/\//.test(fromEnv)) return { url: fromEnv, stop: async () => undefined };
  const server = await startPostgres();
  if (!server && options.required) {
    throw new Error("no PostgreSQL server: set DATABASE_URL=postgres://… or install the PostgreSQL server binaries (PG_BIN_DIR)");
  }
  return { url: server?.url ?? null, stop: async () => server?.stop() };
}
