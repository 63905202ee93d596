// The bench: Erebus and its peers side by side, in one run, on one PostgreSQL server (fsync on), with a
// separate load generator process on 127.0.0.1. Every ratio's baseline (bare Express, no auth at all)
// is measured in the same round; each scenario runs in its own server process so its CPU time per
// request can be read from /proc; rounds are interleaved so drift on a shared machine hits every
// scenario alike. Writes bench/results.json and the table in bench/README.md.
//   npm run bench            (BENCH_SECONDS=3 BENCH_ROUNDS=3 by default; BENCH_ONLY=a,b for a subset)
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { cpus, loadavg } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { procTicks, startBenchPostgres, type BenchPostgres } from "./pg.js";
import type { Ready } from "./server.js";

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, "..");
const SECONDS = Number(process.env.BENCH_SECONDS ?? 3);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const CONNECTIONS = 10;
const ONLY = process.env.BENCH_ONLY?.split(",");
const TICK_US = 1e6 / 100; // /proc times are in USER_HZ (100/s)
// Without the erebus-source condition: @erebus/* load from dist (built by `npm run bench`), as users
// run them. Through tsx, the sources carry its helpers (a `__name` call per closure made) that the
// built code does not.
const tsx = [process.execPath, "--import", "tsx"];

const HTTP_SCENARIOS: { id: string; label: string }[] = [
  { id: "bare", label: "bare Express (baseline), no auth" },
  { id: "erebus-cookie", label: "Erebus session cookie (`requireUser`)" },
  { id: "erebus-bearer", label: "Erebus bearer session (`requireUser`)" },
  { id: "erebus-apikey", label: "Erebus API key, default cache" },
  { id: "erebus-apikey-nocache", label: "Erebus API key, `cacheTtl: 0`" },
  { id: "better-auth-session", label: "better-auth 1.7.5 `getSession`" },
  { id: "better-auth-session-cookie-cache", label: "better-auth 1.7.5 `getSession`, cookie cache" },
  { id: "better-auth-apikey", label: "better-auth 1.7.5 api-key `verifyApiKey`" },
  { id: "passport-apikey", label: "passport-headerapikey + one pg look-up" },
  { id: "express-session", label: "express-session + connect-pg-simple" },
];
const SIGNIN_SCENARIOS = [
  { id: "erebus-wallet", client: "erebus", label: "Erebus full SIWE sign-in (nonce + verify + resolve + session)" },
  { id: "better-auth-siwe", client: "better-auth", label: "better-auth 1.7.5 SIWE plugin (viem verifyMessage), same flow" },
];
const wanted = (id: string) => !ONLY || ONLY.includes(id) || id === "bare";

interface Sample {
  rate: number;
  nodeUs: number;
  pgUs: number;
  statements: number;
  writes: number;
  commits: number;
  p99ms?: number;
  errors: number;
  /** Sign-ins: the load generator's own CPU per sign-in (it runs on the same cores). */
  clientUs?: number;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const summary = (xs: number[]) => ({ median: median(xs), min: Math.min(...xs), max: Math.max(...xs) });

function startServer(scenario: string, databaseUrl: string): Promise<{ child: ChildProcess; ready: Ready }> {
  return new Promise((resolve, reject) => {
    const child = spawn(tsx[0]!, [...tsx.slice(1), join(here, "server.ts"), scenario, databaseUrl], { cwd: root, stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, NODE_ENV: "production" } });
    let out = "";
    let err = "";
    child.stdout!.on("data", (chunk: Buffer) => {
      out += chunk.toString();
      const line = out.split("\n").find((l) => l.startsWith("READY "));
      if (line) resolve({ child, ready: JSON.parse(line.slice(6)) as Ready });
    });
    child.stderr!.on("data", (chunk: Buffer) => (err += chunk.toString()));
    child.once("exit", (code) => reject(new Error(`${scenario} server exited ${code}: ${err.slice(-2000)}`)));
  });
}

