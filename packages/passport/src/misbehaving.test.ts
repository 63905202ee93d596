import type { Request } from "express";
import { Strategy as CustomStrategy } from "passport-custom";
import { Strategy } from "passport-strategy";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import * as z from "zod";
import { defineSourceType, type Database, type ErebusAuth, type Logger } from "@erebus/core";
import { engines, startAuthServer, tableRowCounts, type Running } from "@erebus/core/testing";
import { passportProvider } from "./index.js";

const ORIGIN = "http://app.test";
const customAccount = defineSourceType("custom_account", { name: z.string() });
const toIdentity = (user: unknown) => {
  const u = user as { id: string };
  if (typeof u?.id !== "string") throw new TypeError("no id");
  return { network: "custom", sourceIdentifier: u.id, sourceType: { type: "custom_account", name: u.id } };
};

/** A strategy that does whatever the request's `mode` says, straight through Passport's actions. */
class Misbehaving extends Strategy {
  name = "misbehaving";
  override authenticate(req: Request): void {
    const mode = String((req.body as { mode?: unknown } | undefined)?.mode ?? req.query.mode ?? req.headers["x-odd"] ?? "");
    switch (mode) {
      case "fail-400": return this.fail(400);
      case "fail-crlf": return this.fail('Basic realm="x"\r\nSet-Cookie: evil=1', 999);
      case "fail-200": return this.fail({ message: "fine" }, 200);
      case "fail-object": return this.fail({ message: "a\u0000b\ud800", type: "x" }, 418);
      case "pass": return this.pass();
      case "redirect": return this.redirect("https://evil.example/steal");
      case "sync-throw": throw new Error("boom");
      case "throw-string": throw "not an error";
      case "success-undefined": return this.success(undefined);
      case "bad-identity": return this.success({ id: "a\u0000b" });
      case "success-then-fail":
        this.success({ id: "first" });
        return this.fail(401);
      case "success": return this.success({ id: "raw-user" });
      case "never": return;
      default: return this.fail(401);
    }
  }
}

