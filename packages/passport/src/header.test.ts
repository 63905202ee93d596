import { Strategy as BearerStrategy } from "passport-http-bearer";
// @ts-expect-error -- passport-headerapikey's types are not installed (tests are not type-checked by tsc -b)
import { HeaderAPIKeyStrategy } from "passport-headerapikey";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import * as z from "zod";
import { defineSourceType, silentLogger, type Database, type ErebusAuth } from "@erebus/core";
import { engines, startAuthServer, tableRowCounts, type Running } from "@erebus/core/testing";
import { passportProvider } from "./index.js";

const ORIGIN = "http://app.test";
const serviceAccount = defineSourceType("service_account", { service: z.string() });
const toIdentity = (user: unknown) => {
  const u = user as { service: string };
  return { network: "service", sourceIdentifier: u.service, userType: "agent" as const, sourceType: { type: "service_account", service: u.service } };
};

for (const engine of engines({ postgresUrl: inject("postgresUrl") })) {
  describe(`header strategies (passport-http-bearer, passport-headerapikey) as authenticators on ${engine.name}`, () => {
    let db: Database;
    let auth: ErebusAuth;
    let server: Running;
    let bearerCalls = 0;
    let apiKeyCalls = 0;
    const tokens = new Map([["tok-reporting-0123456789", { service: "reporting", scope: "read" }]]);
    const apiKeys = new Map([["key-billing", { service: "billing" }], ["key-dora", { service: "dora" }]]);

    beforeAll(async () => {
      db = await engine.create();
      const bearer = new BearerStrategy((token, done) => {
        bearerCalls++;
        const entry = tokens.get(token);
        return entry ? done(null, { service: entry.service }, { scope: entry.scope }) : done(null, false);
      });
      const apiKey = new HeaderAPIKeyStrategy({ header: "X-Service-Key", prefix: "" }, false, (key: string, done: (e: unknown, u?: unknown) => void) => {
        apiKeyCalls++;
        const entry = apiKeys.get(key);
        return entry ? done(null, entry) : done(null, false);
      });
      ({ auth, server } = await startAuthServer(
        {
          database: db,
          baseURL: ORIGIN,
          logger: silentLogger,
          rateLimit: { enabled: false },
          session: { cacheTtl: 0 },
          providers: [
            passportProvider({ id: "bearer", strategy: bearer, toIdentity, sourceTypes: [serviceAccount] }),
            passportProvider({ id: "servicekey", strategy: apiKey, toIdentity, emits: ["service_account"] }),
          ],
        },
        (app, a) => {
          app.get("/api/me", a.requireUser(), (req, res) => res.json({ user: req.auth!.user, via: req.auth!.via, scopes: req.auth!.scopes }));
          app.get("/api/read", a.requireScope("read"), (_req, res) => res.json({ ok: true }));
        },
      ));
    });
    afterAll(async () => {
      // auth.close(): the session cache first, then the database (closing only the database can leave the cache's LISTEN holding the pool).
      await server?.close();
      await (auth ? auth.close() : db?.close());
    });

    const me = (headers: Record<string, string>) => fetch(`${server.url}/api/me`, { headers });
    const code = async (res: Response) => ((await res.json()) as { code: string }).code;

    it("passport-http-bearer: a good token is req.auth (via passport:bearer, the strategy's scope); its row is made once", async () => {
      const res = await me({ authorization: "Bearer tok-reporting-0123456789" });
      expect(res.status).toBe(200);
      expect(await res.json()).toMatchObject({ via: "passport:bearer", scopes: ["read"], user: { network: "service", source_identifier: "reporting", user_type: "agent" } });
      const before = await tableRowCounts(db, { ignore: ["erebus_rate_limits"] });
      expect((await fetch(`${server.url}/api/read`, { headers: { authorization: "Bearer tok-reporting-0123456789" } })).status).toBe(200);
      // A known credential reads its row: no write per request.
      expect(await tableRowCounts(db, { ignore: ["erebus_rate_limits"] })).toEqual(before);
    });

    it("no credential: the strategies are not run, and the request goes on unauthenticated (401 from the guard)", async () => {
      const calls = [bearerCalls, apiKeyCalls];
      const res = await me({});
      expect(res.status).toBe(401);
      expect(await code(res)).toBe("ERR_UNAUTHENTICATED");
      // Another scheme in Authorization is not the bearer strategy's either.
      expect(await code(await me({ authorization: "Basic YTpi" }))).toBe("ERR_UNAUTHENTICATED");
      expect([bearerCalls, apiKeyCalls]).toEqual(calls);
    });

    it("fall-through: an Erebus Bearer session the bearer strategy does not know reaches core's session check and works", async () => {
      const user = await auth.api.registerSystemAgent({ agentType: "cli", capabilities: [] });
      const { token } = await auth.api.createSession(user.id);
      const res = await me({ authorization: `Bearer ${token}` });
      expect(res.status).toBe(200);
      expect(await res.json()).toMatchObject({ via: "session", user: { id: user.id } });
    });

    it("fall-through: a Bearer token nobody knows is still refused (401 ERR_SESSION_INVALID from core), never anonymous", async () => {
      const res = await me({ authorization: "Bearer not-a-token-anyone-issued" });
      expect(res.status).toBe(401);
      expect(await code(res)).toBe("ERR_SESSION_INVALID");
    });

    it("passport-headerapikey: a good key is req.auth; a bad one is 401 ERR_PASSPORT_CREDENTIALS_INVALID, not a fall-through to the cookie", async () => {
      const ok = await me({ "x-service-key": "key-billing" });
      expect(ok.status).toBe(200);
      expect(await ok.json()).toMatchObject({ via: "passport:servicekey", scopes: [], user: { source_identifier: "billing" } });
      const user = await auth.api.registerSystemAgent({ agentType: "browser", capabilities: [] });
      const { token } = await auth.api.createSession(user.id);
      const bad = await me({ "x-service-key": "key-wrong", cookie: `erebus_session=${token}` });
      expect(bad.status).toBe(401);
      expect(await code(bad)).toBe("ERR_PASSPORT_CREDENTIALS_INVALID");
      // Without the header, the same cookie is the session.
      expect((await me({ cookie: `erebus_session=${token}` })).status).toBe(200);
    });

    it("a deactivated service's key is refused at once (403 ERR_USER_DEACTIVATED)", async () => {
      const first = await me({ "x-service-key": "key-dora" });
      const { user } = (await first.json()) as { user: { id: string } };
      await auth.api.deactivateUser(user.id);
      const res = await me({ "x-service-key": "key-dora" });
      expect(res.status).toBe(403);
      expect(await code(res)).toBe("ERR_USER_DEACTIVATED");
    });

    it("review: a refused credential of another scheme in Authorization (Basic) is 401, never anonymous nor the session cookie (core only checks Bearer)", async () => {
      // A Basic-auth strategy on Authorization: fallThrough is on by default for that header.
      const basic = {
        name: "basic",
        authenticate(this: { success(u: unknown): void; fail(c: string, s: number): void }, req: { headers: Record<string, string> }) {
          const pair = Buffer.from(String(req.headers.authorization).slice(6), "base64").toString();
          return pair === "ops:s3cret" ? this.success({ service: "ops" }) : this.fail('Basic realm="ops"', 401);
        },
      };
      const { server: basicServer } = await startAuthServer(
        {
          database: db,
          baseURL: ORIGIN,
          logger: silentLogger,
          rateLimit: { enabled: false },
          session: { cacheTtl: 0 },
          providers: [passportProvider({ id: "basic", kind: "header", strategy: basic, header: "authorization", scheme: "Basic", toIdentity, sourceTypes: [serviceAccount] })],
        },
        (app, a) => {
          app.get("/api/me", a.requireUser(), (req, res) => res.json({ user: req.auth!.user, via: req.auth!.via }));
          app.get("/api/open", a.middleware, (req, res) => res.json({ auth: req.auth ?? null }));
        },
      );
      try {
        const get = (path: string, headers: Record<string, string>) => fetch(`${basicServer.url}${path}`, { headers });
        const good = await get("/api/me", { authorization: `Basic ${Buffer.from("ops:s3cret").toString("base64")}` });
        expect(good.status).toBe(200);
        const wrong = `Basic ${Buffer.from("ops:wrong").toString("base64")}`;
        const anonymous = await get("/api/open", { authorization: wrong });
        expect(anonymous.status).toBe(401);
        expect(await code(anonymous)).toBe("ERR_PASSPORT_CREDENTIALS_INVALID");
        const user = await auth.api.registerSystemAgent({ agentType: "browser", capabilities: [] });
        const { token } = await auth.api.createSession(user.id);
        const withCookie = await get("/api/me", { authorization: wrong, cookie: `erebus_session=${token}` });
        expect(withCookie.status).toBe(401);
        expect(await code(withCookie)).toBe("ERR_PASSPORT_CREDENTIALS_INVALID");
      } finally {
        await basicServer.close();
      }
    });
  });
}