function wrk(url: string, headers: Record<string, string>): { rate: number; requests: number; p99ms: number; errors: number } {
  const args = ["-t1", `-c${CONNECTIONS}`, `-d${SECONDS}s`, "--latency", ...Object.entries(headers).flatMap(([k, v]) => ["-H", `${k}: ${v}`]), url];
  const result = spawnSync("wrk", args, { encoding: "utf8" });
  if (result.status !== 0) throw new Error(`wrk failed: ${result.stderr}`);
  const out = result.stdout;
  const rate = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1]);
  const requests = Number(/(\d+) requests in/.exec(out)?.[1]);
  const p99 = /99%\s+([\d.]+)(us|ms|s)/.exec(out);
  const p99ms = p99 ? Number(p99[1]) * (p99[2] === "us" ? 0.001 : p99[2] === "s" ? 1000 : 1) : NaN;
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0);
  const socketErrors = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const errors = non2xx + (socketErrors ? socketErrors.slice(1).reduce((s, n) => s + Number(n), 0) : 0);
  return { rate, requests, p99ms, errors };
}

async function measure(
  pgs: BenchPostgres,
  database: string,
  pid: number,
  run: (begin: () => Promise<void>) => Promise<{ rate: number; requests: number; p99ms?: number; errors: number; clientCpuMs?: number }>,
): Promise<Sample> {
  let node0 = 0;
  let pg0 = 0;
  const begin = async () => {
    await pgs.resetStatements();
    node0 = procTicks(pid);
    pg0 = pgs.cpuTicks();
  };
  const r = await run(begin);
  const node1 = procTicks(pid);
  const pg1 = pgs.cpuTicks();
  const stats = await pgs.statements(database);
  return {
    rate: r.rate,
    nodeUs: ((node1 - node0) * TICK_US) / r.requests,
    pgUs: ((pg1 - pg0) * TICK_US) / r.requests,
    statements: stats.calls / r.requests,
    writes: stats.writes / r.requests,
    commits: stats.commits / r.requests,
    ...(r.p99ms !== undefined ? { p99ms: r.p99ms } : {}),
    ...(r.clientCpuMs !== undefined ? { clientUs: (r.clientCpuMs * 1000) / r.requests } : {}),
    errors: r.errors,
  };
}

/** Runs the sign-in client; `onWarm` runs once its untimed warm-up is done, before the timed part starts. */
function signInClient(kind: string, url: string, onWarm: () => Promise<void>): Promise<{ rate: number; requests: number; errors: number; clientCpuMs: number; firstError?: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(tsx[0]!, [...tsx.slice(1), join(here, "signin-client.ts"), kind, url, String(SECONDS + 2), String(CONNECTIONS)], { cwd: root, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    let warm = false;
    child.stdout!.on("data", (c: Buffer) => {
      out += c.toString();
      if (!warm && out.includes("WARM\n")) {
        warm = true;
        void onWarm().then(() => child.kill("SIGUSR2"), reject);
      }
    });
    child.stderr!.on("data", (c: Buffer) => (err += c.toString()));
    child.once("exit", (code) => {
      if (code !== 0) return reject(new Error(`sign-in client exited ${code}: ${err.slice(-1500)}`));
      const r = JSON.parse(out.trim().split("\n").pop()!) as { count: number; rate: number; errors: number; clientCpuMs: number; firstError?: string };
      resolve({ rate: r.rate, requests: r.count + r.errors, errors: r.errors, clientCpuMs: r.clientCpuMs, ...(r.firstError ? { firstError: r.firstError } : {}) });
    });
  });
}

const freePort = () =>
  new Promise<number>((resolve) => {
    const srv = createServer();
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });

interface ColdStart {
  /** Spawn to the first answer of `/auth/session` (401: answered by Erebus, the app is up). */
  firstAnswerMs: number;
  /** What the server itself says in its "started in" line: process start to listening. */
  listeningMs: number;
  /** The server process's CPU time (all threads) at its first answer. */
  cpuMs: number;
}

