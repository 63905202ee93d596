import express from "express";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { engines } from "../../../test/engines.js";
import { cookieFrom, listen, type Running } from "../../../test/http.js";
import { createAuth, silentLogger, type Database, type ErebusAuth } from "./index.js";
import { hashToken } from "./sessions.js";
import { testProvider } from "./testing/index.js";

const ORIGIN = "http://app.test";
const HOUR = 3600;

for (const engine of engines()) {
  describe(`sessions and the Express surface on ${engine.name}`, () => {
    let db: Database;
    let auth: ErebusAuth;
    let server: Running;
    let now = new Date("2026-01-01T00:00:00Z");
    const debugLog: Record<string, unknown>[] = [];
    const advance = (seconds: number) => (now = new Date(now.getTime() + seconds * 1000));

    const post = (path: string, body: unknown, headers: Record<string, string> = {}) =>
      fetch(`${server.url}${path}`, { method: "POST", headers: { "content-type": "application/json", origin: ORIGIN, ...headers }, body: JSON.stringify(body) });
    const get = (path: string, headers: Record<string, string> = {}) => fetch(`${server.url}${path}`, { headers });
    async function signIn(handle: string, headers: Record<string, string> = {}) {
      const res = await post("/auth/test/sign-in", { handle }, headers);
      expect(res.status).toBe(200);
      const cookie = cookieFrom(res, "erebus_session");
      return { res, body: (await res.json()) as { user: { id: string }; session: { id: string; token?: string; expiresAt: string } }, token: cookie?.value, cookie };
    }
    const withCookie = (token: string) => ({ cookie: `erebus_session=${token}` });

    beforeAll(async () => {
      db = await engine.create();
      auth = createAuth({
        database: db,
        baseURL: ORIGIN,
        providers: [testProvider()],
        migrate: true,
        logger: { ...silentLogger, debug: (message: string, fields?: Record<string, unknown>) => void debugLog.push({ message, ...fields }) },
        clock: () => now,
        session: { maxAge: 24 * HOUR, updateAge: HOUR, absoluteMaxAge: 72 * HOUR },
      });
      await auth.ready;
      const app = express();
      app.use("/auth", auth.router);
      app.get("/api/me", auth.requireUser(), (req, res) => res.json(req.auth));
      app.get("/api/public", auth.middleware, (req, res) => res.json({ auth: req.auth ?? null }));
      app.post("/api/things", auth.requireUser(), (_req, res) => res.status(201).json({ ok: true }));
      app.get("/api/read", auth.requireScope("read"), (_req, res) => res.json({ ok: true }));
      app.get("/api/trade", auth.requireScope("trade"), (_req, res) => res.json({ ok: true }));
      app.get("/api/agents-only", auth.requireUserType("agent", "system"), (_req, res) => res.json({ ok: true }));
      server = await listen(app);
    });
    afterAll(async () => {
      await server?.close();
      await db?.close();
    });

    it("signs in with an HttpOnly, SameSite=Lax cookie holding a 256-bit token stored only as its SHA-256", async () => {
      const { token, cookie, body } = await signIn("alice");
      expect(token).toMatch(/^[A-Za-z0-9_-]{43}$/);
      expect(cookie!.attributes).toMatch(/HttpOnly/);
      expect(cookie!.attributes).toMatch(/SameSite=Lax/);
      expect(cookie!.attributes).toMatch(/Path=\//);
      expect(cookie!.attributes).not.toMatch(/Secure/); // http baseURL, not production
      expect(body.session.token).toBeUndefined();
      const { rows } = await db.query<{ token_hash: string }>("SELECT token_hash FROM erebus_sessions WHERE id = $1", [body.session.id]);
      expect(rows[0]!.token_hash).toBe(hashToken(token!));
      const dump = await db.query("SELECT * FROM erebus_sessions");
      expect(JSON.stringify(dump.rows)).not.toContain(token);

      const me = await get("/auth/session", withCookie(token!));
      expect(me.status).toBe(200);
      expect(await me.json()).toMatchObject({ user: { id: body.user.id, network: "test" }, via: "session", scopes: ["*"] });
    });

    it("hands the token to non-browser clients that ask for it, for Authorization: Bearer", async () => {
      const { body, cookie } = await signIn("bot", { "erebus-session-transport": "bearer" });
      expect(cookie).toBeUndefined();
      expect(body.session.token).toMatch(/^[A-Za-z0-9_-]{43}$/);
      const me = await get("/api/me", { authorization: `Bearer ${body.session.token}` });
      expect(me.status).toBe(200);
      expect(await me.json()).toMatchObject({ user: { id: body.user.id }, via: "session" });
    });

    it("answers 401 for no, unknown, tampered and malformed tokens", async () => {
      const { token } = await signIn("carol");
      const tampered = token!.slice(0, -1) + (token!.endsWith("A") ? "B" : "A");
      const expectProblem = async (res: Response, status: number, code: string) => {
        expect(res.status).toBe(status);
        expect(res.headers.get("content-type")).toMatch(/^application\/problem\+json/);
        expect(await res.json()).toMatchObject({ status, code });
      };
      await expectProblem(await get("/auth/session"), 401, "ERR_UNAUTHENTICATED");
      await expectProblem(await get("/auth/session", withCookie(tampered)), 401, "ERR_SESSION_INVALID");
      await expectProblem(await get("/api/me", { authorization: `Bearer ${tampered}` }), 401, "ERR_SESSION_INVALID");
      await expectProblem(await get("/api/me", { authorization: `Bearer ${"x".repeat(43)}` }), 401, "ERR_SESSION_INVALID");
      await expectProblem(await get("/api/me", withCookie("not-a-token")), 401, "ERR_SESSION_INVALID");
      // A bad cookie is cleared, and the genuine one still works.
      const bad = await get("/auth/session", withCookie(tampered));
      expect(cookieFrom(bad, "erebus_session")?.attributes).toMatch(/Max-Age=0/);
      expect((await get("/auth/session", withCookie(token!))).status).toBe(200);
    });

    it("expires a session after maxAge without use", async () => {
      const { token } = await signIn("dave");
      advance(24 * HOUR + 1);
      const res = await get("/auth/session", withCookie(token!));
      expect(res.status).toBe(401);
      expect((await res.json()).code).toBe("ERR_SESSION_INVALID");
    });

    it("slides the expiry on use (at most once per updateAge) but never past absoluteMaxAge", async () => {
      const { token } = await signIn("erin");
      advance(30 * 60);
      const early = await get("/auth/session", withCookie(token!));
      expect(cookieFrom(early, "erebus_session")).toBeUndefined(); // younger than updateAge: no write
      advance(20 * HOUR);
      const refreshed = await get("/auth/session", withCookie(token!));
      expect(refreshed.status).toBe(200);
      expect(cookieFrom(refreshed, "erebus_session")?.value).toBe(token);
      advance(20 * HOUR); // 40h after sign-in: past the first expiry, inside the refreshed one
      expect((await get("/auth/session", withCookie(token!))).status).toBe(200);
      for (let i = 0; i < 3; i++) {
        advance(12 * HOUR);
        await get("/auth/session", withCookie(token!));
      }
      advance(1); // 76h after sign-in: past absoluteMaxAge however much it was used
      expect((await get("/auth/session", withCookie(token!))).status).toBe(401);
    });

    it("revokes on sign-out, for cookie and Bearer sessions", async () => {
      const { token } = await signIn("frank");
      const out = await post("/auth/sign-out", {}, withCookie(token!));
      expect(out.status).toBe(204);
      expect(cookieFrom(out, "erebus_session")?.attributes).toMatch(/Max-Age=0/);
      expect((await get("/auth/session", withCookie(token!))).status).toBe(401);

      const bearer = (await signIn("frank", { "erebus-session-transport": "bearer" })).body.session.token!;
      expect((await post("/auth/sign-out", {}, { authorization: `Bearer ${bearer}` })).status).toBe(204);
      expect((await get("/api/me", { authorization: `Bearer ${bearer}` })).status).toBe(401);
    });

    it("prunes sessions that expired or were revoked longer ago than asked, and no live one", async () => {
      const revoked = await signIn("pruned_a");
      expect(await auth.api.revokeSession(revoked.token!)).toBe(true);
      advance(2 * HOUR);
      const live = await signIn("pruned_b");
      expect(await auth.api.pruneSessions(HOUR)).toBeGreaterThanOrEqual(1);
      const ids = (await db.query<{ id: string }>("SELECT id FROM erebus_sessions")).rows.map((r) => r.id);
      expect(ids).not.toContain(revoked.body.session.id);
      expect(ids).toContain(live.body.session.id);
      expect((await get("/auth/session", withCookie(live.token!))).status).toBe(200);
    });

    it("rotates the session on sign-in: the session the request came with stops working", async () => {
      const first = await signIn("gina");
      const second = await signIn("gina", withCookie(first.token!));
      expect(second.token).not.toBe(first.token);
      expect((await get("/auth/session", withCookie(first.token!))).status).toBe(401);
      expect((await get("/auth/session", withCookie(second.token!))).status).toBe(200);
    });

    it("stops a deactivated user's sessions at once, also when deactivated by hand in SQL", async () => {
      const { token, body } = await signIn("hank");
      const bearer = (await signIn("hank", { "erebus-session-transport": "bearer" })).body.session.token!;
      await db.query("UPDATE user_references SET is_active = false WHERE id = $1", [body.user.id]);
      const viaCookie = await get("/auth/session", withCookie(token!));
      expect(viaCookie.status).toBe(403);
      expect((await viaCookie.json()).code).toBe("ERR_USER_DEACTIVATED");
      expect((await get("/api/me", { authorization: `Bearer ${bearer}` })).status).toBe(403);
      const again = await post("/auth/test/sign-in", { handle: "hank" });
      expect(again.status).toBe(403);
      expect((await again.json()).code).toBe("ERR_USER_DEACTIVATED");

      await auth.api.reactivateUser(body.user.id);
      await auth.api.deactivateUser(body.user.id); // the API also revokes every session
      await auth.api.reactivateUser(body.user.id);
      expect((await get("/auth/session", withCookie(token!))).status).toBe(401);
    });

    it("refuses cross-site state changes carrying the session cookie", async () => {
      const { token } = await signIn("ivy");
      const evil = await post("/api/things", {}, { ...withCookie(token!), origin: "http://evil.example" });
      expect(evil.status).toBe(403);
      expect((await evil.json()).code).toBe("ERR_ORIGIN_FORBIDDEN");
      const fetchMeta = await fetch(`${server.url}/api/things`, { method: "POST", headers: { ...withCookie(token!), "sec-fetch-site": "cross-site" } });
      expect(fetchMeta.status).toBe(403);
      expect((await post("/api/things", {}, withCookie(token!))).status).toBe(201);
      // Login CSRF: a cross-site page cannot sign a visitor in, nor out.
      const login = await post("/auth/test/sign-in", { handle: "mallory" }, { origin: "http://evil.example" });
      expect(login.status).toBe(403);
      const out = await post("/auth/sign-out", {}, { ...withCookie(token!), origin: "null" });
      expect(out.status).toBe(403);
      const sandboxed = await post("/auth/sign-out", {}, { ...withCookie(token!), origin: "null", "sec-fetch-site": "cross-site" });
      expect(sandboxed.status).toBe(403);
      expect((await get("/auth/session", withCookie(token!))).status).toBe(200);
    });

    it("finding 15: ERR_ORIGIN_FORBIDDEN says which origin was expected and which came, and core logs it at debug", async () => {
      const { token } = await signIn("olga");
      debugLog.length = 0;
      const evil = await post("/api/things", {}, { ...withCookie(token!), origin: "http://evil.example" });
      expect(evil.status).toBe(403);
      const problem = (await evil.json()) as { code: string; detail: string };
      expect(problem.code).toBe("ERR_ORIGIN_FORBIDDEN");
      expect(problem.detail).toContain('"http://evil.example"');
      expect(problem.detail).toContain(ORIGIN);
      const login = await post("/auth/test/sign-in", { handle: "mallory" }, { origin: "http://app.test:8080" });
      expect(((await login.json()) as { detail: string }).detail).toMatch(/"http:\/\/app\.test:8080".*http:\/\/app\.test\b/);
      const site = await fetch(`${server.url}/auth/sign-out`, { method: "POST", headers: { ...withCookie(token!), "sec-fetch-site": "cross-site" } });
      expect(((await site.json()) as { detail: string }).detail).toMatch(/Sec-Fetch-Site: cross-site/);
      const nullOrigin = await post("/auth/sign-out", {}, { ...withCookie(token!), origin: "null" });
      expect(((await nullOrigin.json()) as { detail: string }).detail).toMatch(/Origin: null.*same-origin/);
      expect(debugLog).toEqual([
        expect.objectContaining({ message: "cross-site request refused", method: "POST", path: "/api/things", origin: "http://evil.example", expected: [ORIGIN] }),
        expect.objectContaining({ message: "cross-site request refused", origin: "http://app.test:8080" }),
        expect.objectContaining({ message: "cross-site request refused", secFetchSite: "cross-site" }),
        expect.objectContaining({ message: "cross-site request refused", origin: "null" }),
      ]);
    });

    it("finding 12: Sec-Fetch-Site is compared case-insensitively (Cross-Site and SAME-SITE are refused)", async () => {
      const { token } = await signIn("ivan");
      for (const site of ["Cross-Site", "CROSS-SITE", "Same-Site", " cross-site"]) {
        const withCookieOnly = await fetch(`${server.url}/api/things`, { method: "POST", headers: { ...withCookie(token!), "sec-fetch-site": site } });
        expect(withCookieOnly.status, site).toBe(403);
        expect((await withCookieOnly.json()).code).toBe("ERR_ORIGIN_FORBIDDEN");
        const login = await fetch(`${server.url}/auth/test/sign-in`, { method: "POST", headers: { "content-type": "application/json", "sec-fetch-site": site }, body: JSON.stringify({ handle: "mallory" }) });
        expect(login.status, site).toBe(403);
        const nullOrigin = await post("/auth/sign-out", {}, { ...withCookie(token!), origin: "null", "sec-fetch-site": site });
        expect(nullOrigin.status, site).toBe(403);
      }
      // A same-origin form on a no-referrer page still passes, whatever the case.
      expect((await post("/auth/sign-out", {}, { ...withCookie(token!), origin: "null", "sec-fetch-site": "Same-Origin" })).status).toBe(204);
    });

    it("finding 12: a malformed Authorization: Bearer header is 401 problem+json, never silently ignored", async () => {
      const { token } = await signIn("jill");
      for (const header of ["Bearer", "Bearer ", "Bearer !!!", "Bearer a b", `Bearer ${"a".repeat(1025)}`, "bearer \"x\""]) {
        for (const path of ["/api/public", "/api/me", "/auth/session"]) {
          // With a genuine cookie too: the bad explicit credential must not fall back to the cookie.
          const res = await get(path, { authorization: header, ...withCookie(token!) });
          expect(res.status, `${path} ${header}`).toBe(401);
          expect(res.headers.get("content-type")).toMatch(/^application\/problem\+json/);
          expect(await res.json()).toMatchObject({ code: "ERR_SESSION_INVALID" });
        }
      }
      // Another scheme is not ours to judge: the request goes on as it would without it.
      expect((await get("/api/public", { authorization: "Basic dXNlcjpwYXNz" })).status).toBe(200);
      expect((await get("/api/me", { authorization: "Basic dXNlcjpwYXNz", ...withCookie(token!) })).status).toBe(200);
    });

    it("lets a provider's header authenticator set req.auth, and enforces scopes and user types", async () => {
      await signIn("kim");
      const me = await get("/api/me", { "x-test-key": "kim" });
      expect(await me.json()).toMatchObject({ via: "test_key", scopes: ["read"], credentialId: "kim", user: { source_identifier: "kim" } });
      expect((await get("/api/read", { "x-test-key": "kim" })).status).toBe(200);
      const trade = await get("/api/trade", { "x-test-key": "kim" });
      expect(trade.status).toBe(403);
      expect(await trade.json()).toMatchObject({ code: "ERR_SCOPE_MISSING", scope: "trade" });
      const wrongType = await get("/api/agents-only", { "x-test-key": "kim" });
      expect(wrongType.status).toBe(403);
      expect((await wrongType.json()).code).toBe("ERR_USER_TYPE_FORBIDDEN");
      const bad = await get("/api/me", { "x-test-key": "nobody_here" });
      expect(bad.status).toBe(401);
      expect((await bad.json()).code).toBe("ERR_TEST_KEY_INVALID");
      expect((await get("/api/trade")).status).toBe(401);
    });

    it("renders bad input as problem+json 4xx", async () => {
      const raw = (body: string, type = "application/json") =>
        fetch(`${server.url}/auth/test/sign-in`, { method: "POST", headers: { "content-type": type, origin: ORIGIN }, body });
      const cases: [Response, number, string][] = [
        [await raw("{not json"), 400, "ERR_BODY_MALFORMED"],
        [await raw('"a string"'), 400, "ERR_BODY_MALFORMED"],
        [await raw(JSON.stringify({ handle: "UPPER" })), 400, "ERR_BODY_INVALID"],
        [await raw(JSON.stringify({ handle: "ok", extra: 1 })), 400, "ERR_BODY_INVALID"],
        [await raw("handle=a", "application/x-www-form-urlencoded"), 415, "ERR_UNSUPPORTED_MEDIA_TYPE"],
        [await raw("handle", "text/plain"), 415, "ERR_UNSUPPORTED_MEDIA_TYPE"],
        [await raw(JSON.stringify({ handle: "a".repeat(20_000) })), 413, "ERR_BODY_TOO_LARGE"],
        [await get("/auth/nowhere"), 404, "ERR_NOT_FOUND"],
      ];
      for (const [res, status, code] of cases) {
        expect(res.status).toBe(status);
        expect(res.headers.get("content-type")).toMatch(/^application\/problem\+json/);
        const problem = await res.json();
        expect(problem).toMatchObject({ status, code, type: `urn:erebus:error:${code}`, title: expect.any(String) });
      }
      const invalid = await raw(JSON.stringify({ handle: 5 }));
      expect(await invalid.json()).toMatchObject({ field: "handle" });
    });
  });
}
