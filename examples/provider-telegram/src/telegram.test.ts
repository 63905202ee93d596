import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { createAuth, silentLogger, type Database, type ErebusAuth } from "@erebus/core";
// Only the published testing entry: the engines (PGlite, and the PostgreSQL server the suite's
// global setup started, or one of the kit's own), a listening app, cookies, row counts.
import { cookieFrom, engines, rowCounts, startAuthServer, type Running } from "@erebus/core/testing";
import { signTelegramAuthData, telegramProvider } from "./index.js";
import { usedLoginsMigration } from "./migrations.js";

const ORIGIN = "http://app.test";
const BOT_TOKEN = "110201543:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw";
const OTHER_BOT_TOKEN = "987654321:AAGotherBotTokenNotOursAtAll_0123";
/** What PostgreSQL refuses in text: NUL and unpaired surrogates. */
const UNSTORABLE = ["\u0000", "\ud800", "\udfff"];

for (const engine of engines({ postgresUrl: inject("postgresUrl") })) {
  describe(`Telegram login on ${engine.name}`, () => {
    let db: Database;
    let server: Running;
    let auth: ErebusAuth;
    let now = new Date("2026-05-01T09:00:00Z");
    const seconds = () => String(Math.floor(now.getTime() / 1000));
    let nextId = 1000;

    /** A login as the widget would sign it for our bot, dated now unless told. */
    const login = (fields: Record<string, string> = {}, token = BOT_TOKEN) =>
      signTelegramAuthData(token, { id: String(nextId++), first_name: "Ada", last_name: "Lovelace", username: "ada_l", photo_url: "https://t.me/i/userpic/320/ada.jpg", auth_date: seconds(), ...fields });

    const post = async (body: unknown, headers: Record<string, string> = {}) => {
      const res = await fetch(`${server.url}/auth/telegram/verify`, {
        method: "POST",
        redirect: "manual",
        headers: { "content-type": "application/json", origin: ORIGIN, ...headers },
        body: typeof body === "string" ? body : JSON.stringify(body),
      });
      const text = await res.text();
      let json: any = text;
      try {
        json = JSON.parse(text);
      } catch {}
      return { status: res.status, body: json, res };
    };
    const callback = (query: Record<string, string>, headers: Record<string, string> = {}) =>
      fetch(`${server.url}/auth/telegram/callback?${new URLSearchParams(query)}`, { redirect: "manual", headers });
    const counts = async () => {
      const { rows } = await db.query<{ used: number }>("SELECT count(*)::int AS used FROM erebus_verifications WHERE provider = 'telegram'");
      return { ...(await rowCounts(db)), used: rows[0]!.used };
    };
    /** A refusal: 4xx problem+json with `code`, and not one row written anywhere. */
    async function expectRefused(body: unknown, status: number, code: string | RegExp) {
      const before = await counts();
      const answer = await post(body);
      expect(answer.status, JSON.stringify(answer.body)).toBe(status);
      expect(answer.res.headers.get("content-type")).toMatch(/^application\/problem\+json/);
      expect(answer.body.code).toMatch(code);
      expect(answer.res.headers.getSetCookie()).toEqual([]);
      expect(await counts()).toEqual(before);
    }

    beforeAll(async () => {
      db = await engine.create();
      ({ server, auth } = await startAuthServer({
        database: db,
        baseURL: ORIGIN,
        providers: [telegramProvider({ botToken: BOT_TOKEN, appName: "Example App", perClient: 100_000 })],
        logger: silentLogger,
        clock: () => now,
      }));
    });
    afterAll(async () => {
      await server?.close();
      await db?.close();
    });

    it("signs in with the widget's JSON callback object (numbers as numbers) and resolves telegram:<id> with a telegram source type", async () => {
      const data = login();
      const body = { ...data, id: Number(data.id), auth_date: Number(data.auth_date) };
      const answer = await post(body);
      expect(answer.status, JSON.stringify(answer.body)).toBe(200);
      expect(cookieFrom(answer.res, "erebus_session")).toBeDefined();
      expect(answer.body.user).toMatchObject({
        network: "telegram",
        source_identifier: data.id,
        user_type: "external",
        source_type: {
          type: "telegram",
          user_id: data.id,
          first_name: "Ada",
          last_name: "Lovelace",
          username: "ada_l",
          photo_url: "https://t.me/i/userpic/320/ada.jpg",
          metadata: { last_login: now.toISOString(), auth_date: now.toISOString() },
        },
      });
      const session = await fetch(`${server.url}/auth/session`, { headers: { cookie: `erebus_session=${cookieFrom(answer.res, "erebus_session")!.value}` } });
      expect((await session.json()).user.source_identifier).toBe(data.id);
    });

    it("signs in with only the required fields, and the same account twice is one row whose names follow Telegram", async () => {
      const first = login({ id: "777" });
      const { last_name: _l, username: _u, photo_url: _p, hash: _h, ...bare } = first;
      expect((await post(signTelegramAuthData(BOT_TOKEN, bare))).status).toBe(200);
      now = new Date(now.getTime() + 5_000);
      const again = await post(login({ id: "777", first_name: "Augusta" }));
      expect(again.status).toBe(200);
      const { rows } = await db.query<{ n: number; first_name: string }>(
        "SELECT count(*)::int AS n, max(source_type->>'first_name') AS first_name FROM user_references WHERE network = 'telegram' AND source_identifier = '777'",
      );
      expect(rows[0]).toEqual({ n: 1, first_name: "Augusta" });
    });

    it("redirect style: the GET shows a confirm page naming the account and writes nothing; its same-origin form POST signs in (303)", async () => {
      const data = login({ first_name: "<b>Eve</b>" });
      const before = await counts();
      // What a browser sends on the widget's cross-site redirect.
      const page = await callback(data, { accept: "text/html", "sec-fetch-site": "cross-site" });
      expect(page.status).toBe(200);
      expect(page.headers.get("referrer-policy")).toBe("no-referrer");
      expect(page.headers.get("cache-control")).toBe("no-store");
      const html = await page.text();
      // Core's escapeHtml (named entities) is what the page uses.
      expect(html).toContain("&lt;b&gt;Eve&lt;/b&gt;");
      expect(html).not.toContain("<b>Eve</b>");
      expect(html).toContain('<form method="post" action="/auth/telegram/verify">');
      expect(await counts()).toEqual(before);
      // The confirm page is served with no-referrer, so the browser sends Origin: null, Sec-Fetch-Site: same-origin.
      const form = await post(new URLSearchParams(data).toString(), { "content-type": "application/x-www-form-urlencoded", origin: "null", "sec-fetch-site": "same-origin", accept: "text/html" });
      expect(form.status).toBe(303);
      expect(form.res.headers.get("location")).toBe("/");
      expect(cookieFrom(form.res, "erebus_session")).toBeDefined();
      // Used now: the page says so (HTML for a browser, problem+json otherwise).
      const usedPage = await callback(data, { accept: "text/html" });
      expect(usedPage.status).toBe(401);
      expect(await usedPage.text()).toContain("ERR_TELEGRAM_AUTH_USED");
      const usedJson = await callback(data);
      expect(usedJson.status).toBe(401);
      expect(usedJson.headers.get("content-type")).toMatch(/^application\/problem\+json/);
    });

    it("login CSRF: a cross-site POST (JSON or form) of a valid login is refused before it is used", async () => {
      const data = login();
      const before = await counts();
      for (const headers of [
        { origin: "https://evil.example" },
        { origin: "https://evil.example", "content-type": "application/x-www-form-urlencoded" },
      ]) {
        const body = headers["content-type"] ? new URLSearchParams(data).toString() : data;
        const answer = await post(body, headers);
        expect(answer.status).toBe(403);
        expect(answer.body.code).toBe("ERR_ORIGIN_FORBIDDEN");
      }
      // No Origin, but the browser labels it cross-site.
      const labelled = await fetch(`${server.url}/auth/telegram/verify`, { method: "POST", headers: { "content-type": "application/json", "sec-fetch-site": "cross-site" }, body: JSON.stringify(data) });
      expect(labelled.status).toBe(403);
      expect(await counts()).toEqual(before);
      expect((await post(data)).status).toBe(200);
    });

    it("attack: a wrong hash is refused (401 ERR_TELEGRAM_HASH_INVALID)", async () => {
      const data = login();
      await expectRefused({ ...data, hash: data.hash.replace(/^./, (c) => (c === "0" ? "1" : "0")) }, 401, "ERR_TELEGRAM_HASH_INVALID");
      await expectRefused({ ...data, hash: "0".repeat(64) }, 401, "ERR_TELEGRAM_HASH_INVALID");
    });

    it("attack: a login signed with another bot's token is refused", async () => {
      await expectRefused(login({}, OTHER_BOT_TOKEN), 401, "ERR_TELEGRAM_HASH_INVALID");
      // Nor is the raw token the key (Telegram's key is SHA-256 of it): an HMAC keyed by the token itself fails.
      const { createHmac } = await import("node:crypto");
      const { hash: _h, ...fields } = login();
      const check = Object.keys(fields).sort().map((k) => `${k}=${fields[k as keyof typeof fields]}`).join("\n");
      await expectRefused({ ...fields, hash: createHmac("sha256", BOT_TOKEN).update(check).digest("hex") }, 401, "ERR_TELEGRAM_HASH_INVALID");
    });

    it("attack: a stale auth_date (older than maxAge, default one day) is refused; one second inside it works", async () => {
      const day = 86_400;
      await expectRefused(login({ auth_date: String(Number(seconds()) - day - 1) }), 401, "ERR_TELEGRAM_AUTH_EXPIRED");
      expect((await post(login({ auth_date: String(Number(seconds()) - day + 1) }))).status).toBe(200);
    });

    it("attack: an auth_date in the future beyond the clock skew (60 s) is refused; within it works", async () => {
      await expectRefused(login({ auth_date: String(Number(seconds()) + 61) }), 401, "ERR_TELEGRAM_AUTH_DATE_FUTURE");
      await expectRefused(login({ auth_date: String(Number(seconds()) + 365 * 86_400) }), 401, "ERR_TELEGRAM_AUTH_DATE_FUTURE");
      expect((await post(login({ auth_date: String(Number(seconds()) + 30) }))).status).toBe(200);
    });

    it("attack: a field added after signing, a field removed, or a field changed is refused", async () => {
      const data = login();
      await expectRefused({ ...data, is_admin: "true" }, 401, "ERR_TELEGRAM_HASH_INVALID");
      const { username: _u, ...withoutUsername } = data;
      await expectRefused(withoutUsername, 401, "ERR_TELEGRAM_HASH_INVALID");
      await expectRefused({ ...data, id: String(Number(data.id) + 1) }, 401, "ERR_TELEGRAM_HASH_INVALID");
      await expectRefused({ ...data, auth_date: String(Number(data.auth_date) + 1) }, 401, "ERR_TELEGRAM_HASH_INVALID");
      // Same data-check string, other fields: last_name folded into first_name with a newline.
      const { last_name: _l, ...rest } = data;
      await expectRefused({ ...rest, first_name: "Ada\nlast_name=Lovelace" }, 400, "ERR_BODY_INVALID");
      // A field Telegram adds later is part of the signed string, so a signed one passes.
      expect((await post(login({ allows_write_to_pm: "true" }))).status).toBe(200);
    });

    it("attack: a used login replayed is refused (401 ERR_TELEGRAM_AUTH_USED), also when sent concurrently: exactly one sign-in", async () => {
      const data = login();
      expect((await post(data)).status).toBe(200);
      await expectRefused(data, 401, "ERR_TELEGRAM_AUTH_USED");
      // The same login as the JSON callback (numbers) is the same login.
      await expectRefused({ ...data, id: Number(data.id), auth_date: Number(data.auth_date) }, 401, "ERR_TELEGRAM_AUTH_USED");
      const fresh = login();
      const answers = await Promise.all(Array.from({ length: 8 }, () => post(fresh)));
      expect(answers.filter((a) => a.status === 200)).toHaveLength(1);
      expect(answers.filter((a) => a.status === 401 && a.body.code === "ERR_TELEGRAM_AUTH_USED")).toHaveLength(7);
    });

    it("a used login is kept (as a hash, on core's erebus_verifications) until it is stale, then refused as expired and pruned by auth.prune()", async () => {
      const data = login();
      expect((await post(data)).status).toBe(200);
      const row = async () =>
        (await db.query<{ expires_at: Date; consumed_at: Date | null }>(
          "SELECT expires_at, consumed_at FROM erebus_verifications WHERE provider = 'telegram' AND purpose = 'payload' AND secret_hash = encode(sha256(convert_to($1, 'UTF8')), 'hex')",
          [data.hash],
        )).rows;
      const [stored] = await row();
      expect(stored?.consumed_at).not.toBeNull();
      // Kept until the date check refuses the login anyway: auth_date + maxAge (a day).
      expect(stored!.expires_at.getTime()).toBe(Number(data.auth_date) * 1000 + 86_400_000);
      const raw = await db.query<{ n: number }>("SELECT count(*)::int AS n FROM erebus_verifications WHERE secret_hash = $1", [data.hash]);
      expect(raw.rows[0]!.n).toBe(0);
      now = new Date(now.getTime() + 86_400_000 - 10_000);
      expect((await post(data)).body.code).toBe("ERR_TELEGRAM_AUTH_USED");
      now = new Date(now.getTime() + 70_000);
      await expectRefused(data, 401, "ERR_TELEGRAM_AUTH_EXPIRED");
      // Core's prune (npx erebus prune) drops it a day after it went stale.
      await auth.api.prune();
      expect(await row()).toHaveLength(1);
      now = new Date(now.getTime() + 86_400_000);
      await auth.api.prune();
      expect(await row()).toHaveLength(0);
      await expectRefused(data, 401, "ERR_TELEGRAM_AUTH_EXPIRED");
    });

    it("fuzz: NUL, lone surrogates and huge values in every field, wrong types and shapes are 4xx problem+json with no row written (JSON and query)", async () => {
      const fields = ["id", "first_name", "last_name", "username", "photo_url", "auth_date", "hash", "extra_field"];
      const bad: unknown[] = [null, [], "[1]", "", 1, "x".repeat(100_000), { a: 1 }, true, -1, 1.5, "1e3", "0x10", " 1", "https://t.me/\n"];
      const before = await counts();
      for (const field of fields) {
        for (const value of [...UNSTORABLE.map((u) => `Ada${u}`), ...bad]) {
          const data: Record<string, unknown> = { ...login(), [field]: value };
          const answer = await post(data);
          expect(answer.status, `${field}=${JSON.stringify(value)?.slice(0, 40)} → ${answer.status}`).toBeGreaterThanOrEqual(400);
          expect(answer.status).toBeLessThan(500);
          expect(answer.res.headers.get("content-type")).toMatch(/^application\/problem\+json/);
          if (typeof value === "string" && value.length < 10_000) {
            const res = await callback({ ...login(), [field]: value } as Record<string, string>);
            expect(res.status).toBeGreaterThanOrEqual(400);
            expect(res.status).toBeLessThan(500);
            expect(res.headers.get("content-type")).toMatch(/^application\/problem\+json/);
          }
        }
      }
      // Shapes: not an object, too many fields, a repeated query key, a bad key, a body that is not JSON.
      for (const body of ["[]", "null", '"x"', "{", JSON.stringify({ ...login(), ...Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`f${i}`, "x"])) }), JSON.stringify({ ...login(), "Bad-Key": "x" })]) {
        const answer = await post(body);
        expect(answer.status, body.slice(0, 40)).toBeGreaterThanOrEqual(400);
        expect(answer.status).toBeLessThan(500);
      }
      const repeated = await fetch(`${server.url}/auth/telegram/callback?${new URLSearchParams(login())}&id=1`);
      expect(repeated.status).toBe(400);
      expect((await post("id=1", { "content-type": "text/plain" })).status).toBe(415);
      expect(await counts()).toEqual(before);
    });

    it("the OpenAPI document covers both routes with the provider's error codes", async () => {
      const doc = await (await fetch(`${server.url}/auth/openapi.json`)).json();
      expect(Object.keys(doc.paths["/auth/telegram/verify"])).toEqual(["post"]);
      expect(Object.keys(doc.paths["/auth/telegram/callback"])).toEqual(["get"]);
      expect(JSON.stringify(doc.paths["/auth/telegram/verify"].post)).toContain("ERR_TELEGRAM_AUTH_USED");
      expect(doc.paths["/auth/telegram/verify"].post.requestBody.content).toHaveProperty("application/x-www-form-urlencoded");
    });

    it("its migrations apply again on a migrated database (idempotent), and the telegram source type is in the database's rules", async () => {
      const again = createAuth({ database: db, baseURL: ORIGIN, migrate: true, providers: [telegramProvider({ botToken: BOT_TOKEN })], logger: silentLogger });
      await again.ready;
      expect(again.sourceTypes.map((t) => t.type)).toContain("telegram");
      // The database trigger refuses a telegram source_type without its required keys, as zod does.
      await expect(
        db.query("INSERT INTO user_references (network, source_identifier, source_type) VALUES ('telegram', '1', $1::jsonb)", [JSON.stringify({ type: "telegram", user_id: "1" })]),
      ).rejects.toThrow();
    });
  });
}