/**
 * `node dist/server.js` of the example app (two in-memory PGlite databases, development helpers on)
 * to its first answer on `/auth/session`, polled every 10 ms.
 */
async function coldStart(): Promise<ColdStart | undefined> {
  const entry = join(root, "examples/express-app/dist/server.js");
  if (!existsSync(entry)) return undefined;
  const port = await freePort();
  const start = performance.now();
  const child = spawn(process.execPath, [entry], {
    cwd: join(root, "examples/express-app"),
    stdio: ["ignore", "pipe", "ignore"],
    env: { ...process.env, NODE_ENV: "development", PORT: String(port), HOST: "localhost", DATABASE_URL: "pglite://memory", AGENTS_DATABASE_URL: "pglite://memory" },
  });
  let out = "";
  child.stdout!.on("data", (c: Buffer) => (out += c.toString()));
  try {
    for (;;) {
      if (performance.now() - start > 60_000) throw new Error("cold start: no answer within 60 s");
      try {
        const res = await fetch(`http://localhost:${port}/auth/session`);
        await res.text();
        if (res.status === 401 || res.status === 200) {
          const firstAnswerMs = performance.now() - start;
          const cpuMs = (procTicks(child.pid!) * TICK_US) / 1000;
          return { firstAnswerMs, cpuMs, listeningMs: Number(/started in (\d+) ms/.exec(out)?.[1] ?? NaN) };
        }
      } catch {
        // not listening yet
      }
      await new Promise((r) => setTimeout(r, 10));
    }
  } finally {
    child.kill("SIGKILL");
  }
}

/** bench/cold-phases.ts: the start-up's phases, each alone (wall and CPU ms). */
function coldPhases(): Record<string, { wallMs: number; cpuMs: number }> {
  const result = spawnSync(process.execPath, ["--import", "tsx", join(here, "cold-phases.ts")], { cwd: root, encoding: "utf8", timeout: 120_000 });
  if (result.status !== 0) throw new Error(`cold-phases.ts failed: ${result.stderr.slice(-2000)}`);
  return JSON.parse(result.stdout.trim().split("\n").pop()!) as Record<string, { wallMs: number; cpuMs: number }>;
}

function micro(database: string): Record<string, number[]> {
  const result = spawnSync(tsx[0]!, [...tsx.slice(1), join(here, "micro.ts"), database, String(ROUNDS)], { cwd: root, encoding: "utf8", maxBuffer: 1 << 24 });
  if (result.status !== 0) throw new Error(`micro.ts failed: ${result.stderr.slice(-2000)}`);
  return JSON.parse(result.stdout.trim().split("\n").pop()!) as Record<string, number[]>;
}

// ------------------------------------------------------------------------------------------------

const startedAt = new Date();
console.log(`bench: ${ROUNDS} rounds × ${SECONDS} s per scenario, wrk -t1 -c${CONNECTIONS}; ${cpus().length} cores, load average ${loadavg().map((l) => l.toFixed(1)).join(" ")}`);
const pgs = await startBenchPostgres();
const children: ChildProcess[] = [];
const cleanup = () => {
  for (const child of children) child.kill("SIGKILL");
  pgs.stop();
};
// Interrupted (Ctrl-C, or a timeout's SIGTERM): no server process or PostgreSQL is left behind.
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, () => {
    cleanup();
    process.exit(130);
  });
}

