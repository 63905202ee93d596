import { createServer, Socket, type Server } from "node:net";
import type { AddressInfo } from "node:net";
import express from "express";
import { Passport } from "passport";
import { Strategy as BearerStrategy } from "passport-http-bearer";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { createAuth, postgresDatabase, silentLogger, type Database, type ErebusAuth, type UserReference } from "@erebus/core";
import { engines, listen, type Running } from "@erebus/core/testing";
import { ErebusStrategy } from "./index.js";

const ORIGIN = "http://app.test";

/** An Express 5 app on passport 0.7 with ErebusStrategy next to another strategy, as an app that already lives on Passport has it. */
async function passportApp(auth: ErebusAuth): Promise<Running> {
  const passport = new Passport();
  passport.use("erebus", new ErebusStrategy(auth));
  // The app's other strategy: static service tokens.
  passport.use("token", new BearerStrategy((token, done) => (token === "legacy-token-of-bob" ? done(null, { legacy: "bob" }) : done(null, false))));
  const app = express();
  app.use("/auth", auth.router);
  app.use(passport.initialize());
  app.get("/api/me", passport.authenticate("erebus", { session: false }), (req, res) => res.json({ user: req.user, via: req.auth?.via }));
  app.post("/api/action", passport.authenticate("erebus", { session: false }), (_req, res) => res.json({ done: true }));
  app.get("/api/chain", passport.authenticate(["erebus", "token"], { session: false }), (req, res) => res.json({ user: req.user }));
  // A custom callback: what Passport hands the app when the strategy fails.
  app.get("/api/why", (req, res, next) =>
    passport.authenticate("erebus", { session: false }, (err: unknown, user: unknown, challenge: unknown, status: unknown) => {
      if (err) return next(err);
      res.json({ user: user || null, challenge, status, code: req.authError?.code ?? null });
    })(req, res, next),
  );
  app.use(auth.errorHandler);
  return listen(app);
}

for (const engine of engines({ postgresUrl: inject("postgresUrl") })) {
  describe(`ErebusStrategy with passport 0.7 in Express 5 on ${engine.name}`, () => {
    let db: Database;
    let auth: ErebusAuth;
    let server: Running;
    let skew = 0;
    let user: UserReference;

    beforeAll(async () => {
      db = await engine.create();
      auth = createAuth({ database: db, baseURL: ORIGIN, migrate: true, logger: silentLogger, session: { cacheTtl: 0 }, clock: () => new Date(Date.now() + skew) });
      await auth.ready;
      server = await passportApp(auth);
      user = await auth.api.registerSystemAgent({ agentType: "passport-test", capabilities: [] });
    });
    afterAll(async () => {
      // auth.close(): the session cache first, then the database (closing only the database can leave the cache's LISTEN holding the pool).
      await server?.close();
      await (auth ? auth.close() : db?.close());
    });

    const get = (path: string, headers: Record<string, string> = {}) => fetch(`${server.url}${path}`, { headers });

    it("a session cookie and a Bearer session each put the user_references row on req.user (and req.auth)", async () => {
      const { token } = await auth.api.createSession(user.id);
      for (const headers of [{ cookie: `erebus_session=${token}` }, { authorization: `Bearer ${token}` }]) {
        const res = await get("/api/me", headers);
        expect(res.status).toBe(200);
        const body = (await res.json()) as { user: UserReference; via: string };
        expect(body.via).toBe("session");
        expect(body.user).toMatchObject({ id: user.id, network: user.network, source_identifier: user.source_identifier, is_active: true });
      }
    });

    it("no credential: fail with a Bearer challenge, 401", async () => {
      const res = await get("/api/me");
      expect(res.status).toBe(401);
      expect(res.headers.get("www-authenticate")).toBe('Bearer realm="erebus"');
      const why = (await (await get("/api/why")).json()) as { user: unknown; challenge: unknown; status: unknown };
      expect(why).toMatchObject({ user: null, challenge: 'Bearer realm="erebus"', status: 401 });
    });

    it('a chain ["erebus", "token"] falls through to the next strategy, and Erebus wins when it has a session', async () => {
      const legacy = await get("/api/chain", { authorization: "Bearer legacy-token-of-bob" });
      expect(legacy.status).toBe(200);
      expect(await legacy.json()).toEqual({ user: { legacy: "bob" } });
      const { token } = await auth.api.createSession(user.id);
      const ours = await get("/api/chain", { cookie: `erebus_session=${token}` });
      expect(((await ours.json()) as { user: UserReference }).user.id).toBe(user.id);
      const none = await get("/api/chain");
      expect(none.status).toBe(401);
      expect(none.headers.get("www-authenticate")).toContain('Bearer realm="erebus"');
    });

    it("a revoked or expired session fails 401 with its code (ERR_SESSION_INVALID) in the challenge, cookie or Bearer", async () => {
      const revoked = await auth.api.createSession(user.id);
      await auth.api.revokeSession(revoked.token);
      for (const headers of [{ cookie: `erebus_session=${revoked.token}` }, { authorization: `Bearer ${revoked.token}` }]) {
        const res = await get("/api/me", headers);
        expect(res.status).toBe(401);
        expect(res.headers.get("www-authenticate")).toBe('Bearer realm="erebus", error="invalid_token", error_description="ERR_SESSION_INVALID"');
      }
      const expiring = await auth.api.createSession(user.id);
      skew = 8 * 86_400_000;
      try {
        const why = (await (await get("/api/why", { authorization: `Bearer ${expiring.token}` })).json()) as { status: number; code: string };
        expect(why).toMatchObject({ status: 401, code: "ERR_SESSION_INVALID" });
      } finally {
        skew = 0;
      }
    });

    it("a deactivated user fails with 403 ERR_USER_DEACTIVATED (deactivated in SQL); through the API its sessions are revoked (401)", async () => {
      const dora = await auth.api.registerSystemAgent({ agentType: "passport-dora", capabilities: [] });
      const { token } = await auth.api.createSession(dora.id);
      expect((await get("/api/me", { authorization: `Bearer ${token}` })).status).toBe(200);
      // By hand in SQL: the session stays, the user is soft-deleted.
      await db.query("UPDATE user_references SET is_active = false WHERE id = $1", [dora.id]);
      for (const headers of [{ authorization: `Bearer ${token}` }, { cookie: `erebus_session=${token}` }]) {
        expect((await get("/api/me", headers)).status).toBe(403);
        const why = (await (await get("/api/why", headers)).json()) as { status: number; challenge: string; code: string };
        expect(why).toMatchObject({ status: 403, code: "ERR_USER_DEACTIVATED" });
        expect(why.challenge).toContain('error_description="ERR_USER_DEACTIVATED"');
      }
      const eve = await auth.api.registerSystemAgent({ agentType: "passport-eve", capabilities: [] });
      const eveSession = await auth.api.createSession(eve.id);
      await auth.api.deactivateUser(eve.id);
      const why = (await (await get("/api/why", { authorization: `Bearer ${eveSession.token}` })).json()) as { status: number; code: string };
      expect(why).toMatchObject({ status: 401, code: "ERR_SESSION_INVALID" });
    });

    it("attack: a cross-site POST riding the session cookie fails (403, core's CSRF check), the same request from the app's origin passes", async () => {
      const { token } = await auth.api.createSession(user.id);
      const send = (headers: Record<string, string>) => fetch(`${server.url}/api/action`, { method: "POST", headers: { cookie: `erebus_session=${token}`, ...headers } });
      expect((await send({ origin: "https://evil.example" })).status).toBe(403);
      expect((await send({ "sec-fetch-site": "cross-site" })).status).toBe(403);
      expect((await send({ origin: ORIGIN })).status).toBe(200);
      // A Bearer token is not sent by browsers on their own: no origin check needed.
      expect((await fetch(`${server.url}/api/action`, { method: "POST", headers: { authorization: `Bearer ${token}`, origin: "https://evil.example" } })).status).toBe(200);
    });

    it("the strategy keeps no per-request state on the shared instance (Passport runs Object.create on it)", async () => {
      const strategy = new ErebusStrategy(auth);
      const keys = Object.keys(strategy).sort();
      const { token } = await auth.api.createSession(user.id);
      await Promise.all([get("/api/me", { authorization: `Bearer ${token}` }), get("/api/me")]);
      expect(Object.keys(strategy).sort()).toEqual(keys);
      expect(() => new ErebusStrategy({} as never)).toThrow(TypeError);
    });
  });
}

