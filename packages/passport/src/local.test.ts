import { randomBytes, scryptSync, timingSafeEqual } from "node:crypto";
import fc from "fast-check";
import { Strategy as LocalStrategy } from "passport-local";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import * as z from "zod";
import { defineSourceType, silentLogger, type Database, type ErebusAuth } from "@erebus/core";
import { engines, startAuthServer, cookieFrom, tableRowCounts, type Running } from "@erebus/core/testing";
import { passportProvider } from "./index.js";

/** The app's own account table, as an app on passport-local has one: scrypt password hashes. */
const APP_USERS = `CREATE TABLE IF NOT EXISTS app_users (id TEXT PRIMARY KEY, username TEXT UNIQUE NOT NULL, salt TEXT NOT NULL, hash TEXT NOT NULL)`;
const hashOf = (password: string, salt: string) => scryptSync(password, salt, 32, { N: 1024 }).toString("hex");
async function addUser(db: Database, username: string, password: string): Promise<string> {
  const id = `u_${randomBytes(6).toString("hex")}`;
  const salt = randomBytes(8).toString("hex");
  await db.query("INSERT INTO app_users (id, username, salt, hash) VALUES ($1, $2, $3, $4)", [id, username, salt, hashOf(password, salt)]);
  return id;
}

export const localAccount = defineSourceType("local_account", { username: z.string(), metadata: z.record(z.string(), z.unknown()).optional() });

/** What PostgreSQL refuses in text and jsonb. */
const ORIGIN = "http://app.test";
const UNSTORABLE = ["\u0000", "\ud800", "\udfff", "a\u0000b", "x\ud800", "\udfffy", "\udfff\ud800"];
/** Percent-encodes, lone surrogates as the WTF-8 bytes a hostile client can send (encodeURIComponent would throw). */
const encodeRaw = (value: string) =>
  [...value]
    .map((ch) => {
      const code = ch.charCodeAt(0);
      if (ch.length === 1 && code >= 0xd800 && code <= 0xdfff) return [0xe0 | (code >> 12), 0x80 | ((code >> 6) & 0x3f), 0x80 | (code & 0x3f)].map((b) => `%${b.toString(16).toUpperCase()}`).join("");
      return encodeURIComponent(ch);
    })
    .join("");
const hostile = fc.oneof(
  fc.string({ maxLength: 30 }),
  fc.tuple(fc.string({ maxLength: 10 }), fc.constantFrom(...UNSTORABLE), fc.string({ maxLength: 10 })).map(([a, bad, b]) => `${a}${bad}${b}`),
);