const http: Record<string, Sample[]> = {};
const signIns: Record<string, Sample[]> = {};
let statementsSeen: Record<string, { query: string; calls: number; execMs: number; planMs: number }[]> = {};
/** A subset run prints what the first round's statements cost in PostgreSQL (BENCH_PG_DIAGNOSE=1 adds planning and triggers' statements). */
const printStatements = (id: string) => {
  if (!ONLY) return;
  for (const s of statementsSeen[id] ?? []) {
    console.log(`      ${String(s.calls).padStart(6)} × exec ${((s.execMs * 1000) / s.calls).toFixed(0).padStart(5)} µs plan ${((s.planMs * 1000) / s.calls).toFixed(0).padStart(4)} µs  ${s.query.slice(0, 110)}`);
  }
};
let cold: ColdStart[] = [];
let phases: Record<string, { wallMs: number; cpuMs: number }[]> = {};
let microResults: Record<string, number[]> = {};
try {
  const servers = new Map<string, { pid: number; ready: Ready; database: string }>();
  for (const scenario of [...HTTP_SCENARIOS.map((s) => s.id), ...SIGNIN_SCENARIOS.map((s) => s.id)].filter(wanted)) {
    const database = `bench_${scenario.replace(/-/g, "_")}`;
    const url = await pgs.createDatabase(database);
    const { child, ready } = await startServer(scenario, url);
    children.push(child);
    servers.set(scenario, { pid: child.pid!, ready, database });
    console.log(`  started ${scenario} on :${ready.port}`);
  }
  // Warm-up, not measured: JIT, connection pools, caches.
  for (const { id } of HTTP_SCENARIOS.filter((s) => wanted(s.id))) {
    const server = servers.get(id)!;
    spawnSync("wrk", ["-t1", `-c${CONNECTIONS}`, "-d1s", ...Object.entries(server.ready.headers).flatMap(([k, v]) => ["-H", `${k}: ${v}`]), `http://127.0.0.1:${server.ready.port}${server.ready.path}`]);
  }
  for (let round = 0; round < ROUNDS; round++) {
    console.log(`round ${round + 1}/${ROUNDS}`);
    for (const { id } of HTTP_SCENARIOS.filter((s) => wanted(s.id))) {
      const server = servers.get(id)!;
      const sample = await measure(pgs, server.database, server.pid, async (begin) => {
        await begin();
        return wrk(`http://127.0.0.1:${server.ready.port}${server.ready.path}`, server.ready.headers);
      });
      if (round === 0) statementsSeen[id] = (await pgs.statements(server.database)).top;
      if (round === 0) printStatements(id);
      (http[id] ??= []).push(sample);
      console.log(`  ${id.padEnd(34)} ${sample.rate.toFixed(0).padStart(7)} req/s  node ${sample.nodeUs.toFixed(0).padStart(5)} µs  pg ${sample.pgUs.toFixed(0).padStart(5)} µs  ${sample.statements.toFixed(2)} stmt  ${sample.writes.toFixed(2)} writes  p99 ${sample.p99ms?.toFixed(1)} ms${sample.errors ? `  ERRORS ${sample.errors}` : ""}`);
    }
    for (const { id, client } of SIGNIN_SCENARIOS.filter((s) => wanted(s.id))) {
      const server = servers.get(id)!;
      let firstError: string | undefined;
      const sample = await measure(pgs, server.database, server.pid, async (begin) => {
        const r = await signInClient(client, `http://127.0.0.1:${server.ready.port}`, begin);
        firstError = r.firstError;
        return r;
      });
      if (round === 0) statementsSeen[id] = (await pgs.statements(server.database)).top;
      if (round === 0) printStatements(id);
      (signIns[id] ??= []).push(sample);
      console.log(`  ${id.padEnd(34)} ${sample.rate.toFixed(0).padStart(7)} sign-ins/s  node ${sample.nodeUs.toFixed(0)} µs  pg ${sample.pgUs.toFixed(0)} µs  ${sample.statements.toFixed(2)} stmt  ${sample.writes.toFixed(2)} writes  ${sample.commits.toFixed(2)} explicit commits  client ${sample.clientUs?.toFixed(0)} µs${sample.errors ? `  ERRORS ${sample.errors}: ${firstError}` : ""}`);
    }
  }
  for (const child of children) child.kill("SIGKILL");
  if (wanted("cold-start")) {
    // One start first, not counted: the first start of an install writes the PGlite snapshot
    // (examples/express-app/src/embedded.ts), and later ones are what a developer restarts into.
    const first = await coldStart();
    if (first) console.log(`  cold start of the example app, first (not counted): ${first.firstAnswerMs.toFixed(0)} ms`);
    for (let i = 0; first && i < ROUNDS; i++) {
      const sample = (await coldStart())!;
      cold.push(sample);
      console.log(`  cold start of the example app: first answer ${sample.firstAnswerMs.toFixed(0)} ms, listening at ${sample.listeningMs} ms, ${sample.cpuMs.toFixed(0)} ms CPU`);
      try {
        for (const [phase, v] of Object.entries(coldPhases())) (phases[phase] ??= []).push(v);
      } catch (error) {
        console.error((error as Error).message);
      }
    }
  }
  if (wanted("micro")) {
    const url = await pgs.createDatabase("bench_micro");
    try {
      microResults = micro(url);
    } catch (error) {
      console.error((error as Error).message);
    }
  }
} finally {
  cleanup();
}

