import { afterAll, beforeAll, describe, expect, it } from "vitest";
import * as z from "zod";
import { engines, rowCounts } from "../../../test/engines.js";
import { startAuthServer, type Running } from "../../../test/http.js";
import { findPgUnsafeString, isPgText, pgText, silentLogger, type Database, type ErebusAuth, type ErebusProvider } from "./index.js";
import { createRateLimiterFactory } from "./rate-limit.js";
import { testProvider } from "./testing/index.js";

/** What PostgreSQL refuses in a text or jsonb value: U+0000 and UTF-16 surrogates without their pair. */
const BAD = ["a\u0000b", "\ud800", "x\udfffy", "\udc00\ud800", "end\ud83d"];
const GOOD = ["", "plain", "emoji \ud83d\ude00", "ünïcødé", "\u0001\u001f"];

/** A provider whose route stores free text as a real one would (an API-key name, a display name). */
function notesProvider(): ErebusProvider {
  // A permissive schema on purpose: core's ctx.parse must refuse what PostgreSQL refuses even when the schema doesn't.
  const body = z.object({ name: z.string(), tags: z.array(z.string()).optional(), extra: z.record(z.string(), z.unknown()).optional() });
  return {
    id: "notes",
    emits: [],
    migrations: [{ id: "0001_notes", sql: "CREATE TABLE erebus_test_notes (id BIGSERIAL PRIMARY KEY, name TEXT NOT NULL, extra JSONB)" }],
    routes(router, ctx) {
      router.post("/notes", async (req, res) => {
        const parsed = ctx.parse(body, req.body);
        await ctx.db.query("INSERT INTO erebus_test_notes (name, extra) VALUES ($1, $2::jsonb)", [parsed.name, JSON.stringify(parsed.extra ?? {})]);
        res.status(201).json({ ok: true });
      });
      router.get("/notes", async (req, res) => {
        const query = ctx.parse(z.object({ q: z.string().optional() }), req.query, "query");
        const { rows } = await ctx.db.query("SELECT count(*)::int AS n FROM erebus_test_notes WHERE name = $1", [query.q ?? ""]);
        res.json(rows[0]);
      });
    },
  };
}

describe("pgText", () => {
  it("finding 9: pgText() and isPgText refuse U+0000 and lone surrogates and keep every other string", () => {
    for (const value of BAD) {
      expect(isPgText(value), JSON.stringify(value)).toBe(false);
      const result = pgText().safeParse(value);
      expect(result.success).toBe(false);
      expect(result.error?.issues[0]?.message).toMatch(/U\+0000|surrogate/);
    }
    for (const value of GOOD) {
      expect(isPgText(value)).toBe(true);
      expect(pgText().parse(value)).toBe(value);
    }
    // Still a ZodString: further checks chain.
    expect(pgText().min(2).safeParse("a").success).toBe(false);
    expect(findPgUnsafeString({ a: [1, { "b\u0000": "ok" }] })).toEqual(["a", 1, "b\u0000"]);
    expect(findPgUnsafeString({ a: [1, { b: "x\ud800" }] })).toEqual(["a", 1, "b"]);
    expect(findPgUnsafeString({ a: ["fine"], b: null, c: 3 })).toBeUndefined();
  });

  it("review: a deeply nested body ([[[[…]]]]) is walked once, not once per level (the old walk copied the path at every level: quadratic)", () => {
    // 300,000 levels: linear is milliseconds; the old walk made ~4.5·10¹⁰ path copies (minutes, past the test's timeout).
    let body: unknown = "bad\u0000";
    for (let i = 0; i < 300_000; i++) body = [body];
    const path = findPgUnsafeString(body);
    expect(path).toHaveLength(300_000);
    expect(path!.every((key) => key === 0)).toBe(true);
  });
});