/** A TCP proxy in front of PostgreSQL that can be cut: the database going away, as the app sees it. */
async function cuttableProxy(target: URL) {
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    const upstream = new Socket();
    upstream.connect(Number(target.port || 5432), target.hostname);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on("error", () => undefined);
      s.on("close", () => sockets.delete(s));
    }
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  const port = (server.address() as AddressInfo).port;
  const url = new URL(target.href);
  url.hostname = "127.0.0.1";
  url.port = String(port);
  return {
    url: url.href,
    cut: () => new Promise<void>((r) => {
      server.close(() => r());
      for (const s of sockets) s.destroy();
    }),
  };
}

const server = engines({ postgresUrl: inject("postgresUrl") }).find((e) => e.name === "postgres");
// PGlite runs inside the process: it cannot become unreachable. CI=true always has the server.
describe.skipIf(!server)("ErebusStrategy when the database is down (PostgreSQL behind a TCP proxy that is cut)", () => {
  let db: Database & { url?: string };
  let app: Running;
  let auth: ErebusAuth;
  let proxy: Awaited<ReturnType<typeof cuttableProxy>>;
  let pool: pg.Pool;

  beforeAll(async () => {
    db = await server!.create();
    proxy = await cuttableProxy(new URL(db.url!));
    pool = new pg.Pool({ connectionString: proxy.url, connectionTimeoutMillis: 2000 });
    pool.on("error", () => undefined);
    auth = createAuth({ database: postgresDatabase(pool), baseURL: ORIGIN, migrate: true, logger: silentLogger, session: { cacheTtl: 0 } });
    await auth.ready;
    app = await passportApp(auth);
  });
  afterAll(async () => {
    await app?.close();
    await (auth ? auth.close().catch(() => undefined) : pool?.end().catch(() => undefined));
    await db?.close();
  });

  it("error → 503 problem+json ERR_DATABASE_UNAVAILABLE through the app's error handler, not a 401", async () => {
    const user = await auth.api.registerSystemAgent({ agentType: "down", capabilities: [] });
    const { token } = await auth.api.createSession(user.id);
    expect((await fetch(`${app.url}/api/me`, { headers: { authorization: `Bearer ${token}` } })).status).toBe(200);
    await proxy.cut();
    for (const headers of [{ authorization: `Bearer ${token}` }, { cookie: `erebus_session=${token}` }]) {
      const res = await fetch(`${app.url}/api/me`, { headers });
      expect(res.status).toBe(503);
      expect(res.headers.get("content-type")).toMatch(/^application\/problem\+json/);
      expect(((await res.json()) as { code: string }).code).toBe("ERR_DATABASE_UNAVAILABLE");
    }
    // The chain does not fall through to the next strategy when Erebus cannot answer.
    const chain = await fetch(`${app.url}/api/chain`, { headers: { authorization: `Bearer ${token}` } });
    expect(chain.status).toBe(503);
  });
});