for (const engine of engines({ postgresUrl: inject("postgresUrl") })) {
  describe(`passport-local as an Erebus form provider on ${engine.name}`, () => {
    let db: Database;
    let auth: ErebusAuth;
    let server: Running;
    let limited: { auth: ErebusAuth; server: Running; db: Database };
    let verifyCalls = 0;

    function localStrategy(database: () => Database) {
      return new LocalStrategy(async (username, password, done) => {
        verifyCalls++;
        try {
          const { rows } = await database().query<{ id: string; username: string; salt: string; hash: string }>("SELECT * FROM app_users WHERE username = $1", [username]);
          const row = rows[0];
          // Compare against a dummy hash for unknown users too, so both cost the same.
          const expected = Buffer.from(row?.hash ?? "00".repeat(32), "hex");
          const ok = timingSafeEqual(Buffer.from(hashOf(password, row?.salt ?? "none"), "hex"), expected) && row !== undefined;
          return ok ? done(null, { id: row.id, username: row.username }) : done(null, false, { message: row ? "Incorrect password" : "Unknown user" });
        } catch (error) {
          return done(error);
        }
      });
    }
    const provider = (database: () => Database, attemptsPerMinute = 1000) =>
      passportProvider({
        id: "local",
        strategy: localStrategy(database),
        sourceTypes: [localAccount],
        toIdentity: (user) => {
          const u = user as { id: string; username: string };
          return { network: "local", sourceIdentifier: u.id, sourceType: { type: "local_account", username: u.username } };
        },
        successRedirect: "/welcome",
        errorRedirect: "/login",
        attemptsPerMinute,
      });

    const post = (body: string, headers: Record<string, string> = {}, base = server) =>
      fetch(`${base.url}/auth/passport/local`, { method: "POST", redirect: "manual", headers: { origin: ORIGIN, "content-type": "application/json", ...headers }, body });

    beforeAll(async () => {
      db = await engine.create();
      await db.query(APP_USERS);
      ({ auth, server } = await startAuthServer({ database: db, baseURL: ORIGIN, providers: [provider(() => db)], logger: silentLogger, rateLimit: { enabled: false } }));
      const limitedDb = await engine.create();
      await limitedDb.query(APP_USERS);
      const l = await startAuthServer({ database: limitedDb, baseURL: "http://app.test", providers: [provider(() => limitedDb, 3)], logger: silentLogger });
      limited = { ...l, db: limitedDb };
      await addUser(db, "alice", "correct horse");
      await addUser(limitedDb, "alice", "correct horse");
    });
    afterAll(async () => {
      // auth.close(): the session cache first, then the database (closing only the database can leave the cache's LISTEN holding the pool).
      await server?.close();
      await limited?.server.close();
      await (auth ? auth.close() : db?.close());
      await (limited ? limited.auth.close() : undefined);
    });

    it("signs in with JSON credentials: the app's user becomes one user_references row and a session", async () => {
      const res = await post(JSON.stringify({ username: "alice", password: "correct horse" }));
      expect(res.status).toBe(200);
      const body = (await res.json()) as { user: { id: string; network: string; source_type: Record<string, unknown> } };
      expect(body.user).toMatchObject({ network: "local", source_type: { type: "local_account", username: "alice" } });
      const cookie = cookieFrom(res, "erebus_session")!;
      expect(cookie.attributes).toMatch(/HttpOnly/i);
      const session = await fetch(`${server.url}/auth/session`, { headers: { cookie: `erebus_session=${cookie.value}` } });
      expect(session.status).toBe(200);
      expect(((await session.json()) as { user: { id: string } }).user.id).toBe(body.user.id);
      const again = await post(JSON.stringify({ username: "alice", password: "correct horse" }));
      expect(((await again.json()) as { user: { id: string } }).user.id).toBe(body.user.id);
    });

    it("signs in from a plain HTML form: 303 to successRedirect with the session cookie", async () => {
      const res = await post(new URLSearchParams({ username: "alice", password: "correct horse" }).toString(), {
        "content-type": "application/x-www-form-urlencoded",
        accept: "text/html,application/xhtml+xml",
      });
      expect(res.status).toBe(303);
      expect(res.headers.get("location")).toBe("/welcome");
      expect(cookieFrom(res, "erebus_session")?.value).toMatch(/^[A-Za-z0-9_-]{43}$/);
    });

    it("refuses a wrong password and an unknown user alike (401, the strategy's message not passed on), writing nothing", async () => {
      const before = await tableRowCounts(db, { ignore: ["erebus_rate_limits"] });
      const wrong = await post(JSON.stringify({ username: "alice", password: "wrong" }));
      const unknown = await post(JSON.stringify({ username: "mallory", password: "wrong" }));
      for (const res of [wrong, unknown]) {
        expect(res.status).toBe(401);
        expect(res.headers.get("content-type")).toMatch(/^application\/problem\+json/);
        const problem = (await res.json()) as Record<string, unknown>;
        expect(problem.code).toBe("ERR_PASSPORT_CREDENTIALS_INVALID");
        expect(JSON.stringify(problem)).not.toMatch(/Incorrect|Unknown user/);
      }
      expect(await tableRowCounts(db, { ignore: ["erebus_rate_limits"] })).toEqual(before);
    });

    it("sends a browser's refused form post back to errorRedirect with the code", async () => {
      const res = await post(new URLSearchParams({ username: "alice", password: "nope" }).toString(), { "content-type": "application/x-www-form-urlencoded", accept: "text/html" });
      expect(res.status).toBe(303);
      expect(res.headers.get("location")).toBe("/login?error=ERR_PASSPORT_CREDENTIALS_INVALID");
      expect(res.headers.getSetCookie().join()).not.toMatch(/erebus_session=[A-Za-z0-9]/);
    });

    it("attack: a cross-site form POST (login CSRF) is refused before the strategy runs, with or without Origin", async () => {
      const calls = verifyCalls;
      const form = new URLSearchParams({ username: "alice", password: "correct horse" }).toString();
      const before = await tableRowCounts(db, { ignore: ["erebus_rate_limits"] });
      for (const headers of [
        { origin: "https://evil.example" },
        { origin: "null", "sec-fetch-site": "cross-site" },
        { origin: "", "sec-fetch-site": "cross-site" },
        { origin: "", "sec-fetch-site": "same-site" },
      ]) {
        const h: Record<string, string> = { "content-type": "application/x-www-form-urlencoded", accept: "text/html", ...headers };
        if (h.origin === "") delete h.origin;
        const res = await fetch(`${server.url}/auth/passport/local`, { method: "POST", redirect: "manual", headers: h, body: form });
        expect(res.status).toBe(403);
        expect(((await res.json()) as { code: string }).code).toBe("ERR_ORIGIN_FORBIDDEN");
        expect(res.headers.getSetCookie().join()).not.toMatch(/erebus_session=[A-Za-z0-9]/);
      }
      expect(verifyCalls).toBe(calls);
      expect(await tableRowCounts(db, { ignore: ["erebus_rate_limits"] })).toEqual(before);
    });

    it("refuses bodies the strategy is not given: other fields, text/plain, missing fields (400/415), without running it", async () => {
      const calls = verifyCalls;
      const extra = await post(JSON.stringify({ username: "alice", password: "correct horse", admin: true }));
      expect(extra.status).toBe(400);
      expect(((await extra.json()) as { code: string }).code).toBe("ERR_BODY_INVALID");
      const missing = await post(JSON.stringify({ username: "alice" }));
      expect(((await missing.json()) as { code: string }).code).toBe("ERR_BODY_INVALID");
      const plain = await post("username=alice&password=correct+horse", { "content-type": "text/plain" });
      expect(plain.status).toBe(415);
      expect(verifyCalls).toBe(calls);
    });

    it("counts attempts per client on the provider's own shared limit: the 4th is 429, even with the right password", async () => {
      const url = `${limited.server.url}/auth/passport/local`;
      const send = (password: string) =>
        fetch(url, { method: "POST", headers: { origin: "http://app.test", "content-type": "application/json" }, body: JSON.stringify({ username: "alice", password }) });
      expect((await send("wrong")).status).toBe(401);
      expect((await send("wrong")).status).toBe(401);
      expect((await send("wrong")).status).toBe(401);
      const fourth = await send("correct horse");
      expect(fourth.status).toBe(429);
      expect(((await fourth.json()) as { code: string }).code).toBe("ERR_RATE_LIMITED");
      expect(fourth.headers.get("retry-after")).toMatch(/^\d+$/);
      const { rows } = await limited.db.query<{ key: string }>("SELECT key FROM erebus_rate_limits");
      expect(rows.some((r) => r.key.includes("passport-local:attempts"))).toBe(true);
    });

    it("refuses a deactivated user (403 ERR_USER_DEACTIVATED) and starts no session", async () => {
      await addUser(db, "dora", "pw-dora");
      const first = await post(JSON.stringify({ username: "dora", password: "pw-dora" }));
      const { user } = (await first.json()) as { user: { id: string } };
      await auth.api.deactivateUser(user.id);
      const sessions = (await db.query<{ n: number }>("SELECT count(*)::int AS n FROM erebus_sessions WHERE user_id = $1", [user.id])).rows[0]!.n;
      const res = await post(JSON.stringify({ username: "dora", password: "pw-dora" }));
      expect(res.status).toBe(403);
      expect(((await res.json()) as { code: string }).code).toBe("ERR_USER_DEACTIVATED");
      expect((await db.query<{ n: number }>("SELECT count(*)::int AS n FROM erebus_sessions WHERE user_id = $1", [user.id])).rows[0]!.n).toBe(sessions);
    });

    it("link intent: POST ?intent=link with a fresh session attaches the account to the signed-in person; credentials in the query are refused", async () => {
      const hana = await addUser(db, "hana", "pw-hana");
      const hana2 = await addUser(db, "hana2", "pw-hana2");
      const first = await post(JSON.stringify({ username: "hana", password: "pw-hana" }));
      const cookie = `erebus_session=${cookieFrom(first, "erebus_session")!.value}`;
      const linked = await fetch(`${server.url}/auth/passport/local?intent=link`, {
        method: "POST",
        headers: { origin: ORIGIN, "content-type": "application/json", cookie },
        body: JSON.stringify({ username: "hana2", password: "pw-hana2" }),
      });
      expect(linked.status).toBe(200);
      const me = (await (await fetch(`${server.url}/auth/session`, { headers: { cookie } })).json()) as { person: { identities: { source_identifier: string }[] } };
      expect(me.person.identities.map((i) => i.source_identifier).sort()).toEqual([hana, hana2].sort());
      const noSession = await fetch(`${server.url}/auth/passport/local?intent=link`, { method: "POST", headers: { origin: ORIGIN, "content-type": "application/json" }, body: JSON.stringify({ username: "hana2", password: "pw-hana2" }) });
      expect(noSession.status).toBe(401);
      const calls = verifyCalls;
      const inQuery = await fetch(`${server.url}/auth/passport/local?username=hana&password=pw-hana`, { method: "POST", headers: { origin: ORIGIN, "content-type": "application/json" }, body: JSON.stringify({ username: "x", password: "y" }) });
      expect(inQuery.status).toBe(400);
      expect(((await inQuery.json()) as { code: string }).code).toBe("ERR_QUERY_INVALID");
      expect(verifyCalls).toBe(calls);
    });

    it("fuzz: NUL and lone surrogates in every field, as JSON and as a form: 4xx problem+json, 0 × 5xx, 0 rows", async () => {
      const before = await tableRowCounts(db, { ignore: ["erebus_rate_limits"] });
      let fiveHundreds = 0;
      await fc.assert(
        fc.asyncProperty(hostile, hostile, fc.boolean(), async (username, password, asForm) => {
          const res = asForm
            ? await post(`username=${encodeRaw(username)}&password=${encodeRaw(password)}`, { "content-type": "application/x-www-form-urlencoded" })
            : await post(JSON.stringify({ username, password }));
          if (res.status >= 500) fiveHundreds++;
          expect(res.status).toBeGreaterThanOrEqual(400);
          expect(res.status).toBeLessThan(500);
          expect(res.headers.get("content-type")).toMatch(/^application\/problem\+json/);
        }),
        { numRuns: 60 },
      );
      // Lone surrogates as WTF-8 bytes in a form body (what a hostile client can put on the wire).
      for (const raw of ["username=%ED%A0%80&password=x", "username=a%00b&password=x", "username=alice&password=%ED%BF%BF", "username=%C0%80&password=x"]) {
        const res = await post(raw, { "content-type": "application/x-www-form-urlencoded" });
        if (res.status >= 500) fiveHundreds++;
        expect(res.status, raw).toBeLessThan(500);
      }
      expect(fiveHundreds).toBe(0);
      expect(await tableRowCounts(db, { ignore: ["erebus_rate_limits"] })).toEqual(before);
    });
  });
}