// ------------------------------------------------------------------------------------------------

const bareRates = http.bare!.map((s) => s.rate);
const rows = HTTP_SCENARIOS.filter((s) => http[s.id]).map(({ id, label }) => {
  const samples = http[id]!;
  const ratios = samples.map((s, i) => s.rate / bareRates[i]!);
  return {
    id,
    label,
    rate: summary(samples.map((s) => s.rate)),
    ratio: summary(ratios),
    nodeUs: median(samples.map((s) => s.nodeUs)),
    pgUs: median(samples.map((s) => s.pgUs)),
    statements: median(samples.map((s) => s.statements)),
    writes: median(samples.map((s) => s.writes)),
    p99ms: median(samples.map((s) => s.p99ms ?? NaN)),
    errors: samples.reduce((n, s) => n + s.errors, 0),
  };
});
const signInRows = SIGNIN_SCENARIOS.filter((s) => signIns[s.id]).map(({ id, label }) => {
  const samples = signIns[id]!;
  return {
    id,
    label,
    rate: summary(samples.map((s) => s.rate)),
    nodeUs: median(samples.map((s) => s.nodeUs)),
    pgUs: median(samples.map((s) => s.pgUs)),
    statements: median(samples.map((s) => s.statements)),
    writes: median(samples.map((s) => s.writes)),
    commits: median(samples.map((s) => s.commits)),
    clientUs: median(samples.map((s) => s.clientUs ?? NaN)),
    errors: samples.reduce((n, s) => n + s.errors, 0),
  };
});
const signInRatio =
  signIns["erebus-wallet"] && signIns["better-auth-siwe"]
    ? summary(signIns["erebus-wallet"].map((s, i) => s.rate / signIns["better-auth-siwe"]![i]!.rate))
    : undefined;

const results = {
  startedAt: startedAt.toISOString(),
  machine: { cores: cpus().length, model: cpus()[0]?.model, loadAverageAtEnd: loadavg() },
  settings: { seconds: SECONDS, rounds: ROUNDS, connections: CONNECTIONS, loadGenerator: "wrk -t1 (HTTP), bench/signin-client.ts (sign-ins)", postgres: "15, fsync=on, synchronous_commit=on" },
  http: rows,
  signIns: signInRows,
  signInRatio,
  coldStart: cold.length
    ? {
        firstAnswerMs: summary(cold.map((c) => c.firstAnswerMs)),
        listeningMs: summary(cold.map((c) => c.listeningMs)),
        cpuMs: summary(cold.map((c) => c.cpuMs)),
        phases: Object.fromEntries(Object.entries(phases).map(([k, v]) => [k, { wallMs: summary(v.map((p) => p.wallMs)), cpuMs: summary(v.map((p) => p.cpuMs)) }])),
      }
    : undefined,
  micro: Object.fromEntries(Object.entries(microResults).map(([k, v]) => [k, summary(v)])),
  statements: statementsSeen,
  raw: { http, signIns, cold, phases, micro: microResults },
};
if (!ONLY) writeFileSync(join(here, "results.json"), `${JSON.stringify(results, null, 2)}\n`);

