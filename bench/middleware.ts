// Erebus's middleware alone, without HTTP: `requireUser()` called on a request object for each
// credential kind, µs per call (median of 5 batches). What the HTTP table cannot isolate: the cost of
// Erebus itself per request, which bare Express does not pay.
//   node --conditions=erebus-source --import tsx bench/middleware.ts [pglite://memory | postgres://…]
import type { NextFunction, Request, Response } from "express";
import { createAuth, silentLogger } from "@erebus/core";
import { apiKeyProvider } from "@erebus/provider-apikey";

const database = process.argv[2] ?? "pglite://memory";
const keys = apiKeyProvider({ pepper: "bench-pepper-0123456789abcdef0123456789" });
const auth = createAuth({ database, baseURL: "http://127.0.0.1", providers: [keys], migrate: true, logger: silentLogger, production: false });
await auth.ready;
const user = await auth.api.registerSystemAgent({ agentId: "mw", agentType: "mw", capabilities: [] });
const { token } = await auth.api.createSession(user.id);
const { key } = await keys.keys(auth).create({ name: "mw", scopes: ["read"], ownerId: null, createdBy: "mw" });
const guard = auth.requireUser();

function request(headers: Record<string, string>): Request {
  return { headers, method: "GET", ip: "127.0.0.1", originalUrl: "/api/data", url: "/api/data", path: "/api/data" } as unknown as Request;
}
const res = { append: () => res, setHeader: () => res, status: () => res, type: () => res, send: () => res, headersSent: false } as unknown as Response;

async function perCall(headers: Record<string, string>): Promise<number> {
  const call = () =>
    new Promise<void>((resolve, reject) => {
      const req = request(headers);
      void guard(req, res, ((error?: unknown) => (error ? reject(error) : req.auth ? resolve() : reject(new Error("not authenticated")))) as NextFunction);
    });
  for (let i = 0; i < 2000; i++) await call(); // warm-up (JIT, caches)
  const batches: number[] = [];
  for (let b = 0; b < 5; b++) {
    const n = 5000;
    const start = process.hrtime.bigint();
    for (let i = 0; i < n; i++) await call();
    batches.push(Number(process.hrtime.bigint() - start) / 1000 / n);
  }
  return batches.sort((x, y) => x - y)[2]!;
}

const results = {
  "session cookie": await perCall({ cookie: `erebus_session=${token}` }),
  "bearer session": await perCall({ authorization: `Bearer ${token}` }),
  "API key (cached)": await perCall({ "x-api-key": key }),
};
for (const [label, us] of Object.entries(results)) console.log(`  ${label.padEnd(20)} ${us.toFixed(1).padStart(7)} µs per requireUser() call`);
await auth.close();