for (const engine of engines({ postgresUrl: inject("postgresUrl") })) {
  describe(`misbehaving strategies on ${engine.name}: the first action settles, nothing is ever a 500`, () => {
    let db: Database;
    let auth: ErebusAuth;
    let server: Running;
    const warnings: string[] = [];
    const logger: Logger = { debug: () => undefined, info: () => undefined, warn: (m, f) => warnings.push(`${m} ${JSON.stringify(f)}`), error: (m, f) => warnings.push(`ERROR ${m} ${JSON.stringify(f)}`) };

    // passport-custom: the verify callback decides, through done(err, user, info).
    const custom = new CustomStrategy((req, done) => {
      const mode = String((req.body as { mode?: unknown }).mode);
      switch (mode) {
        case "twice":
          done(null, { id: "twice-first" });
          return done(null, { id: "twice-second" });
        case "success-then-error":
          done(null, { id: "ste" });
          return done(new Error("late"));
        case "never": return;
        case "late": {
          setTimeout(() => done(null, { id: "too-late" }), 450);
          return;
        }
        case "throws": throw new Error("verify threw");
        case "db-down": return done(Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:5432"), { code: "ECONNREFUSED" }));
        case "fail-empty": return done(null, false);
        case "fail-odd": return done(null, false, { message: "\u0000\ud800", status: 999 } as never);
        default: return done(null, false);
      }
    });

    beforeAll(async () => {
      db = await engine.create();
      ({ auth, server } = await startAuthServer(
        {
          database: db,
          baseURL: ORIGIN,
          logger,
          rateLimit: { enabled: false },
          providers: [
            passportProvider({ id: "custom", strategy: custom, kind: "form", toIdentity, sourceTypes: [customAccount], timeout: 300 }),
            passportProvider({ id: "raw", strategy: new Misbehaving(), kind: "form", toIdentity, sourceTypes: [], emits: ["custom_account"], timeout: 300 }),
            passportProvider({ id: "rawredirect", strategy: new Misbehaving(), kind: "redirect", toIdentity, emits: ["custom_account"], timeout: 300, errorRedirect: "/oops" }),
            passportProvider({ id: "rawheader", strategy: new Misbehaving(), kind: "header", header: "x-odd", toIdentity, emits: ["custom_account"], timeout: 300 }),
          ],
        },
        (app, a) => app.get("/api/me", a.requireUser(), (req, res) => res.json({ user: req.auth!.user, via: req.auth!.via })),
      ));
    });
    afterAll(async () => {
      // auth.close(): the session cache first, then the database (closing only the database can leave the cache's LISTEN holding the pool).
      await server?.close();
      await (auth ? auth.close() : db?.close());
    });

    const post = (id: string, mode: string) =>
      fetch(`${server.url}/auth/passport/${id}`, { method: "POST", redirect: "manual", headers: { origin: ORIGIN, "content-type": "application/json" }, body: JSON.stringify({ mode }) });
    const problem = async (res: Response) => {
      expect(res.headers.get("content-type")).toMatch(/^application\/problem\+json/);
      return (await res.json()) as { code: string; status: number };
    };
    const users = async () => (await db.query<{ id: string; source_identifier: string }>("SELECT id, source_identifier FROM user_references WHERE network = 'custom'")).rows;

    it("a verify callback that calls done twice: the first user signs in, the second call is ignored and logged", async () => {
      const res = await post("custom", "twice");
      expect(res.status).toBe(200);
      expect(((await res.json()) as { user: { source_identifier: string } }).user.source_identifier).toBe("twice-first");
      expect((await users()).map((u) => u.source_identifier)).not.toContain("twice-second");
      expect(warnings.some((w) => w.includes("acted after its attempt had settled") && w.includes('"then":"success"'))).toBe(true);
      const ste = await post("custom", "success-then-error");
      expect(ste.status).toBe(200);
      expect(warnings.some((w) => w.includes('"then":"error"'))).toBe(true);
      const raw = await post("raw", "success-then-fail");
      expect(raw.status).toBe(200);
    });

    it("a strategy that never acts is ended with 503 ERR_PASSPORT_TIMEOUT (Retry-After); one that acts too late writes nothing", async () => {
      const before = await tableRowCounts(db, { ignore: ["erebus_rate_limits"] });
      const started = Date.now();
      const res = await post("custom", "never");
      expect(res.status).toBe(503);
      expect((await problem(res)).code).toBe("ERR_PASSPORT_TIMEOUT");
      expect(res.headers.get("retry-after")).toBe("5");
      expect(Date.now() - started).toBeGreaterThanOrEqual(290);
      const late = await post("custom", "late");
      expect((await problem(late)).code).toBe("ERR_PASSPORT_TIMEOUT");
      await new Promise((r) => setTimeout(r, 300));
      expect(warnings.some((w) => w.includes("acted after") && w.includes('"first":"timeout"'))).toBe(true);
      expect(await tableRowCounts(db, { ignore: ["erebus_rate_limits"] })).toEqual(before);
    });

    it("a strategy or verify callback that throws is 502 ERR_PASSPORT_STRATEGY_ERROR; a database connection error is 503", async () => {
      for (const [id, mode] of [["custom", "throws"], ["raw", "sync-throw"], ["raw", "throw-string"]] as const) {
        const res = await post(id, mode);
        expect(res.status, mode).toBe(502);
        expect((await problem(res)).code).toBe("ERR_PASSPORT_STRATEGY_ERROR");
        expect(JSON.stringify(await fetch(`${server.url}/auth/openapi.json`).then((r) => r.status))).toBe("200");
      }
      const down = await post("custom", "db-down");
      expect(down.status).toBe(503);
      expect((await problem(down)).code).toBe("ERR_DATABASE_UNAVAILABLE");
    });

    it("fails with odd challenges and statuses: a 401 or 400 problem, the strategy's challenge and message never reach the response", async () => {
      const cases: [string, string, number, string][] = [
        ["custom", "fail-empty", 401, "ERR_PASSPORT_CREDENTIALS_INVALID"],
        ["custom", "fail-odd", 401, "ERR_PASSPORT_CREDENTIALS_INVALID"],
        ["raw", "fail-400", 400, "ERR_PASSPORT_CREDENTIALS_MISSING"],
        ["raw", "fail-crlf", 401, "ERR_PASSPORT_CREDENTIALS_INVALID"],
        ["raw", "fail-200", 401, "ERR_PASSPORT_CREDENTIALS_INVALID"],
        ["raw", "fail-object", 401, "ERR_PASSPORT_CREDENTIALS_INVALID"],
        ["raw", "pass", 400, "ERR_PASSPORT_CREDENTIALS_MISSING"],
      ];
      for (const [id, mode, status, code] of cases) {
        const res = await post(id, mode);
        expect(res.status, mode).toBe(status);
        const body = await problem(res);
        expect(body.code, mode).toBe(code);
        expect(res.headers.getSetCookie().join(), mode).not.toContain("evil");
        expect(JSON.stringify(body), mode).not.toMatch(/realm|fine|\\u0000/);
      }
    });

    it("a form strategy that redirects is 502 (no Location to where it wanted); a user toIdentity cannot map is 502, an unstorable identity 400", async () => {
      const redirect = await post("raw", "redirect");
      expect(redirect.status).toBe(502);
      expect(redirect.headers.get("location")).toBeNull();
      const unmappable = await post("raw", "success-undefined");
      expect(unmappable.status).toBe(502);
      expect((await problem(unmappable)).code).toBe("ERR_PASSPORT_PROFILE_INVALID");
      const bad = await post("raw", "bad-identity");
      expect(bad.status).toBe(400);
      expect((await problem(bad)).code).toBe("ERR_IDENTITY_INVALID");
    });

    it("redirect kind: a start that never acts is 503 (a browser is sent to errorRedirect); review: a strategy that answers the start at once is refused (a GET sign-in with no state is login CSRF)", async () => {
      const json = await fetch(`${server.url}/auth/passport/rawredirect?mode=never`, { headers: { accept: "application/json" }, redirect: "manual" });
      expect(json.status).toBe(503);
      expect((await problem(json)).code).toBe("ERR_PASSPORT_TIMEOUT");
      const browser = await fetch(`${server.url}/auth/passport/rawredirect?mode=fail`, { headers: { accept: "text/html" }, redirect: "manual" });
      expect(browser.status).toBe(302);
      expect(browser.headers.get("location")).toBe("/oops?error=ERR_PASSPORT_DENIED");
      const direct = await fetch(`${server.url}/auth/passport/rawredirect?mode=success`, { headers: { accept: "application/json" }, redirect: "manual" });
      expect(direct.status).toBe(502);
      expect((await problem(direct)).code).toBe("ERR_PASSPORT_STRATEGY_ERROR");
      expect(direct.headers.getSetCookie().some((c) => c.startsWith("erebus_session="))).toBe(false);
      const crossSite = await fetch(`${server.url}/auth/passport/rawredirect?mode=success`, { headers: { accept: "text/html", "sec-fetch-site": "cross-site" }, redirect: "manual" });
      expect(crossSite.status).toBe(302);
      expect(crossSite.headers.get("location")).toBe("/oops?error=ERR_PASSPORT_STRATEGY_ERROR");
    });

    it("header kind: success sets req.auth; fail is 401, a throw 502, never acting 503; no header → the strategy is not run", async () => {
      const me = (mode?: string) => fetch(`${server.url}/api/me`, { headers: mode ? { "x-odd": mode } : {} });
      const ok = await me("success");
      expect(ok.status).toBe(200);
      expect(await ok.json()).toMatchObject({ via: "passport:rawheader", user: { source_identifier: "raw-user" } });
      expect((await problem(await me("fail-crlf"))).code).toBe("ERR_PASSPORT_CREDENTIALS_INVALID");
      expect((await me("sync-throw")).status).toBe(502);
      expect((await me("never")).status).toBe(503);
      expect((await me("pass")).status).toBe(401); // pass: not mine, and nobody else signed the request in
      expect((await problem(await me())).code).toBe("ERR_UNAUTHENTICATED");
    });

    it("never answered 500: every 5xx core logged is one of the designed 502/503 codes", () => {
      const fiveHundreds = warnings.filter((w) => w.startsWith("ERROR request failed"));
      expect(fiveHundreds.length).toBeGreaterThan(0);
      for (const line of fiveHundreds) expect(line).toMatch(/"code":"(ERR_PASSPORT_TIMEOUT|ERR_PASSPORT_STRATEGY_ERROR|ERR_PASSPORT_PROFILE_INVALID|ERR_DATABASE_UNAVAILABLE)"/);
    });
  });
}
