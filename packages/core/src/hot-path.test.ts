import type { Request, Response } from "express";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { engines } from "../../../test/engines.js";
import { createAuth, silentLogger, type Database, type ErebusAuth } from "./index.js";

/** Just what core's middleware reads of a request and writes to a response. */
function request(headers: Record<string, string>): Request {
  return { headers, method: "GET", originalUrl: "/api/data", url: "/api/data", get: (name: string) => headers[name.toLowerCase()] } as unknown as Request;
}
const response = () => ({ headersSent: false, append() {}, setHeader() {}, getHeader() {}, status() { return this; }, type() { return this; }, send() { return this; }, json() { return this; }, end() {} }) as unknown as Response;

/**
 * Runs a guard and says whether it called `next` before returning, with no await in between (a
 * cached credential needs no trip through the microtask queue), or only later.
 */
async function run(handler: ReturnType<ErebusAuth["requireUser"]>, req: Request): Promise<{ sync: boolean; passed: boolean }> {
  let passed = false;
  const pending = handler(req, response(), () => (passed = true)) as unknown;
  const sync = passed;
  await pending;
  await new Promise((resolve) => setImmediate(resolve));
  return { sync, passed };
}

for (const engine of engines()) {
  describe(`the hot path on ${engine.name}: a cached session is checked with no await`, () => {
    let db: Database;
    let auth: ErebusAuth;

    beforeAll(async () => {
      db = await engine.create();
      auth = createAuth({ database: db, baseURL: "http://app.test", providers: [], migrate: true, logger: silentLogger, production: false });
      await auth.ready;
    });
    afterAll(async () => {
      await auth?.close();
    });

    for (const [kind, headers] of [
      ["bearer", (t: string) => ({ authorization: `Bearer ${t}` })],
      ["cookie", (t: string) => ({ cookie: `erebus_session=${t}` })],
    ] as const) {
      it(`${kind}: a new session's first check queries (async); once cached, a check passes before the guard returns`, async () => {
        const user = await auth.api.registerSystemAgent({ agentId: `hot-${kind}`, agentType: "bench", capabilities: [] });
        const { token } = await auth.api.createSession(user.id);
        const guard = auth.requireUser();
        expect(await run(guard, request(headers(token)))).toEqual({ sync: false, passed: true });
        // The cache keeps an entry once its LISTEN is up (started by the first look-up).
        let tries = 0;
        while (!(await run(guard, request(headers(token)))).sync && tries < 50) tries++;
        const req = request(headers(token));
        expect(await run(guard, req)).toEqual({ sync: true, passed: true });
        expect((req as { auth?: { via: string } }).auth?.via).toBe("session");
      });
    }

    it("a revoked session is looked up again (the cache dropped it) and refused", async () => {
      const user = await auth.api.registerSystemAgent({ agentId: "hot-2", agentType: "bench", capabilities: [] });
      const { token: own } = await auth.api.createSession(user.id);
      const guard = auth.requireUser();
      let tries = 0;
      while (!(await run(guard, request({ authorization: `Bearer ${own}` }))).sync && tries < 50) tries++;
      expect((await run(guard, request({ authorization: `Bearer ${own}` }))).sync).toBe(true);
      await auth.api.revokeSession(own);
      expect(await run(guard, request({ authorization: `Bearer ${own}` }))).toEqual({ sync: false, passed: false });
    });
  });
}
