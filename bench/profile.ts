// Profiles one request kind through Erebus's middleware: starts the app in this process under the
// V8 sampling profiler (node:inspector), drives it with wrk for a few seconds, and prints where the
// time went (self time by function, and by where the code lives: Erebus, Express, Node, PostgreSQL driver).
//   npm run build && node --import tsx bench/profile.ts <bare|apikey|cookie|bearer|wallet> [seconds]
// (@erebus/* from dist, as users run them; with --conditions=erebus-source, from the sources through tsx)
// Writes bench/profiles/<kind>.cpuprofile (open it in Chrome DevTools or speedscope).
import { mkdirSync, writeFileSync } from "node:fs";
import { Session } from "node:inspector/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import express from "express";
import { createAuth, silentLogger } from "@erebus/core";
import { apiKeyProvider } from "@erebus/provider-apikey";
import { walletProvider } from "@erebus/provider-wallet";
import { startBenchPostgres } from "./pg.js";

const here = dirname(fileURLToPath(import.meta.url));
const kind = process.argv[2] ?? "apikey";
const seconds = Number(process.argv[3] ?? 5);

const pgs = await startBenchPostgres();
try {
  const url = await pgs.createDatabase("profile");
  const keys = apiKeyProvider({ pepper: "bench-pepper-0123456789abcdef0123456789" });
  const wallet = walletProvider({ rateLimit: { nonce: 1_000_000, verify: 1_000_000 } });
  const auth = createAuth({ database: url, baseURL: "http://127.0.0.1", providers: kind === "wallet" ? [wallet] : [keys], migrate: true, logger: silentLogger, production: false });
  await auth.ready;
  const app = express();
  app.disable("x-powered-by");
  let headers: Record<string, string> = {};
  if (kind === "wallet") {
    app.use("/auth", auth.router);
    app.get("/api/data", (_req, res) => res.json({ ok: true }));
  } else if (kind === "bare") {
    app.get("/api/data", (_req, res) => res.json({ ok: true, user: "nobody" }));
  } else {
    app.get("/api/data", auth.requireUser(), (req, res) => res.json({ ok: true, user: req.auth!.user.id }));
    if (kind === "apikey") {
      headers = { "x-api-key": (await keys.keys(auth).create({ name: "p", scopes: ["read"], ownerId: null, createdBy: "p" })).key };
    } else {
      const user = await auth.api.registerSystemAgent({ agentId: "p", agentType: "p", capabilities: [] });
      const { token } = await auth.api.createSession(user.id);
      headers = kind === "cookie" ? { cookie: `erebus_session=${token}` } : { authorization: `Bearer ${token}` };
    }
  }
  const server = app.listen(0, "127.0.0.1");
  await new Promise<void>((r) => server.once("listening", r));
  const target = `http://127.0.0.1:${(server.address() as { port: number }).port}/api/data`;
  const check = await fetch(target, { headers });
  if (check.status !== 200) throw new Error(`probe ${check.status}`);
  const wrkArgs = (d: number) => ["-t1", "-c10", `-d${d}s`, ...Object.entries(headers).flatMap(([k, v]) => ["-H", `${k}: ${v}`]), target];
  // wrk runs as a child; spawnSync would block this process (the server), so run it async.
  const { execFile } = await import("node:child_process");
  // Sign-ins: bench/signin-client.ts (its warm-up, then SIGUSR2 from here); the output mimics wrk's count line.
  const runSignIns = (d: number) =>
    new Promise<string>((resolve) => {
      const child = execFile(process.execPath, ["--import", "tsx", join(here, "signin-client.ts"), "erebus", target.replace("/api/data", ""), String(d), "10"], (_e, stdout) => {
        const r = JSON.parse(stdout.trim().split("\n").pop()!) as { count: number };
        resolve(`${r.count} requests in ${d}s`);
      });
      child.stdout!.on("data", (c: Buffer) => String(c).includes("WARM") && child.kill("SIGUSR2"));
    });
  const runWrk = (d: number) =>
    kind === "wallet" ? runSignIns(d) : new Promise<string>((resolve) => execFile("wrk", wrkArgs(d), (_e, stdout) => resolve(stdout)));
  await runWrk(2); // warm-up
  const inspector = new Session();
  inspector.connect();
  await inspector.post("Profiler.enable");
  await inspector.post("Profiler.setSamplingInterval", { interval: 100 });
  await inspector.post("Profiler.start");
  const cpu0 = process.cpuUsage();
  const out = await runWrk(seconds);
  const cpu = process.cpuUsage(cpu0);
  const { profile } = await inspector.post("Profiler.stop");
  const requests = Number(/(\d+) requests in/.exec(out)?.[1]);
  mkdirSync(join(here, "profiles"), { recursive: true });
  writeFileSync(join(here, "profiles", `${kind}.cpuprofile`), JSON.stringify(profile));

  // Self time per function and per place.
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map<number, number>();
  const dt = profile.timeDeltas ?? [];
  profile.samples?.forEach((id, i) => self.set(id, (self.get(id) ?? 0) + (dt[i] ?? 0)));
  const total = [...self.values()].reduce((a, b) => a + b, 0);
  const fn = new Map<string, number>();
  const place = new Map<string, number>();
  for (const [id, us] of self) {
    const node = byId.get(id)!;
    const { functionName, url: file, lineNumber } = node.callFrame;
    const where = file.includes("/packages/") ? `erebus ${file.split("/packages/")[1]!.split("/")[0]}` : file.includes("node_modules/") ? file.split("node_modules/").pop()!.split("/").slice(0, file.split("node_modules/").pop()!.startsWith("@") ? 2 : 1).join("/") : file.startsWith("node:") ? "node internals" : functionName === "(idle)" ? "(idle)" : functionName === "(garbage collector)" ? "(gc)" : functionName === "(program)" ? "(program)" : file || "(native)";
    place.set(where, (place.get(where) ?? 0) + us);
    const key = `${functionName || "(anonymous)"} ${file.split("/").slice(-2).join("/")}:${lineNumber + 1}`;
    fn.set(key, (fn.get(key) ?? 0) + us);
  }
  const busy = total - (place.get("(idle)") ?? 0);
  console.log(`${kind}: ${requests} requests in ${seconds} s (${(requests / seconds).toFixed(0)}/s); process CPU ${((cpu.user + cpu.system) / requests).toFixed(0)} µs/request; sampled busy time ${(busy / requests).toFixed(0)} µs/request`);
  console.log("\nself time by place (µs per request):");
  for (const [k, us] of [...place].sort((a, b) => b[1] - a[1]).slice(0, 14)) if (k !== "(idle)") console.log(`  ${(us / requests).toFixed(1).padStart(7)}  ${k}`);
  console.log("\nself time by function (µs per request):");
  for (const [k, us] of [...fn].sort((a, b) => b[1] - a[1]).slice(0, 30)) if (!k.startsWith("(idle)")) console.log(`  ${(us / requests).toFixed(1).padStart(7)}  ${k}`);
  // Inclusive time of Erebus's own functions: everything under them, the awaits' continuations excepted.
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const inclusive = new Map<string, number>();
  profile.samples?.forEach((id, i) => {
    const seen = new Set<string>();
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
      const { functionName, url: file, lineNumber } = byId.get(at)!.callFrame;
      if (!file.includes("/packages/")) continue;
      const key = `${functionName || "(anonymous)"} ${file.split("/packages/")[1]}:${lineNumber + 1}`;
      if (seen.has(key)) continue;
      seen.add(key);
      inclusive.set(key, (inclusive.get(key) ?? 0) + (dt[i] ?? 0));
    }
  });
  console.log("\nErebus functions, inclusive time (µs per request):");
  for (const [k, us] of [...inclusive].sort((a, b) => b[1] - a[1]).slice(0, 25)) console.log(`  ${(us / requests).toFixed(1).padStart(7)}  ${k}`);
  server.close();
  server.closeAllConnections();
  await auth.close();
} finally {
  pgs.stop();
}
