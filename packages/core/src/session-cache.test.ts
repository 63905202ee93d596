import express from "express";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { engines, serverEngine } from "../../../test/engines.js";
import { listen, type Running } from "../../../test/http.js";
import { createAuth, postgresDatabase, silentLogger, type Database, type ErebusAuth } from "./index.js";

const ORIGIN = "http://app.test";
const HOUR = 3600;

/** The database with every statement counted: a cached check must cost none. */
function counting(db: Database): Database & { statements: () => number } {
  let n = 0;
  return {
    ...db,
    engine: db.engine,
    query: (sql, params) => {
      n++;
      return db.query(sql, params);
    },
    exec: (sql) => db.exec(sql),
    transaction: (fn) => db.transaction(fn),
    listen: (channel, onNotify, onLost) => db.listen(channel, onNotify, onLost),
    close: () => db.close(),
    statements: () => n,
  };
}

/** Waits (a few ms at a time, at most `ms`) until `fn` is true. */
async function eventually(fn: () => Promise<boolean>, ms = 2000): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await fn()) return true;
    await new Promise((r) => setTimeout(r, 2));
  }
  return fn();
}

for (const engine of engines()) {
  describe(`session cache on ${engine.name}`, () => {
    let raw: Database;
    let db: ReturnType<typeof counting>;
    let auth: ErebusAuth;
    let server: Running;
    let now = new Date("2026-01-01T00:00:00Z");
    const advance = (seconds: number) => (now = new Date(now.getTime() + seconds * 1000));

    beforeAll(async () => {
      raw = await engine.create();
      db = counting(raw);
      auth = createAuth({
        database: db,
        baseURL: ORIGIN,
        providers: [],
        migrate: true,
        logger: silentLogger,
        clock: () => now,
        production: false,
        session: { maxAge: 24 * HOUR, updateAge: HOUR, absoluteMaxAge: 72 * HOUR },
      });
      await auth.ready;
      const app = express();
      app.use("/auth", auth.router);
      app.get("/api/me", auth.requireUser(), (req, res) => res.json({ id: req.auth!.user.id, email: req.auth!.user.email }));
      server = await listen(app);
      // The cache serves only once its LISTEN is up.
      await eventually(async () => (await warm()).cached);
    });
    afterAll(async () => {
      await server?.close();
      await auth?.close(); // closes the database too (the engine's, which createAuth was given to own)
    });

    let counter = 0;
    async function newSession() {
      const user = await auth.api.registerSystemAgent({ agentId: `agent-${++counter}`, agentType: "test", capabilities: [] });
      const { token, session } = await auth.api.createSession(user.id);
      return { user, token, session };
    }
    const me = (token: string) => fetch(`${server.url}/api/me`, { headers: { cookie: `erebus_session=${token}` } });
    const bearerMe = (token: string) => fetch(`${server.url}/api/me`, { headers: { authorization: `Bearer ${token}` } });
    /** A fresh session, checked twice: whether the second check cost no statement. */
    async function warm() {
      const s = await newSession();
      expect((await auth.api.checkSession(s.token)).ok).toBe(true);
      const before = db.statements();
      expect((await auth.api.checkSession(s.token)).ok).toBe(true);
      return { ...s, cached: db.statements() === before };
    }

    it("serves a repeated session check (cookie and bearer) without a query", async () => {
      const { token, cached } = await warm();
      expect(cached).toBe(true);
      const before = db.statements();
      for (let i = 0; i < 5; i++) {
        expect((await me(token)).status).toBe(200);
        expect((await bearerMe(token)).status).toBe(200);
      }
      expect(db.statements()).toBe(before);
    });

    it("attack: a cached session revoked through the API is refused at once", async () => {
      const { token } = await warm();
      expect(await auth.api.revokeSession(token)).toBe(true);
      expect((await auth.api.checkSession(token)).ok).toBe(false);
      expect((await me(token)).status).toBe(401);
    });

    it("attack: a cached session signed out over HTTP is refused at once", async () => {
      const { token } = await warm();
      const out = await fetch(`${server.url}/auth/sign-out`, { method: "POST", headers: { origin: ORIGIN, authorization: `Bearer ${token}` } });
      expect(out.status).toBe(204);
      expect((await bearerMe(token)).status).toBe(401);
    });

    it("attack: a cached session revoked by SQL by hand (another process) is refused within the NOTIFY delay", async () => {
      const { token, session } = await warm();
      await raw.query("UPDATE erebus_sessions SET revoked_at = now() WHERE id = $1", [session.id]);
      expect(await eventually(async () => !(await auth.api.checkSession(token)).ok, 1000)).toBe(true);
    });

    it("attack: a cached session of a user deactivated through the API is refused at once", async () => {
      const { token, user } = await warm();
      await auth.api.deactivateUser(user.id);
      const check = await auth.api.checkSession(token);
      expect(check.ok).toBe(false);
      expect((await me(token)).status).toBeGreaterThanOrEqual(401);
    });

    it("attack: a cached session of a user deactivated by SQL by hand is refused within the NOTIFY delay", async () => {
      const { token, user } = await warm();
      await raw.query("UPDATE user_references SET is_active = false WHERE id = $1", [user.id]);
      expect(await eventually(async () => !(await auth.api.checkSession(token)).ok, 1000)).toBe(true);
    });

    it("attack: sign out everywhere (revokeAll) drops every cached session of the user at once", async () => {
      const { token, user } = await warm();
      const second = await auth.api.createSession(user.id);
      await auth.api.checkSession(second.token);
      expect(await auth.api.revokeAllSessions(user.id)).toBe(2);
      expect((await auth.api.checkSession(token)).ok).toBe(false);
      expect((await auth.api.checkSession(second.token)).ok).toBe(false);
    });

    it("attack: a cached session past its expiry is refused (the cache checks expiry on every hit)", async () => {
      const { token } = await warm();
      advance(24 * HOUR + 1);
      expect((await auth.api.checkSession(token)).ok).toBe(false);
      expect((await me(token)).status).toBe(401);
    });

    it("a changed user row (email) is not served stale from the cache", async () => {
      const { token, user } = await warm();
      await raw.query("UPDATE user_references SET email = 'new@example.com' WHERE id = $1", [user.id]);
      expect(await eventually(async () => {
        const check = await auth.api.checkSession(token);
        return check.ok && check.user.email === "new@example.com";
      }, 1000)).toBe(true);
    });

    it("the sliding refresh is still at most one write per session per updateAge", async () => {
      const { token, session } = await warm();
      const writes = async () => {
        const { rows } = await raw.query<{ expires_at: Date }>("SELECT expires_at FROM erebus_sessions WHERE id = $1", [session.id]);
        return rows[0]!.expires_at.getTime();
      };
      const first = await writes();
      advance(HOUR - 1);
      for (let i = 0; i < 3; i++) expect((await auth.api.checkSession(token)).ok).toBe(true);
      expect(await writes()).toBe(first);
      advance(2);
      const before = db.statements();
      for (let i = 0; i < 3; i++) expect((await auth.api.checkSession(token)).ok).toBe(true);
      expect(await writes()).toBe(now.getTime() + 24 * HOUR * 1000);
      expect(db.statements() - before).toBe(1); // one UPDATE, then served from the cache again
    });
  });
}