const f = (n: number, digits = 0) => n.toFixed(digits);
const range = (s: { median: number; min: number; max: number }, digits = 2) => `${f(s.median, digits)} (${f(s.min, digits)}–${f(s.max, digits)})`;
const lines = [
  `Taken ${startedAt.toISOString().slice(0, 16).replace("T", " ")} UTC on ${cpus().length} cores (load average at the end ${loadavg().map((l) => l.toFixed(1)).join(" ")}): medians of ${ROUNDS} rounds, min–max in brackets, ${SECONDS} s per scenario per round, wrk -t1 -c${CONNECTIONS} on 127.0.0.1; PostgreSQL 15 with fsync on.`,
  "",
  "| request | ratio to bare Express | req/s | node CPU µs/req | PostgreSQL CPU µs/req | SQL statements/req | writes/req | p99 ms |",
  "|---|---|---|---|---|---|---|---|",
  ...rows.map((r) => `| ${r.label} | ${r.id === "bare" ? "1" : range(r.ratio)} | ${range(r.rate, 0)} | ${f(r.nodeUs)} | ${f(r.pgUs)} | ${f(r.statements, 2)} | ${f(r.writes, 2)} | ${f(r.p99ms, 1)} |${r.errors ? ` (${r.errors} errors)` : ""}`),
  "",
  `| full wallet sign-in, ${CONNECTIONS} concurrent clients | sign-ins/s | node CPU µs/sign-in | PostgreSQL CPU µs/sign-in | load generator CPU µs/sign-in | SQL statements/sign-in | writes/sign-in | explicit COMMITs/sign-in |`,
  "|---|---|---|---|---|---|---|---|",
  ...signInRows.map((r) => `| ${r.label} | ${range(r.rate, 0)} | ${f(r.nodeUs)} | ${f(r.pgUs)} | ${f(r.clientUs)} | ${f(r.statements, 2)} | ${f(r.writes, 2)} | ${f(r.commits, 2)} |${r.errors ? ` (${r.errors} errors)` : ""}`),
  ...(signInRatio ? ["", `Erebus / better-auth sign-ins per second, same round: **${range(signInRatio)}×**.`] : []),
  ...(Object.keys(microResults).length
    ? ["", "| in-process | per second |", "|---|---|", ...Object.entries(microResults).map(([k, v]) => `| ${k} | ${range(summary(v), 0)} |`)]
    : []),
  ...(cold.length
    ? [
        "",
        `Cold start of the example app (\`node dist/server.js\`, two in-memory PGlite databases, development helpers on; ${cold.length} starts after one not counted): first answer ${range(summary(cold.map((c) => c.firstAnswerMs)), 0)} ms, listening at ${range(summary(cold.map((c) => c.listeningMs)), 0)} ms, ${range(summary(cold.map((c) => c.cpuMs)), 0)} ms of CPU to the first answer.`,
        "",
        "| start-up phase, each alone (bench/cold-phases.ts) | wall ms | CPU ms |",
        "|---|---|---|",
        ...Object.entries(phases).map(([k, v]) => `| ${k} | ${range(summary(v.map((p) => p.wallMs)), 0)} | ${range(summary(v.map((p) => p.cpuMs)), 0)} |`),
      ]
    : []),
];
const table = lines.join("\n");
console.log(`\n${table}\n`);
if (!ONLY) {
  const readmePath = join(here, "README.md");
  const readme = readFileSync(readmePath, "utf8");
  const marked = /<!-- results -->[\s\S]*<!-- \/results -->/;
  if (marked.test(readme)) writeFileSync(readmePath, readme.replace(marked, `<!-- results -->\n${table}\n<!-- /results -->`));
}