describe("telegramProvider options", () => {
  it("refuses a malformed bot token, an out-of-range maxAge and an unknown option at construction (TypeError)", () => {
    expect(() => telegramProvider({ botToken: "not-a-token" })).toThrow(/botToken/);
    expect(() => telegramProvider({ botToken: BOT_TOKEN, maxAge: 5 })).toThrow(/maxAge/);
    expect(() => telegramProvider({ botToken: BOT_TOKEN, clockSkew: -1 })).toThrow(/clockSkew/);
    expect(() => telegramProvider({ botToken: BOT_TOKEN, successRedirect: "//evil.example" })).toThrow(/successRedirect/);
    expect(() => telegramProvider({ botToken: BOT_TOKEN, maxAgeSeconds: 60 } as never)).toThrow(/"maxAgeSeconds" is not an option/);
  });
});

describe("upgrading from the provider's own used-logins table", () => {
  it("carries used logins over to erebus_verifications before dropping the table: one used before the upgrade stays refused", async () => {
    const db = await engines({ postgresUrl: null })[0]!.create();
    try {
      const now = new Date();
      const before = createAuth({ database: db, baseURL: ORIGIN, logger: silentLogger, migrate: true, providers: [{ ...telegramProvider({ botToken: BOT_TOKEN }), migrations: [usedLoginsMigration] }] });
      await before.ready;
      const used = signTelegramAuthData(BOT_TOKEN, { id: "777", first_name: "Ada", auth_date: String(Math.floor(now.getTime() / 1000) - 60) });
      await db.query(
        "INSERT INTO erebus_telegram_used_logins (hash_sha256, auth_date, used_at) VALUES (encode(sha256(convert_to($1, 'UTF8')), 'hex'), $2, $3)",
        [used.hash, new Date(Number(used.auth_date) * 1000), now],
      );
      const { server } = await startAuthServer({ database: db, baseURL: ORIGIN, logger: silentLogger, providers: [telegramProvider({ botToken: BOT_TOKEN })] });
      try {
        expect((await db.query<{ t: string | null }>("SELECT to_regclass('erebus_telegram_used_logins')::text AS t")).rows[0]!.t).toBeNull();
        const post = async (body: unknown) => {
          const res = await fetch(`${server.url}/auth/telegram/verify`, { method: "POST", headers: { "content-type": "application/json", origin: ORIGIN }, body: JSON.stringify(body) });
          return { status: res.status, body: (await res.json()) as { code?: string } };
        };
        const replay = await post(used);
        expect([replay.status, replay.body.code]).toEqual([401, "ERR_TELEGRAM_AUTH_USED"]);
        const fresh = signTelegramAuthData(BOT_TOKEN, { id: "777", first_name: "Ada", auth_date: String(Math.floor(now.getTime() / 1000) - 30) });
        expect((await post(fresh)).status).toBe(200);
      } finally {
        await server.close();
      }
    } finally {
      await db.close();
    }
  });
});
