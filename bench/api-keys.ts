// API-key verification benchmark: the same route, with and without a key, in one run.
//   npm run bench
import express from "express";
import { createAuth, silentLogger, type ErebusAuth } from "@erebus/core";
import { testProvider } from "@erebus/core/testing";
import { apiKeyProvider } from "@erebus/provider-apikey";
import { listen } from "../test/http.js";

async function concurrent(label: string, total: number, concurrency: number, fn: () => Promise<void>): Promise<number> {
  for (let i = 0; i < 300; i++) await fn(); // warm-up
  let left = total;
  const start = process.hrtime.bigint();
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (left-- > 0) await fn();
  }));
  const rate = total / (Number(process.hrtime.bigint() - start) / 1e9);
  console.log(`  ${label.padEnd(60)} ${rate.toFixed(0).padStart(8)} /s`);
  return rate;
}

async function setup(cacheTtl: number) {
  const provider = apiKeyProvider({ pepper: "bench-pepper-0123456789abcdef0123456789", cacheTtl });
  const auth: ErebusAuth = createAuth({ database: "pglite://memory", baseURL: "http://app.test", providers: [testProvider(), provider], migrate: true, logger: silentLogger });
  await auth.ready;
  const app = express();
  app.use(auth.middleware);
  // One route for both: it answers whoever is (or is not) calling.
  app.get("/api/data", (req, res) => res.json({ ok: true, caller: req.auth?.user.id ?? null }));
  const server = await listen(app);
  const { key } = await provider.keys(auth).create({ name: "bench", scopes: ["read"], ownerId: null, createdBy: "bench" });
  return { server, key, close: async () => { await server.close(); await auth.close(); } };
}

console.log("API keys over HTTP on 127.0.0.1 (embedded PGlite, 8 concurrent clients, 3000 requests per line)");
const ratios: [string, number][] = [];
for (const [label, cacheTtl] of [["look-up cached 10 s", 10], ["cacheTtl 0: one SELECT each", 0]] as const) {
  const app = await setup(cacheTtl);
  const get = (headers: Record<string, string>) => async () => {
    const res = await fetch(`${app.server.url}/api/data`, { headers });
    if (res.status !== 200) throw new Error(`status ${res.status}`);
    await res.text();
  };
  // Baseline before and after, so warm-up and drift do not favour either side.
  const before = await concurrent("GET /api/data, no credential (baseline)", 3000, 8, get({}));
  const keyed = await concurrent(`GET /api/data, X-API-Key (${label})`, 3000, 8, get({ "x-api-key": app.key }));
  const after = await concurrent("GET /api/data, no credential (baseline again)", 3000, 8, get({}));
  ratios.push([`key-authenticated / unauthenticated (${label})`, keyed / ((before + after) / 2)]);
  await app.close();
}

console.log("\nRatios (same run):");
for (const [label, ratio] of ratios) console.log(`  ${label.padEnd(62)} ${ratio.toFixed(2)}×`);