for (const engine of engines()) {
  describe(`strings PostgreSQL refuses, on ${engine.name}`, () => {
    let db: Database;
    let server: Running;
    let auth: ErebusAuth;

    beforeAll(async () => {
      db = await engine.create();
      ({ auth, server } = await startAuthServer({ database: db, baseURL: "http://app.test", providers: [testProvider(), notesProvider()], logger: silentLogger, rateLimit: { enabled: false } }, (app, a) => {
        app.get("/api/me", a.requireUser(), (req, res) => res.json(req.auth));
      }));
    });
    afterAll(async () => {
      await server?.close();
      await db?.close();
    });

    const post = (path: string, body: string, headers: Record<string, string> = {}) =>
      fetch(`${server.url}${path}`, { method: "POST", headers: { "content-type": "application/json", ...headers }, body });

    it("finding 9: ctx.parse answers 400 naming the field for a NUL or a lone surrogate anywhere in the body or query", async () => {
      const before = await rowCounts(db);
      const cases: [string, string][] = [];
      for (const bad of BAD) {
        // JSON.stringify writes lone surrogates as \udXXX escapes, which JSON.parse turns back into lone surrogates.
        cases.push([JSON.stringify({ name: bad }), "name"]);
        cases.push([JSON.stringify({ name: "ok", tags: ["fine", bad] }), "tags.1"]);
        cases.push([JSON.stringify({ name: "ok", extra: { deep: { [bad]: 1 } } }), `extra.deep.${bad}`]);
        cases.push([JSON.stringify({ name: "ok", extra: { deep: [bad] } }), "extra.deep.0"]);
      }
      for (const [body, field] of cases) {
        const res = await post("/auth/notes", body);
        expect(res.status, body).toBe(400);
        expect(res.headers.get("content-type")).toMatch(/^application\/problem\+json/);
        const problem = (await res.json()) as { code: string; field: string; detail: string };
        expect(problem.code).toBe("ERR_BODY_INVALID");
        expect(problem.field).toBe(field);
        expect(problem.detail).toMatch(/U\+0000|surrogate/);
      }
      for (const q of ["%00", "a%00b", "%ED%A0%80"]) {
        const res = await fetch(`${server.url}/auth/notes?q=${q}`);
        // %ED%A0%80 is not UTF-8 at all: the query parser keeps it raw, which PostgreSQL takes.
        if (q === "%ED%A0%80") { expect(res.status).toBe(200); continue; }
        expect(res.status, q).toBe(400);
        expect(await res.json()).toMatchObject({ code: "ERR_QUERY_INVALID", field: "q" });
      }
      const { rows } = await db.query<{ n: number }>("SELECT count(*)::int AS n FROM erebus_test_notes");
      expect(rows[0]!.n).toBe(0);
      expect(await rowCounts(db)).toEqual(before);
      expect((await post("/auth/notes", JSON.stringify({ name: "emoji \ud83d\ude00" }))).status).toBe(201);
    });

    it("finding 9: core's own routes and the cookie and bearer paths never answer 500 for NUL or lone surrogates", async () => {
      for (const bad of BAD) {
        const body = JSON.stringify({ handle: bad, level: 1 });
        const signIn = await post("/auth/test/sign-in", body);
        expect(signIn.status).toBe(400);
        expect(await signIn.json()).toMatchObject({ code: "ERR_BODY_INVALID", field: "handle" });
        const signOut = await post("/auth/sign-out", JSON.stringify({ x: bad }));
        expect(signOut.status).toBeLessThan(500);
      }
      for (const cookie of ["erebus_session=%00", "erebus_session=a%00b", "erebus_session=%ED%A0%80", "erebus_session=%F0%9F"]) {
        const res = await fetch(`${server.url}/api/me`, { headers: { cookie } });
        expect(res.status, cookie).toBe(401);
        const out = await post("/auth/sign-out", "{}", { cookie });
        expect(out.status).toBe(204);
      }
      // A Bearer token is ASCII by grammar; percent-escapes are not decoded.
      const res = await fetch(`${server.url}/api/me`, { headers: { authorization: "Bearer %00%ED%A0%80" } });
      expect(res.status).toBe(401);
      // Rate-limit keys derived from user input (an address, a name) are stored as text too.
      const limiter = createRateLimiterFactory(db, { enabled: true })({ name: "pg-text", points: 5, duration: 60 });
      for (const bad of BAD) await limiter.consume(`user:${bad}`);
      await limiter.consume(`${"x".repeat(179)}\ud83d\ude00`); // the 180-character cut would split the pair
      // What a provider hands to resolveIdentity (an OAuth subject, a profile field) is checked as well.
      for (const bad of BAD) {
        const error = await auth.api
          .resolveIdentity({ network: "test", sourceIdentifier: "fine", sourceType: { type: "test_account", handle: "fine", metadata: { name: bad } } })
          .then(() => undefined, (e: unknown) => e);
        expect(error).toMatchObject({ code: "ERR_IDENTITY_INVALID", status: 400 });
        expect((error as Error).message).toMatch(/sourceType\.metadata\.name/);
      }
    });
  });
}
