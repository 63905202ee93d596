import type { Request, Response } from "express";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createAuth, silentLogger, type Database } from "./index.js";
import { AuthError, describeRoute, defineErrors, type ErebusProvider, type ProviderContext } from "./kit.js";
import { engines, startAuthServer, testProvider } from "./testing/index.js";

const base = { baseURL: "http://app.test", logger: silentLogger } as const;
const origin = { origin: "http://app.test" };

/** A provider built the new way: setup() returns routes and an api; its state lives in the closure. */
function counterProvider(id = "counter") {
  return {
    id,
    emits: [],
    setup(ctx: ProviderContext) {
      let hits = 0;
      return {
        routes(router) {
          router.post("/counter/hit", describeRoute({ summary: "count", form: true, responses: { 200: { description: "count" } } }), (req, res) => {
            hits++;
            res.json({ hits, body: req.body, url: ctx.url("/counter/hit") });
          });
        },
        api: { hits: () => hits, ctx },
      };
    },
  } satisfies ErebusProvider<{ hits(): number; ctx: ProviderContext }>;
}

describe("the provider contract: setup, api, checks", () => {
  it("runs setup once per createAuth, with per-instance state, and hands the api out as auth.providers.<id>", async () => {
    const db = await engines({ postgresUrl: null })[0]!.create();
    const a = await startAuthServer({ ...base, database: db, providers: [counterProvider()] });
    const b = createAuth({ ...base, database: db, providers: [counterProvider()] });
    const res = await fetch(`${a.server.url}/auth/counter/hit`, { method: "POST", headers: { ...origin, "content-type": "application/json" }, body: "{}" });
    expect(await res.json()).toMatchObject({ hits: 1, url: "http://app.test/auth/counter/hit" });
    const api = a.auth.providers.counter as { hits(): number };
    expect(api.hits()).toBe(1);
    expect((b.providers.counter as { hits(): number }).hits()).toBe(0);
    await a.server.close();
    await db.close();
  });

  it("takes a form body on a route marked form: true next to the route, and refuses it elsewhere", async () => {
    const db = await engines({ postgresUrl: null })[0]!.create();
    const { server } = await startAuthServer({ ...base, database: db, providers: [counterProvider(), testProvider()] });
    const form = await fetch(`${server.url}/auth/counter/hit`, { method: "POST", headers: { ...origin, "content-type": "application/x-www-form-urlencoded" }, body: "a=b" });
    expect(form.status).toBe(200);
    expect((await form.json()).body).toEqual({ a: "b" });
    const elsewhere = await fetch(`${server.url}/auth/test/sign-in`, { method: "POST", headers: { ...origin, "content-type": "application/x-www-form-urlencoded" }, body: "handle=x" });
    expect(elsewhere.status).toBe(415);
    await server.close();
    await db.close();
  });

  it("refuses two providers registering the same method and path, naming both", () => {
    const twin = { ...counterProvider("twin") };
    expect(() => createAuth({ ...base, database: "pglite://memory", providers: [counterProvider(), twin] })).toThrow(/POST \/counter\/hit is registered by both "counter" and "twin"/);
  });

  it("review: refuses two providers registering one route that differs only in case or a trailing slash (Express routes both to the first)", () => {
    const twin = {
      id: "twin",
      emits: [],
      setup: () => ({ routes: (router: import("express").Router) => void router.post("/Counter/Hit/", (_req, res) => res.json({})) }),
    } satisfies ErebusProvider;
    expect(() => createAuth({ ...base, database: "pglite://memory", providers: [counterProvider(), twin] })).toThrow(/is registered by both "counter" and "twin"/);
  });

  it("refuses two providers whose routes overlap only through parameters in different places (/a/:x and /:y/b both match /a/b), and lets apart ones be", () => {
    const route = (id: string, path: string) =>
      ({ id, emits: [], setup: () => ({ routes: (router: import("express").Router) => void router.get(path, (_req, res) => res.json({})) }) }) satisfies ErebusProvider;
    expect(() => createAuth({ ...base, database: "pglite://memory", providers: [route("one", "/shared/:x"), route("two", "/:y/thing")] })).toThrow(
      /GET \/:y\/thing \("two"\) and \/shared\/:x \("one"\) match the same requests/,
    );
    // A core route overlapped by a provider's parameter: GET /identities is core's.
    expect(() => createAuth({ ...base, database: "pglite://memory", providers: [route("greedy", "/:anything")] })).toThrow(/match the same requests/);
    // A parameter inside a segment is compared as the whole path: /file-:id and /file-x are left to the app.
    const inner = createAuth({ ...base, database: "pglite://memory", providers: [route("one", "/files/file-:id"), route("two", "/files/file-x")] });
    void inner.close();
    // Different lengths or a differing fixed segment never meet.
    const apart = createAuth({ ...base, database: "pglite://memory", providers: [route("one", "/shared/:x"), route("two", "/:y/thing/more"), route("three", "/other/:z")] });
    void apart.close();
  });

  it("refuses a provider route that shadows one of core's", () => {
    const shadow = {
      id: "shadow",
      emits: [],
      setup: () => ({ routes: (router: import("express").Router) => void router.get("/session", (_req, res) => res.json({})) }),
    } satisfies ErebusProvider;
    expect(() => createAuth({ ...base, database: "pglite://memory", providers: [shadow] })).toThrow(/GET \/session is registered by both "core" and "shadow"/);
  });

  it("refuses setup() returning unknown fields, and a provider mixing setup with the old top-level shape", () => {
    const odd = { id: "odd", emits: [], setup: () => ({ route: () => undefined }) } as unknown as ErebusProvider;
    expect(() => createAuth({ ...base, database: "pglite://memory", providers: [odd] })).toThrow(/unknown field\(s\) route/);
    const mixed = { id: "mixed", emits: [], setup: () => ({}), routes: () => undefined } satisfies ErebusProvider;
    expect(() => createAuth({ ...base, database: "pglite://memory", providers: [mixed] })).toThrow(/both setup\(\) and top-level/);
  });

  it("refuses two providers claiming one CLI command, and a provider taking one of core's", () => {
    const command = { description: "x", run: async () => undefined };
    const one = { id: "one", emits: [], setup: () => ({ commands: { keys: command } }) } satisfies ErebusProvider;
    const two = { id: "two", emits: [], setup: () => ({ commands: { keys: command } }) } satisfies ErebusProvider;
    expect(() => createAuth({ ...base, database: "pglite://memory", providers: [one, two] })).toThrow(/command "keys" is registered by both "one" and "two"/);
    const core = { id: "three", emits: [], setup: () => ({ commands: { migrate: command } }) } satisfies ErebusProvider;
    expect(() => createAuth({ ...base, database: "pglite://memory", providers: [core] })).toThrow(/command "migrate" is one of core's/);
  });

  it("refuses an errors table that is not ERR_* codes with 4xx/5xx statuses", () => {
    const bad = { id: "bad", emits: [], errors: { OOPS: { status: 200, title: "x" } }, setup: () => ({}) } satisfies ErebusProvider;
    expect(() => createAuth({ ...base, database: "pglite://memory", providers: [bad] })).toThrow(/errors\.OOPS must be/);
  });

  it("throws a TypeError naming the provider when it resolves a source type it does not emit (and writes nothing)", async () => {
    const db = await engines({ postgresUrl: null })[0]!.create();
    const liar = {
      id: "liar",
      emits: ["email_auth"],
      setup: () => ({}),
    } satisfies ErebusProvider;
    const auth = createAuth({ ...base, database: db, migrate: true, providers: [liar] });
    await auth.ready;
    const ctx = auth.providerContext("liar");
    const address = "0xAb5801a7D398351b8bE11C439e05C5B3259aeC9B";
    const identity = { sourceIdentifier: address, network: "ethereum", userType: "external", sourceType: { type: "web3_wallet", chain: "ethereum", address, provider: "metamask", verified_at: new Date().toISOString() } } as const;
    await expect(ctx.resolveIdentity(identity as never)).rejects.toThrow(/provider "liar" resolved an identity of source type "web3_wallet", which is not in its emits \(email_auth\)/);
    const { rows } = await db.query<{ n: number }>("SELECT count(*)::int AS n FROM user_references");
    expect(rows[0]!.n).toBe(0);
    await db.close();
  });

  it("review: ctx.registerSystemAgent keeps the emits promise too (a provider that does not emit system_agent cannot mint agents)", async () => {
    const db = await engines({ postgresUrl: null })[0]!.create();
    const liar = { id: "liar", emits: ["email_auth"], setup: () => ({}) } satisfies ErebusProvider;
    const auth = createAuth({ ...base, database: db, migrate: true, providers: [liar] });
    await auth.ready;
    const ctx = auth.providerContext("liar");
    await expect(ctx.registerSystemAgent({ agentId: "minted", agentType: "x", capabilities: ["admin"] })).rejects.toThrow(/provider "liar" resolved an identity of source type "system_agent"/);
    const { rows } = await db.query<{ n: number }>("SELECT count(*)::int AS n FROM user_references");
    expect(rows[0]!.n).toBe(0);
    await db.close();
  });

  it("review: ctx.requireFresh refuses a maxAge that is not a positive whole number of seconds (NaN made every session fresh)", async () => {
    const auth = createAuth({ ...base, database: "pglite://memory", providers: [counterProvider()] });
    const ctx = auth.providerContext("counter");
    const res = { append: () => undefined } as unknown as Response;
    for (const maxAge of [Number.NaN, -1, 0, 1.5]) {
      await expect(ctx.requireFresh({ headers: {}, auth: undefined } as unknown as Request, res, { maxAge }), String(maxAge)).rejects.toThrow(TypeError);
    }
  });

  it("namespaces rate-limit names by provider id, so two providers' limits of one name never share a counter", async () => {
    const db = await engines({ postgresUrl: null })[0]!.create();
    const limited = (id: string) => ({ id, emits: [], setup: (ctx: ProviderContext) => ({ api: ctx.rateLimit({ name: "start", points: 1, duration: 60 }) }) }) satisfies ErebusProvider;
    const auth = createAuth({ ...base, database: db, migrate: true, providers: [limited("alpha"), limited("beta")] });
    await auth.ready;
    const alpha = auth.providers.alpha as import("./kit.js").RateLimiter;
    const beta = auth.providers.beta as import("./kit.js").RateLimiter;
    await alpha.consume("client");
    await beta.consume("client"); // its own counter: not limited by alpha's hit
    await expect(alpha.consume("client")).rejects.toMatchObject({ code: "ERR_RATE_LIMITED" });
    const { rows } = await db.query<{ key: string }>("SELECT key FROM erebus_rate_limits ORDER BY key");
    expect(rows.map((r) => r.key.split(":").slice(0, 3).join(":"))).toEqual(["erebus:alpha:start", "erebus:beta:start"]);
    await db.close();
  });

  it("review: the browser-binding cookie is Secure in production, as the session cookie is, also with an http baseURL", async () => {
    const db = await engines({ postgresUrl: null })[0]!.create();
    const auth = createAuth({ ...base, database: db, migrate: true, production: true, providers: [counterProvider()] });
    await auth.ready;
    const cookies: string[] = [];
    const res = { append: (_name: string, value: string) => cookies.push(value) } as unknown as Response;
    await auth.providerContext("counter").verifications.issue({ purpose: "state", ttlSeconds: 60, browser: { req: { headers: {} } as Request, res } });
    expect(cookies[0]).toMatch(/; Secure/);
    await db.close();
  });

  it("ctx.randomToken draws from the alphabet it is given, uniformly enough, and refuses a bad alphabet", async () => {
    const auth = createAuth({ ...base, database: "pglite://memory", providers: [counterProvider()] });
    const ctx = auth.providerContext("counter");
    expect(ctx.randomToken()).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const counts = new Map<string, number>();
    for (let i = 0; i < 3; i++) for (const char of ctx.randomToken({ alphabet: "abc", length: 1000 })) counts.set(char, (counts.get(char) ?? 0) + 1);
    expect([...counts.keys()].sort()).toEqual(["a", "b", "c"]);
    for (const n of counts.values()) expect(n).toBeGreaterThan(850);
    expect(() => ctx.randomToken({ alphabet: "aa", length: 3 })).toThrow(/distinct/);
    expect(ctx.hash("abc")).toBe("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    expect(() => ctx.url("//evil.example/x")).toThrow(TypeError);
  });

  it("review: ctx.url never leaves the app's origin, also mounted at / (a backslash or a tab after the first slash is //)", () => {
    const auth = createAuth({ ...base, basePath: "/", database: "pglite://memory", providers: [counterProvider()] });
    const ctx = auth.providerContext("counter");
    expect(ctx.url("/counter/hit")).toBe("http://app.test/counter/hit");
    for (const path of ["/\\evil.example/x", "/\t/evil.example/x", "/\n/evil.example/x", "\\\\evil.example/x"]) {
      let url: string | undefined;
      try {
        url = ctx.url(path);
      } catch (error) {
        expect(error, JSON.stringify(path)).toBeInstanceOf(TypeError);
      }
      if (url !== undefined) expect(new URL(url).origin, JSON.stringify(path)).toBe("http://app.test");
    }
  });
});

for (const engine of engines()) {
  describe(`ctx.verifications on ${engine.name}`, () => {
    let db: Database;
    let ctx: ProviderContext;
    let other: ProviderContext;
    let now = new Date("2026-11-27T12:00:00Z");

    beforeAll(async () => {
      db = await engine.create();
      const auth = createAuth({ ...base, database: db, migrate: true, clock: () => now, providers: [counterProvider("one"), { ...counterProvider("two"), setup: () => ({}) }] });
      await auth.ready;
      ctx = auth.providerContext("one");
      other = auth.providerContext("two");
    });
    afterAll(async () => {
      await db?.close();
    });

    it("stores only a hash, consumes once, and says why a second consume fails", async () => {
      const issued = await ctx.verifications.issue({ purpose: "nonce", ttlSeconds: 60, data: { family: "ethereum" } });
      const { rows } = await db.query<{ secret_hash: string; data: unknown }>("SELECT secret_hash, data FROM erebus_verifications WHERE id = $1", [issued.id]);
      expect(rows[0]!.secret_hash).not.toContain(issued.secret);
      expect(rows[0]!.secret_hash).toBe(ctx.hash(issued.secret));
      expect(await ctx.verifications.consume({ purpose: "nonce", secret: issued.secret })).toMatchObject({ ok: true, data: { family: "ethereum" } });
      expect(await ctx.verifications.consume({ purpose: "nonce", secret: issued.secret })).toEqual({ ok: false, reason: "used" });
      expect(await ctx.verifications.consume({ purpose: "nonce", secret: "never-issued-secret" })).toEqual({ ok: false, reason: "unknown" });
    });

    it("keeps providers and purposes apart: one provider's secret is unknown to another, and to another purpose", async () => {
      const issued = await ctx.verifications.issue({ purpose: "nonce", ttlSeconds: 60 });
      expect(await other.verifications.consume({ purpose: "nonce", secret: issued.secret })).toEqual({ ok: false, reason: "unknown" });
      expect(await ctx.verifications.consume({ purpose: "state", secret: issued.secret })).toEqual({ ok: false, reason: "unknown" });
      expect((await ctx.verifications.consume({ purpose: "nonce", secret: issued.secret })).ok).toBe(true);
    });

    it("expires, and a wrong subject leaves the secret unused", async () => {
      const issued = await ctx.verifications.issue({ purpose: "link", ttlSeconds: 60, subject: "a@example.com" });
      expect(await ctx.verifications.consume({ purpose: "link", secret: issued.secret, subject: "b@example.com" })).toEqual({ ok: false, reason: "unknown" });
      now = new Date(now.getTime() + 61_000);
      expect(await ctx.verifications.consume({ purpose: "link", secret: issued.secret, subject: "a@example.com" })).toEqual({ ok: false, reason: "expired" });
    });

    it("supersede: a newer one ends the older (true), or only those beyond the newest n", async () => {
      const first = await ctx.verifications.issue({ purpose: "code", ttlSeconds: 600, subject: "s1", secret: { digits: 6 }, supersede: true });
      const second = await ctx.verifications.issue({ purpose: "code", ttlSeconds: 600, subject: "s1", secret: { digits: 6 }, supersede: true });
      expect(first.secret).toMatch(/^\d{6}$/);
      expect(await ctx.verifications.consumeCode({ purpose: "code", subject: "s1", code: first.secret === second.secret ? "x" : first.secret })).toEqual({ ok: false, reason: "unknown" });
      const links = [];
      for (let i = 0; i < 4; i++) links.push(await ctx.verifications.issue({ purpose: "link", ttlSeconds: 600, subject: "s2", supersede: 2 }));
      expect(await ctx.verifications.peek({ purpose: "link", secret: links[0]!.secret })).toEqual({ ok: false, reason: "superseded" });
      expect(await ctx.verifications.peek({ purpose: "link", secret: links[1]!.secret })).toEqual({ ok: false, reason: "superseded" });
      expect((await ctx.verifications.peek({ purpose: "link", secret: links[3]!.secret })).ok).toBe(true);
      // endOthers: using one ends the subject's other live links and codes.
      await ctx.verifications.issue({ purpose: "code", ttlSeconds: 600, subject: "s2", secret: { digits: 6 } });
      expect((await ctx.verifications.consume({ purpose: "link", secret: links[2]!.secret, endOthers: ["link", "code"] })).ok).toBe(true);
      expect(await ctx.verifications.peek({ purpose: "link", secret: links[3]!.secret })).toEqual({ ok: false, reason: "superseded" });
    });

    it("counts every code try, also in parallel, and kills the code after maxAttempts", async () => {
      const issued = await ctx.verifications.issue({ purpose: "code", ttlSeconds: 600, subject: "s3", secret: { digits: 6 }, maxAttempts: 3 });
      const wrong = issued.secret === "000000" ? "000001" : "000000";
      const tries = await Promise.all(Array.from({ length: 5 }, () => ctx.verifications.consumeCode({ purpose: "code", subject: "s3", code: wrong })));
      expect(tries.filter((t) => !t.ok && t.reason === "exhausted").length).toBe(2);
      expect(await ctx.verifications.consumeCode({ purpose: "code", subject: "s3", code: issued.secret })).toEqual({ ok: false, reason: "exhausted" });
    });

    it("review: consumeCode also checks codes issued from an alphabet", async () => {
      const issued = await ctx.verifications.issue({ purpose: "code", ttlSeconds: 600, subject: "s4", secret: { alphabet: "ABCDEFGHJKLMNPQRSTUVWXYZ", length: 8 }, maxAttempts: 3 });
      expect(await ctx.verifications.consumeCode({ purpose: "code", subject: "s4", code: "AAAAAAAA" === issued.secret ? "BBBBBBBB" : "AAAAAAAA" })).toEqual({ ok: false, reason: "unknown" });
      expect((await ctx.verifications.consumeCode({ purpose: "code", subject: "s4", code: issued.secret })).ok).toBe(true);
    });

    it("of 20 concurrent consumes of one secret exactly one succeeds", async () => {
      const issued = await ctx.verifications.issue({ purpose: "nonce", ttlSeconds: 60 });
      const results = await Promise.all(Array.from({ length: 20 }, () => ctx.verifications.consume({ purpose: "nonce", secret: issued.secret })));
      expect(results.filter((r) => r.ok).length).toBe(1);
      expect(results.filter((r) => !r.ok && r.reason === "used").length).toBe(19);
    });

    it("remember: a value made elsewhere is accepted once", async () => {
      const until = new Date(now.getTime() + 86_400_000);
      expect(await ctx.verifications.remember({ purpose: "payload", value: "hash-of-a-signed-payload", until })).toEqual({ ok: true });
      expect(await ctx.verifications.remember({ purpose: "payload", value: "hash-of-a-signed-payload", until })).toEqual({ ok: false, reason: "used" });
      const { rows } = await db.query<{ n: number }>("SELECT count(*)::int AS n FROM erebus_verifications WHERE secret_hash = $1", ["hash-of-a-signed-payload"]);
      expect(rows[0]!.n).toBe(0); // only its hash is kept
    });

    it("binds to a browser: another browser's consume fails with `browser` and leaves it usable for the right one", async () => {
      const cookies: string[] = [];
      const res = { append: (_name: string, value: string) => cookies.push(value) } as unknown as Response;
      const issued = await ctx.verifications.issue({ purpose: "state", ttlSeconds: 60, browser: { req: { headers: {} } as Request, res } });
      expect(cookies[0]).toMatch(/^erebus_bind=[A-Za-z0-9_-]{43}; Max-Age=900; Path=\/auth; HttpOnly; SameSite=Lax$/);
      const binding = cookies[0]!.split(";")[0]!;
      const stranger = { headers: { cookie: `erebus_bind=${"A".repeat(43)}` } } as unknown as Request;
      expect(await ctx.verifications.consume({ purpose: "state", secret: issued.secret, browser: stranger })).toEqual({ ok: false, reason: "browser" });
      expect(await ctx.verifications.consume({ purpose: "state", secret: issued.secret })).toEqual({ ok: false, reason: "browser" });
      const right = { headers: { cookie: binding } } as unknown as Request;
      expect(await ctx.verifications.consume({ purpose: "state", secret: issued.secret, browser: right })).toMatchObject({ ok: true, binding: binding.split("=")[1] });
    });

    it("refuses nonsense at issue as programming errors", async () => {
      await expect(ctx.verifications.issue({ purpose: "Bad Purpose", ttlSeconds: 60 })).rejects.toThrow(TypeError);
      await expect(ctx.verifications.issue({ purpose: "nonce", ttlSeconds: 0 })).rejects.toThrow(/ttlSeconds/);
      await expect(ctx.verifications.issue({ purpose: "nonce", ttlSeconds: 60, secret: { value: "short" } })).rejects.toThrow(/at least 16/);
    });
  });
}

/** A one-time-code provider (like email codes): its attempts are made through its context in the test. */
const codeProvider = () => ({ id: "code", emits: ["test_account"], setup: () => ({}) }) satisfies ErebusProvider;

for (const engine of engines()) {
  describe(`signInOnce with short codes on ${engine.name}`, () => {
    it("review: a burst of wrong codes in parallel counts every try before the next is checked (the right code after them is dead)", async () => {
      const db = await engine.create();
      const auth = createAuth({ ...base, database: db, migrate: true, providers: [testProvider(), codeProvider()] });
      await auth.ready;
      const ctx = auth.providerContext("code");
      try {
        const { secret: code } = await ctx.verifications.issue({ purpose: "code", ttlSeconds: 600, subject: "burst", secret: { digits: 6 }, maxAttempts: 3 });
        const wrong = Array.from({ length: 20 }, (_, i) => String((Number(code) + 1 + i) % 1_000_000).padStart(6, "0"));
        // Twenty-one requests that arrive together: each runs signInOnce at once.
        const req = { headers: {}, ip: "192.0.2.1" } as unknown as Request;
        const res = { append: () => undefined, setHeader: () => undefined } as unknown as Response;
        const results = await Promise.allSettled(
          [...wrong, code].map((c) =>
            ctx.signInOnce(req, res, {
              verify: () => ({ network: "test", sourceIdentifier: "burst", sourceType: { type: "test_account", handle: "burst" } }),
              async consume(q) {
                const used = await ctx.verifications.consumeCode({ purpose: "code", subject: "burst", code: c, q });
                if (!used.ok) throw new AuthError("ERR_CODE_WRONG", { status: 401, title: "wrong code", detail: used.reason });
                return used;
              },
            }),
          ),
        );
        // 3 tries: the right code, after 20 wrong ones, must not sign in.
        expect(results.filter((r) => r.status === "fulfilled")).toEqual([]);
        const { rows } = await db.query<{ attempts: number }>("SELECT attempts FROM erebus_verifications WHERE provider = 'code' AND subject = 'burst'");
        expect(rows[0]!.attempts).toBe(21);
      } finally {
        await db.close();
      }
    });
  });
}

describe("signInOnce refuses a failed verification handed back instead of thrown", () => {
  it("review: consume() returning { ok: false } never signs in (TypeError, no session)", async () => {
    const db = await engines({ postgresUrl: null })[0]!.create();
    const sloppy = {
      id: "sloppy",
      emits: ["test_account"],
      setup: (ctx: ProviderContext) => ({
        routes(router: import("express").Router) {
          router.post("/sloppy", async (req, res) => {
            res.json(
              await ctx.signInOnce(req, res, {
                verify: () => ({ network: "test", sourceIdentifier: "sloppy", sourceType: { type: "test_account", handle: "sloppy" } }),
                consume: (q) => ctx.verifications.consume({ purpose: "nonce", secret: "never-issued-secret", q }),
              }),
            );
          });
        },
      }),
    } satisfies ErebusProvider;
    const { server } = await startAuthServer({ ...base, database: db, providers: [testProvider(), sloppy] });
    const res = await fetch(`${server.url}/auth/sloppy`, { method: "POST", headers: { ...origin, "content-type": "application/json" }, body: "{}" });
    expect(res.status).toBe(500);
    expect(res.headers.getSetCookie()).toEqual([]);
    const { rows } = await db.query<{ n: number }>("SELECT count(*)::int AS n FROM erebus_sessions");
    expect(rows[0]!.n).toBe(0);
    await server.close();
    await db.close();
  });
});

describe("defineErrors works from @erebus/core/provider", () => {
  it("creates errors with the declared status", () => {
    const errors = defineErrors({ ERR_KIT_DEMO: { status: 409, title: "demo" } });
    expect(errors.create("ERR_KIT_DEMO")).toMatchObject({ status: 409, code: "ERR_KIT_DEMO" });
  });
});
