import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { silentLogger, type Database } from "@erebus/core";
import { engines, startAuthServer, type Running } from "@erebus/core/testing";
import { signTelegramAuthData, telegramProvider } from "./index.js";

const ORIGIN = "http://app.test";
const BOT_TOKEN = "110201543:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw";

// Issue 13: the widget has no start step, so the link intent rides in the proving request
// (POST /telegram/verify?intent=link) and core attaches the account to the session's person.
for (const engine of engines({ postgresUrl: inject("postgresUrl") })) {
  describe(`Telegram link intent (${engine.name})`, () => {
    let db: Database;
    let server: Running;
    let now = new Date();
    let nextId = 7_000_000;

    const login = (id = String(nextId++)) => signTelegramAuthData(BOT_TOKEN, { id, first_name: "Ada", auth_date: String(Math.floor(now.getTime() / 1000)) });
    const verify = async (body: unknown, query = "", token?: string) => {
      const res = await fetch(`${server.url}/auth/telegram/verify${query}`, {
        method: "POST",
        headers: { "content-type": "application/json", origin: ORIGIN, "erebus-session-transport": "bearer", ...(token ? { authorization: `Bearer ${token}` } : {}) },
        body: JSON.stringify(body),
      });
      return { status: res.status, body: (await res.json()) as any, res };
    };
    const signIn = async () => {
      const data = login();
      const res = await verify(data);
      expect(res.status).toBe(200);
      return { id: data.id, token: res.body.session.token as string, user: res.body.user as { id: string; person_id: string } };
    };
    const identities = async (token: string) => {
      const res = await fetch(`${server.url}/auth/session`, { headers: { authorization: `Bearer ${token}` } });
      return ((await res.json()) as { person: { identities: { source_identifier: string }[] } }).person.identities.map((i) => i.source_identifier).sort();
    };
    const used = async () => (await db.query<{ n: number }>("SELECT count(*)::int AS n FROM erebus_verifications WHERE provider = 'telegram'")).rows[0]!.n;

    beforeAll(async () => {
      db = await engine.create();
      ({ server } = await startAuthServer({
        database: db,
        baseURL: ORIGIN,
        logger: silentLogger,
        clock: () => now,
        providers: [telegramProvider({ botToken: BOT_TOKEN, perClient: 100_000 })],
        people: { linksPerHour: 10_000 },
      }));
    });
    afterAll(async () => {
      await server?.close();
      await db?.close();
    });

    it("?intent=link from a signed-in, fresh session attaches the account to that person (no new session), and the login is used", async () => {
      const me = await signIn();
      const second = login();
      const linked = await verify(second, "?intent=link", me.token);
      expect(linked.status).toBe(200);
      expect(linked.body).toMatchObject({ outcome: "linked", user: { id: me.user.id }, linked: { network: "telegram", source_identifier: second.id, person_id: me.user.person_id } });
      expect(linked.body.session.token).toBeUndefined();
      expect(await identities(me.token)).toEqual([me.id, second.id].sort());
      const replay = await verify(second, "?intent=link", me.token);
      expect([replay.status, replay.body.code]).toEqual([401, "ERR_TELEGRAM_AUTH_USED"]);
    });

    it("review: linking takes only a login Telegram dated in the last 10 minutes (a kept login of up to a day is no fresh proof)", async () => {
      const me = await signIn();
      const kept = signTelegramAuthData(BOT_TOKEN, { id: String(nextId++), first_name: "Ada", auth_date: String(Math.floor(now.getTime() / 1000) - 11 * 60) });
      const refused = await verify(kept, "?intent=link", me.token);
      expect([refused.status, refused.body.code]).toEqual([401, "ERR_TELEGRAM_AUTH_EXPIRED"]);
      expect(await identities(me.token)).toEqual([me.id]);
      // The refused attempt used the login up, as every failed attempt does.
      expect((await verify(kept)).body.code).toBe("ERR_TELEGRAM_AUTH_USED");
    });

    it("attack: a link without a session (401) or with a stale one (403 ERR_REAUTH_REQUIRED) is refused before the login is used, and signs nobody in", async () => {
      const data = login();
      const before = await used();
      const none = await verify(data, "?intent=link");
      expect([none.status, none.body.code]).toEqual([401, "ERR_UNAUTHENTICATED"]);
      expect(none.res.headers.getSetCookie()).toEqual([]);
      const me = await signIn();
      now = new Date(now.getTime() + 11 * 60_000);
      try {
        const stale = await verify(data, "?intent=link", me.token);
        expect([stale.status, stale.body.code]).toEqual([403, "ERR_REAUTH_REQUIRED"]);
      } finally {
        now = new Date();
      }
      // Only the sign-in above used a login; the refused link left its own unused.
      expect(await used()).toBe(before + 1);
      expect((await verify(data)).status).toBe(200);
    });

    it("an account of another person is refused (409 ERR_IDENTITY_LINKED_ELSEWHERE, the login used up) unless &merge=true", async () => {
      const me = await signIn();
      const other = await signIn();
      // Telegram dates logins to the second: a later one is another login (the same second's is the one already used).
      now = new Date(now.getTime() + 1000);
      const refused = await verify(login(other.id), "?intent=link", me.token);
      expect([refused.status, refused.body.code]).toEqual([409, "ERR_IDENTITY_LINKED_ELSEWHERE"]);
      expect(await identities(me.token)).toEqual([me.id]);
      now = new Date(now.getTime() + 1000);
      const merged = await verify(login(other.id), "?intent=link&merge=true", me.token);
      expect(merged.body.outcome).toBe("merged");
      expect(await identities(me.token)).toEqual([me.id, other.id].sort());
    });

    it("fuzz: a bad intent or merge, NUL, lone surrogates, a repeated or unknown query key are 400 ERR_QUERY_INVALID, writing nothing", async () => {
      const me = await signIn();
      const before = await used();
      for (const query of ["?intent=merge", "?intent=link%00", "?intent=%ED%A0%80", "?intent=link&merge=1", "?intent=link&merge=%00", "?intent=link&intent=link", "?intent=link&extra=1", "?merge=true&x=%ED%BF%BF"]) {
        const res = await verify(login(), query, me.token);
        expect([res.status, res.body.code], query).toEqual([400, "ERR_QUERY_INVALID"]);
      }
      expect(await used()).toBe(before);
    });
  });
}
