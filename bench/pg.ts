// A throwaway PostgreSQL 15 server for the bench: fsync and synchronous_commit ON (every commit is a
// real flush, as in production), pg_stat_statements loaded so statements and writes per request can
// be counted, one database per scenario so the counts do not mix.
import { execFileSync, spawnSync } from "node:child_process";
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { postgresBinDir } from "../test/postgres-server.js";

export interface BenchPostgres {
  adminUrl: string;
  /** A new empty database; returns its URL. */
  createDatabase(name: string): Promise<string>;
  /** utime+stime (clock ticks) of every server process: the postmaster, its live children and those it reaped. */
  cpuTicks(): number;
  /** Statement counts in one database since the last reset. */
  statements(database: string): Promise<{ calls: number; writes: number; commits: number; top: { query: string; calls: number; execMs: number; planMs: number }[] }>;
  resetStatements(): Promise<void>;
  stop(): void;
}

const freePort = async () => {
  const { createServer } = await import("node:net");
  return new Promise<number>((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
};

/** utime + stime of a pid from /proc (clock ticks, 100/s on Linux), 0 when it is gone. */
export function procTicks(pid: number, reapedChildren = false): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // cutime/cstime: children that exited and were waited for (a backend whose connection closed).
    return Number(fields[11]) + Number(fields[12]) + (reapedChildren ? Number(fields[13]) + Number(fields[14]) : 0);
  } catch {
    return 0;
  }
}

function childrenOf(ppid: number): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (Number(fields[1]) === ppid) pids.push(Number(entry));
    } catch {
      // gone between readdir and read
    }
  }
  return pids;
}

export async function startBenchPostgres(): Promise<BenchPostgres> {
  const binDir = postgresBinDir();
  if (!binDir) throw new Error("the bench needs PostgreSQL server binaries (set PG_BIN_DIR)");
  const asRoot = process.getuid?.() === 0;
  const run = (cmd: string, args: string[]) => {
    const [file, argv] = asRoot ? ["runuser", ["-u", "postgres", "--", join(binDir, cmd), ...args]] : [join(binDir, cmd), args];
    const result = spawnSync(file, argv as string[], { encoding: "utf8" });
    if (result.status !== 0) throw new Error(`${cmd} failed: ${result.stderr || result.stdout}`);
  };
  const dataDir = mkdtempSync(join(tmpdir(), "erebus-bench-pg-"));
  chmodSync(dataDir, 0o700);
  if (asRoot) execFileSync("chown", ["postgres:postgres", dataDir]);
  const port = await freePort();
  run("initdb", ["-D", dataDir, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"]);
  const serverOptions = [
    `-p ${port} -k ${dataDir} -c listen_addresses=127.0.0.1 -c max_connections=300`,
    "-c fsync=on -c synchronous_commit=on",
    // BENCH_PG_DIAGNOSE=1: statements inside functions and triggers too, and planning time (both
    // cost a little on every statement, so the measured runs leave them off).
    process.env.BENCH_PG_DIAGNOSE === "1"
      ? "-c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.track=all -c pg_stat_statements.track_planning=on"
      : "-c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.track=top",
  ].join(" ");
  run("pg_ctl", ["-D", dataDir, "-o", serverOptions, "-l", join(dataDir, "server.log"), "-w", "-t", "60", "start"]);
  const adminUrl = `postgres://postgres@127.0.0.1:${port}/postgres`;
  const admin = new pg.Pool({ connectionString: adminUrl, max: 2 });
  await admin.query("CREATE EXTENSION IF NOT EXISTS pg_stat_statements");
  const postmaster = Number(readFileSync(join(dataDir, "postmaster.pid"), "utf8").split("\n")[0]);
  return {
    adminUrl,
    async createDatabase(name) {
      await admin.query(`CREATE DATABASE ${name}`);
      const url = new URL(adminUrl);
      url.pathname = `/${name}`;
      return url.toString();
    },
    cpuTicks: () => procTicks(postmaster, true) + childrenOf(postmaster).reduce((sum, pid) => sum + procTicks(pid), 0),
    async statements(database) {
      const { rows } = await admin.query<{ query: string; calls: string; exec_ms: number; plan_ms: number }>(
        `SELECT s.query, s.calls::text, s.total_exec_time AS exec_ms, s.total_plan_time AS plan_ms FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
         WHERE d.datname = $1 ORDER BY s.calls DESC`,
        [database],
      );
      let calls = 0;
      let writes = 0;
      let commits = 0;
      for (const row of rows) {
        const n = Number(row.calls);
        const q = row.query.trim().toUpperCase();
        if (q === "BEGIN" || q === "ROLLBACK") continue;
        if (q === "COMMIT") {
          commits += n;
          continue;
        }
        calls += n;
        if (/^(WITH\b[\s\S]*\b)?(INSERT|UPDATE|DELETE)\b/.test(q)) writes += n;
      }
      const top = rows.slice(0, 16).map((r) => ({ query: r.query.replace(/\s+/g, " ").slice(0, 160), calls: Number(r.calls), execMs: r.exec_ms, planMs: r.plan_ms }));
      return { calls, writes, commits, top };
    },
    async resetStatements() {
      await admin.query("SELECT pg_stat_statements_reset()");
    },
    stop() {
      void admin.end().catch(() => undefined);
      try {
        run("pg_ctl", ["-D", dataDir, "-m", "immediate", "-w", "stop"]);
      } finally {
        rmSync(dataDir, { recursive: true, force: true });
      }
    },
  };
}