const server = serverEngine();
describe.skipIf(!server)("session cache across two instances on one PostgreSQL server", () => {
  let dbA: Database & { url?: string };
  let dbB: Database;
  let poolB: pg.Pool;
  let a: ErebusAuth;
  let b: ErebusAuth;
  const options = { baseURL: ORIGIN, providers: [], logger: silentLogger, production: false } as const;

  beforeAll(async () => {
    dbA = await server!.create();
    poolB = new pg.Pool({ connectionString: dbA.url!, max: 10 });
    dbB = postgresDatabase(poolB, { ownsConnection: true });
    a = createAuth({ ...options, database: dbA, migrate: true });
    await a.ready;
    b = createAuth({ ...options, database: dbB, migrate: true });
    await b.ready;
  });
  afterAll(async () => {
    // Each closes its cache and its database (both were created to be owned).
    await b?.close();
    await a?.close();
  });

  it("a session revoked on instance A is refused by instance B: p99 over 200 revocations under load < 100 ms", async () => {
    const user = await a.api.registerSystemAgent({ agentId: "two-instances", agentType: "test", capabilities: [] });
    // Load on B: other cached sessions checked continuously by 4 clients while the revocations run.
    const background = await Promise.all(Array.from({ length: 20 }, () => a.api.createSession(user.id)));
    let loadChecks = 0;
    let stop = false;
    const load = Array.from({ length: 4 }, async (_, w) => {
      while (!stop) {
        const check = await b.api.checkSession(background[(loadChecks + w) % background.length]!.token);
        if (!check.ok) throw new Error("a session nobody revoked was refused");
        loadChecks++;
        await new Promise((r) => setImmediate(r));
      }
    });
    const latencies: number[] = [];
    for (let i = 0; i < 200; i++) {
      const { token } = await a.api.createSession(user.id);
      expect((await b.api.checkSession(token)).ok).toBe(true); // B has it cached now
      expect((await a.api.revokeSession(token))).toBe(true);
      const revokedAt = performance.now();
      while ((await b.api.checkSession(token)).ok) {
        if (performance.now() - revokedAt > 5000) throw new Error("B still accepts a session revoked on A after 5 s");
        await new Promise((r) => setImmediate(r));
      }
      latencies.push(performance.now() - revokedAt);
    }
    stop = true;
    await Promise.all(load);
    latencies.sort((x, y) => x - y);
    const p = (q: number) => latencies[Math.min(latencies.length - 1, Math.ceil(q * latencies.length) - 1)]!;
    console.log(
      `cross-instance revocation over ${latencies.length} revocations (${loadChecks} checks of other sessions on B meanwhile): p50 ${p(0.5).toFixed(2)} ms, p99 ${p(0.99).toFixed(2)} ms, max ${p(1).toFixed(2)} ms`,
    );
    expect(p(0.99)).toBeLessThan(100);
  }, 30_000);

  it("attack: while B's LISTEN connection is down, B serves nothing from its cache", async () => {
    const user = await a.api.registerSystemAgent({ agentId: "listen-lost", agentType: "test", capabilities: [] });
    const { token, session } = await a.api.createSession(user.id);
    expect((await b.api.checkSession(token)).ok).toBe(true);
    // Kill every backend listening on the channel: B's notifications stop.
    const admin = new pg.Client({ connectionString: dbA.url! });
    await admin.connect();
    await admin.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND query ILIKE 'LISTEN%'`);
    await new Promise((r) => setTimeout(r, 50));
    // Revoked behind B's back while it cannot hear: it must ask the database.
    await admin.query("UPDATE erebus_sessions SET revoked_at = now() WHERE id = $1", [session.id]);
    await admin.end();
    expect((await b.api.checkSession(token)).ok).toBe(false);
  });
});

for (const engine of engines()) {
  describe(`session cache against statements no row trigger sees, on ${engine.name}`, () => {
    it("review: TRUNCATE of the sessions or users table drops every cached session", async () => {
      const db = counting(await engine.create());
      const auth = createAuth({ database: db, baseURL: ORIGIN, providers: [], migrate: true, logger: silentLogger, production: false });
      await auth.ready;
      try {
        for (const table of ["erebus_sessions", "user_references CASCADE"]) {
          const user = await auth.api.registerSystemAgent({ agentId: `truncate-${table.length}`, agentType: "test", capabilities: [] });
          const { token } = await auth.api.createSession(user.id);
          // Checked until served from memory (no statement): only an invalidation can refuse it now.
          const cached = await eventually(async () => {
            const before = db.statements();
            return (await auth.api.checkSession(token)).ok && db.statements() === before;
          });
          expect(cached).toBe(true);
          await db.exec(`TRUNCATE ${table}`);
          expect(await eventually(async () => !(await auth.api.checkSession(token)).ok)).toBe(true);
        }
      } finally {
        await auth.close();
      }
    });

    it("review: with a change trigger disabled (pg_restore --disable-triggers, by hand) nothing is cached", async () => {
      const db = await engine.create();
      const setup = createAuth({ database: db, baseURL: ORIGIN, providers: [], migrate: true, logger: silentLogger, production: false });
      await setup.ready;
      await db.exec("ALTER TABLE erebus_sessions DISABLE TRIGGER erebus_sessions_changed");
      const auth = createAuth({ database: db, baseURL: ORIGIN, providers: [], logger: silentLogger, production: false });
      await auth.ready;
      try {
        const user = await auth.api.registerSystemAgent({ agentId: "disabled-trigger", agentType: "test", capabilities: [] });
        const { token, session } = await auth.api.createSession(user.id);
        expect((await auth.api.checkSession(token)).ok).toBe(true);
        await new Promise((r) => setTimeout(r, 50)); // its cache would be up by now
        expect((await auth.api.checkSession(token)).ok).toBe(true);
        await db.query("UPDATE erebus_sessions SET revoked_at = now() WHERE id = $1", [session.id]);
        expect((await auth.api.checkSession(token)).ok).toBe(false);
      } finally {
        await auth.close();
      }
    });
  });
}

describe.skipIf(!server)("session cache when another instance closes the shared Database", () => {
  it("review: closing one instance tells the others' caches they hear nothing any more (a revocation is not served from memory afterwards)", async () => {
    const owned = await server!.create({ max: 5 });
    const pool = new pg.Pool({ connectionString: owned.url, max: 5 });
    pool.on("error", () => undefined);
    const shared = postgresDatabase(pool); // not owned: closing it leaves the pool up
    const options = { database: shared, baseURL: ORIGIN, providers: [], logger: silentLogger, production: false } as const;
    const a = createAuth({ ...options, migrate: true });
    await a.ready;
    const b = createAuth(options);
    await b.ready;
    try {
      const user = await b.api.registerSystemAgent({ agentId: "closed-neighbour", agentType: "test", capabilities: [] });
      const { token, session } = await b.api.createSession(user.id);
      // B serves the session from memory.
      await eventually(async () => (await b.api.checkSession(token)).ok && (await b.api.checkSession(token)).ok);
      await new Promise((r) => setTimeout(r, 100));
      await a.close(); // closes the shared Database: every LISTEN subscriber is gone
      await pool.query("UPDATE erebus_sessions SET revoked_at = now() WHERE id = $1", [session.id]);
      await new Promise((r) => setTimeout(r, 300)); // no NOTIFY can reach B now
      expect((await b.api.checkSession(token)).ok).toBe(false);
    } finally {
      await b.close(); // its LISTEN client goes back to the pool before the pool ends
      await pool.end();
      await owned.close();
    }
  });
});

describe("session cache without core migration 0003", () => {
  it("attack: on a database whose change triggers are missing, nothing is cached (a revocation by SQL is seen at once)", async () => {
    const db = await engines()[0]!.create();
    const auth = createAuth({ database: db, baseURL: ORIGIN, providers: [], migrate: true, logger: silentLogger, production: false });
    await auth.ready;
    try {
      // As if migrated by hand without 0003: the triggers are gone.
      await db.exec("DROP TRIGGER erebus_sessions_changed ON erebus_sessions; DROP TRIGGER user_references_changed ON user_references");
      const other = createAuth({ database: db, baseURL: ORIGIN, providers: [], logger: silentLogger, production: false });
      await other.ready;
      await new Promise((r) => setTimeout(r, 50)); // its cache would be up by now
      const user = await other.api.registerSystemAgent({ agentId: "no-triggers", agentType: "test", capabilities: [] });
      const { token, session } = await other.api.createSession(user.id);
      expect((await other.api.checkSession(token)).ok).toBe(true);
      expect((await other.api.checkSession(token)).ok).toBe(true);
      await db.query("UPDATE erebus_sessions SET revoked_at = now() WHERE id = $1", [session.id]);
      expect((await other.api.checkSession(token)).ok).toBe(false);
    } finally {
      await db.close();
    }
  });
});

describe.skipIf(!server)("one LISTEN connection per database", () => {
  it("many app instances on one small pool share one LISTEN connection (the pool does not run dry)", async () => {
    const db = await server!.create({ max: 3 });
    const instances = Array.from({ length: 6 }, (_, i) => createAuth({ database: db, baseURL: ORIGIN, providers: [], migrate: i === 0, logger: silentLogger, production: false }));
    try {
      await instances[0]!.ready;
      const user = await instances[0]!.api.registerSystemAgent({ agentId: "shared-listen", agentType: "test", capabilities: [] });
      const { token } = await instances[0]!.api.createSession(user.id);
      // Every instance checks (which starts its cache) until all serve from memory.
      for (const auth of instances) {
        for (let i = 0; i < 50 && (await db.query("SELECT 1")) && !(await auth.api.checkSession(token)).ok; i++);
      }
      await new Promise((r) => setTimeout(r, 50));
      const { rows } = await db.query<{ n: number }>("SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND query ILIKE 'LISTEN%'");
      expect(rows[0]!.n).toBe(1);
      // And the pool still serves ordinary queries.
      expect((await instances[5]!.api.checkSession(token)).ok).toBe(true);
      expect((await db.query<{ one: number }>("SELECT 1 AS one")).rows[0]!.one).toBe(1);
    } finally {
      await db.close();
    }
  });
});
