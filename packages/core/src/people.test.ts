import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { silentLogger, type Database, type ErebusAuth } from "./index.js";
import type { ErebusProvider } from "./kit.js";
import { engines, startAuthServer, testProvider, type Running } from "./testing/index.js";

/** A provider whose proof needs no start step (like a signed widget payload): the link intent is taken in the proving request. */
const directProvider = {
  id: "direct",
  emits: ["test_account"],
  setup: (ctx) => ({
    routes(router) {
      // A start step reached by a top-level GET (as an OAuth start is): the router's origin check lets safe methods through.
      router.get("/direct/start", async (req, res) => {
        const link = await ctx.linkIntent(req, { intent: req.query.intent }, res);
        res.json({ link: link !== undefined });
      });
      router.post("/direct/prove", async (req, res) => {
        const body = req.body as { handle: string; intent?: string };
        const link = await ctx.linkIntent(req, { intent: body.intent }, res);
        res.json(
          await ctx.signInOnce(req, res, {
            verify: () => ({ network: "test", sourceIdentifier: body.handle, sourceType: { type: "test_account", handle: body.handle } }),
            consume: async () => undefined,
            ...(link ? { link } : {}),
          }),
        );
      });
    },
  }),
} satisfies ErebusProvider;

const ORIGIN = "http://app.test";

for (const engine of engines()) {
  describe(`people: linking identities with proof on ${engine.name}`, () => {
    let db: Database;
    let auth: ErebusAuth;
    let server: Running;
    /** Races between connections: registered only on the server (PGlite has one connection), so no run skips them. */
    const itOnServer = engine.name === "postgres" ? it : (() => undefined);
    let now = new Date("2026-11-27T12:00:00Z");
    const merges: { from: string; into: string }[] = [];
    let failMerge = false;

    beforeAll(async () => {
      db = await engine.create();
      ({ auth, server } = await startAuthServer({
        database: db,
        baseURL: ORIGIN,
        logger: silentLogger,
        clock: () => now,
        providers: [testProvider(), directProvider],
        people: {
          linksPerHour: 500,
          maxIdentities: 5,
          async onMerge(from, into, { db: tx }) {
            // The app moves its own rows in the merge's transaction; a throw rolls everything back.
            await tx.query("INSERT INTO app_merges (from_person, into_person) VALUES ($1, $2)", [from, into]);
            if (failMerge) throw new Error("the app could not move its rows");
            merges.push({ from, into });
          },
        },
      }));
      await db.query("CREATE TABLE app_merges (from_person UUID NOT NULL, into_person UUID NOT NULL)");
    });
    afterAll(async () => {
      await server?.close();
      await db?.close();
    });

    const call = async (method: string, path: string, options: { token?: string; body?: unknown; headers?: Record<string, string> } = {}) => {
      const res = await fetch(`${server.url}/auth${path}`, {
        method,
        headers: {
          origin: ORIGIN,
          "erebus-session-transport": "bearer",
          ...(options.body !== undefined ? { "content-type": "application/json" } : {}),
          ...(options.token ? { authorization: `Bearer ${options.token}` } : {}),
          ...options.headers,
        },
        ...(options.body !== undefined ? { body: typeof options.body === "string" ? options.body : JSON.stringify(options.body) } : {}),
      });
      const text = await res.text();
      return { status: res.status, body: text ? JSON.parse(text) : undefined };
    };
    const signIn = async (handle: string) => {
      const ticket = (await call("POST", "/test/start", { body: { handle } })).body.ticket as string;
      const res = await call("POST", "/test/verify", { body: { handle, ticket } });
      expect(res.status).toBe(200);
      return { token: res.body.session.token as string, user: res.body.user as { id: string; person_id: string } };
    };
    const startLink = (token: string, handle: string, merge?: boolean) =>
      call("POST", "/test/start", { token, body: { handle, intent: "link", ...(merge === undefined ? {} : { merge }) } });
    const link = async (token: string, handle: string, merge?: boolean) => {
      const started = await startLink(token, handle, merge);
      expect(started.status).toBe(200);
      return call("POST", "/test/verify", { token, body: { handle, ticket: started.body.ticket } });
    };
    const personOf = async (handle: string) => (await auth.api.findUser("test", handle))?.person_id;

    it("a new identity is its own person; linking with a fresh session attaches the proven identity and starts no session", async () => {
      const alice = await signIn("alice");
      expect(alice.user.person_id).toBe(alice.user.id);
      const res = await link(alice.token, "alice_phone");
      expect(res.status).toBe(200);
      expect(res.body).toMatchObject({ outcome: "linked", user: { id: alice.user.id }, linked: { source_identifier: "alice_phone", person_id: alice.user.id } });
      expect(res.body.session.token).toBeUndefined();
      expect(res.body.person.identities.map((i: { source_identifier: string }) => i.source_identifier)).toEqual(["alice", "alice_phone"]);
      const session = await call("GET", "/session", { token: alice.token });
      expect(session.body.person).toMatchObject({ id: alice.user.id });
      expect(session.body.person.identities).toHaveLength(2);
      // Signing in with the linked identity is the same person.
      const phone = await signIn("alice_phone");
      expect(phone.user.person_id).toBe(alice.user.id);
      const identities = await call("GET", "/identities", { token: phone.token });
      expect(identities.body.person.id).toBe(alice.user.id);
    });

    it("attack: a link-intent ticket used from another session attaches nothing and is used up", async () => {
      const victim = await signIn("victim");
      const attacker = await signIn("attacker");
      const started = await startLink(attacker.token, "attacker_wallet");
      // The attacker tricks the victim's client into presenting it (or replays it from elsewhere).
      const stolen = await call("POST", "/test/verify", { token: victim.token, body: { handle: "attacker_wallet", ticket: started.body.ticket } });
      expect(stolen).toMatchObject({ status: 403, body: { code: "ERR_LINK_SESSION_MISMATCH" } });
      expect(await personOf("attacker_wallet")).toBeUndefined();
      // ... and without any session: no sign-in either.
      const anonymous = await call("POST", "/test/verify", { body: { handle: "attacker_wallet", ticket: started.body.ticket } });
      expect(anonymous).toMatchObject({ status: 401, body: { code: "ERR_TEST_TICKET_INVALID", detail: "used" } });
      // Replayed from the attacker's own session afterwards: used.
      const replay = await call("POST", "/test/verify", { token: attacker.token, body: { handle: "attacker_wallet", ticket: started.body.ticket } });
      expect(replay.body.code).toBe("ERR_TEST_TICKET_INVALID");
      expect(await personOf("attacker_wallet")).toBeUndefined();
    });

    it("attack: a link intent needs a signed-in, fresh session (401 without, 403 ERR_REAUTH_REQUIRED when stale; signing in again refreshes)", async () => {
      expect((await call("POST", "/test/start", { body: { handle: "x1", intent: "link" } })).body.code).toBe("ERR_UNAUTHENTICATED");
      const bob = await signIn("bob");
      now = new Date(now.getTime() + 11 * 60_000);
      const stale = await startLink(bob.token, "bob_mail");
      expect(stale).toMatchObject({ status: 403, body: { code: "ERR_REAUTH_REQUIRED" } });
      const again = await signIn("bob");
      expect((await link(again.token, "bob_mail")).body.outcome).toBe("linked");
    });

    it("a session gets stale for link after the window even when the intent was fresh (the intent's ticket expires first)", async () => {
      const carol = await signIn("carol");
      const started = await startLink(carol.token, "carol_key");
      now = new Date(now.getTime() + 6 * 60_000); // past the ticket's 5 minutes
      const late = await call("POST", "/test/verify", { token: carol.token, body: { handle: "carol_key", ticket: started.body.ticket } });
      expect(late.body).toMatchObject({ code: "ERR_TEST_TICKET_INVALID", detail: "expired" });
    });

    it("a provider with no start step takes the link intent in the proving request (signInOnce({ link }))", async () => {
      const kate = await signIn("kate");
      const res = await call("POST", "/direct/prove", { token: kate.token, body: { handle: "kate_widget", intent: "link" } });
      expect(res.body).toMatchObject({ outcome: "linked", user: { id: kate.user.id } });
      expect(await personOf("kate_widget")).toBe(kate.user.id);
      const anonymous = await call("POST", "/direct/prove", { body: { handle: "kate_other", intent: "link" } });
      expect(anonymous.body.code).toBe("ERR_UNAUTHENTICATED");
    });

    it("review: a cross-site page cannot start a link intent for the browser's session cookie, also by a top-level GET", async () => {
      const pat = await signIn("pat");
      const get = (headers: Record<string, string>) => fetch(`${server.url}/auth/direct/start?intent=link`, { headers: { cookie: `erebus_session=${pat.token}`, ...headers } });
      const crossSite = await get({ "sec-fetch-site": "cross-site", "sec-fetch-mode": "navigate" });
      expect(crossSite.status).toBe(403);
      expect((await crossSite.json()).code).toBe("ERR_ORIGIN_FORBIDDEN");
      // The app's own page (same-origin), and a program with its Bearer token, still can.
      expect(await (await get({ "sec-fetch-site": "same-origin", "sec-fetch-mode": "navigate" })).json()).toEqual({ link: true });
      const bearer = await fetch(`${server.url}/auth/direct/start?intent=link`, { headers: { authorization: `Bearer ${pat.token}`, "sec-fetch-site": "cross-site" } });
      expect(await bearer.json()).toEqual({ link: true });
    });

    it("never links by inference: two identities with one verified email stay two people", async () => {
      const email = await auth.api.resolveIdentity({ network: "email", sourceIdentifier: "same@example.com", email: "same@example.com", sourceType: { type: "email_auth", verified: true, provider: "magic_link" } });
      const oauth = await auth.api.resolveIdentity({ network: "oauth", sourceIdentifier: "google:1", email: "same@example.com", sourceType: { type: "oauth", provider: "google", user_id: "1" } });
      expect(email.person_id).toBe(email.id);
      expect(oauth.person_id).toBe(oauth.id);
    });

    it("an identity of another person: 409 ERR_IDENTITY_LINKED_ELSEWHERE with its size; merge moves the whole person and calls onMerge in the transaction", async () => {
      const dave = await signIn("dave");
      const erin = await signIn("erin");
      expect((await link(erin.token, "erin_phone")).status).toBe(200);
      const refused = await link(dave.token, "erin");
      expect(refused).toMatchObject({ status: 409, body: { code: "ERR_IDENTITY_LINKED_ELSEWHERE", identities: 2 } });
      expect(await personOf("erin")).toBe(erin.user.id);

      failMerge = true;
      const rolledBack = await link(dave.token, "erin", true);
      expect(rolledBack.status).toBe(500);
      failMerge = false;
      expect(await personOf("erin")).toBe(erin.user.id);
      expect((await db.query("SELECT * FROM app_merges")).rows).toHaveLength(0);

      const merged = await link(dave.token, "erin", true);
      expect(merged.body.outcome).toBe("merged");
      expect(await personOf("erin")).toBe(dave.user.id);
      expect(await personOf("erin_phone")).toBe(dave.user.id);
      expect(merges).toEqual([{ from: erin.user.id, into: dave.user.id }]);
      expect((await db.query("SELECT * FROM app_merges")).rows).toHaveLength(1);
      // Erin's session now belongs to Dave's person.
      await expect.poll(async () => (await call("GET", "/session", { token: erin.token })).body.person?.id).toBe(dave.user.id);
    });

    it("re-proving an identity of the same person refreshes the session (step-up) without a new session", async () => {
      const frank = await signIn("frank");
      expect((await link(frank.token, "frank_phone")).status).toBe(200);
      now = new Date(now.getTime() + 9 * 60_000);
      const before = (await call("GET", "/session", { token: frank.token })).body.session.authenticatedAt;
      const again = await link(frank.token, "frank_phone");
      expect(again.body.outcome).toBe("reauthenticated");
      await expect.poll(async () => (await call("GET", "/session", { token: frank.token })).body.session.authenticatedAt).not.toBe(before);
    });

    it("step-up: a stale session re-proves one of its person's identities (intent reauthenticate) and is fresh again; a new or foreign identity attaches nothing", async () => {
      const lena = await signIn("lena");
      expect((await link(lena.token, "lena_key")).status).toBe(200);
      await signIn("lena_stranger");
      now = new Date(now.getTime() + 11 * 60_000);
      expect((await startLink(lena.token, "lena_new")).body.code).toBe("ERR_REAUTH_REQUIRED");
      const reauth = async (handle: string) => {
        const started = await call("POST", "/test/start", { token: lena.token, body: { handle, intent: "reauthenticate" } });
        expect(started.status).toBe(200);
        return call("POST", "/test/verify", { token: lena.token, body: { handle, ticket: started.body.ticket } });
      };
      expect(await reauth("lena_new")).toMatchObject({ status: 403, body: { code: "ERR_REAUTH_IDENTITY_FOREIGN" } });
      expect(await personOf("lena_new")).toBeUndefined();
      expect(await reauth("lena_stranger")).toMatchObject({ status: 403, body: { code: "ERR_REAUTH_IDENTITY_FOREIGN" } });
      expect(await personOf("lena_stranger")).not.toBe(lena.user.id);
      expect((await reauth("lena_key")).body.outcome).toBe("reauthenticated");
      await expect.poll(async () => (await startLink(lena.token, "lena_new")).status).toBe(200);
      expect((await call("POST", "/test/start", { token: lena.token, body: { handle: "x", intent: "reauthenticate", merge: true } })).body.code).toBe("ERR_BODY_INVALID");
    });

    it("limits identities per person", async () => {
      const gina = await signIn("gina");
      for (let i = 1; i < 5; i++) expect((await link(gina.token, `gina_${i}`)).status).toBe(200);
      expect(await link(gina.token, "gina_5")).toMatchObject({ status: 409, body: { code: "ERR_IDENTITY_LIMIT" } });
      expect(await personOf("gina_5")).toBeUndefined();
    });

    it("unlink: fresh session, not the session's own identity, not the last, only the person's own; the unlinked identity becomes its own person and its sessions end", async () => {
      const hank = await signIn("hank");
      const other = await signIn("other_person");
      expect((await call("DELETE", `/identities/${hank.user.id}`, { token: hank.token })).body.code).toBe("ERR_IDENTITY_IN_USE");
      expect((await call("DELETE", `/identities/${other.user.id}`, { token: hank.token })).body.code).toBe("ERR_IDENTITY_NOT_FOUND");
      expect((await link(hank.token, "hank_phone")).status).toBe(200);
      const phone = await signIn("hank_phone");
      // From the phone's session: unlinking hank (the person's own id) leaves the phone as the last → allowed once.
      const unlinked = await call("DELETE", `/identities/${hank.user.id}`, { token: phone.token });
      expect(unlinked.status).toBe(200);
      expect(unlinked.body.person.identities.map((i: { source_identifier: string }) => i.source_identifier)).toEqual(["hank_phone"]);
      // The person keeps its id (the phone stays in person hank.user.id); hank gets a new person.
      expect(await personOf("hank_phone")).toBe(hank.user.id);
      const newPerson = await personOf("hank");
      expect(newPerson).not.toBe(hank.user.id);
      expect((await call("GET", "/session", { token: hank.token })).status).toBe(401); // its sessions ended
      // The phone is now the last identity.
      const last = await call("DELETE", `/identities/${phone.user.id}`, { token: phone.token });
      expect(last.body.code).toBe("ERR_IDENTITY_IN_USE");
      now = new Date(now.getTime() + 11 * 60_000);
      expect((await call("DELETE", `/identities/${hank.user.id}`, { token: phone.token })).body.code).toBe("ERR_REAUTH_REQUIRED");
    });

    it("review: an identity unlinked twice never re-enters the person that once unlinked it (its id is that person's id)", async () => {
      // Lara's person is her first identity's id. She unlinks that identity (it was compromised): it
      // gets a new person. Its holder links an identity of their own to it and unlinks it from there:
      // the identity's own id is still Lara's person, and must not become its person again.
      const lara = await signIn("lara");
      expect((await link(lara.token, "lara_phone")).status).toBe(200);
      const phone = await signIn("lara_phone");
      expect((await call("DELETE", `/identities/${lara.user.id}`, { token: phone.token })).status).toBe(200);
      const thief = await signIn("lara");
      expect(thief.user.person_id).not.toBe(lara.user.id);
      expect((await link(thief.token, "thief_own")).status).toBe(200);
      const thiefOwn = await signIn("thief_own");
      expect((await call("DELETE", `/identities/${lara.user.id}`, { token: thiefOwn.token })).status).toBe(200);
      expect(await personOf("lara")).not.toBe(lara.user.id);
      const again = await signIn("lara");
      const session = await call("GET", "/session", { token: again.token });
      expect(session.body.person.id).not.toBe(lara.user.id);
      expect(session.body.person.identities.map((i: { source_identifier: string }) => i.source_identifier)).toEqual(["lara"]);
    });

    /**
     * Holds the person's lock from another connection, lets `request` start and wait on it, runs
     * `change` (what a concurrent unlink or merge commits), then releases it. PostgreSQL only: PGlite
     * runs one transaction at a time, so nothing can change between a read and the lock there.
     */
    const whileLocked = async <T>(personId: string, request: () => Promise<T>, change: (q: pg.Client) => Promise<void>): Promise<T> => {
      const holder = new pg.Client({ connectionString: (db as Database & { url?: string }).url });
      await holder.connect();
      try {
        await holder.query("BEGIN");
        await holder.query("SELECT pg_advisory_xact_lock(hashtext($1))", [`erebus_person:${personId}`]);
        const pending = request();
        await expect
          .poll(async () => (await holder.query("SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())")).rows[0].n, { timeout: 20_000 })
          .toBe(1);
        await change(holder);
        await holder.query("COMMIT");
        return await pending;
      } finally {
        await holder.end();
      }
    };

    itOnServer("review: an unlink that waited for its person's lock sees what committed meanwhile (its own identity unlinked, its session ended: it unlinks nothing)", async () => {
      const mia = await signIn("mia");
      expect((await link(mia.token, "mia_b")).status).toBe(200);
      expect((await link(mia.token, "mia_c")).status).toBe(200);
      const b = await signIn("mia_b");
      const c = (await auth.api.findUser("test", "mia_c"))!;
      const res = await whileLocked(
        mia.user.id,
        () => call("DELETE", `/identities/${c.id}`, { token: b.token }),
        async (q) => {
          // Mia unlinks mia_b from her own session at the same time: mia_b leaves, its sessions end.
          await q.query("UPDATE user_references SET person_id = id WHERE id = $1", [b.user.id]);
          await q.query("UPDATE erebus_sessions SET revoked_at = now() WHERE user_id = $1", [b.user.id]);
        },
      );
      expect(res.status).toBeGreaterThanOrEqual(400);
      expect(res.status).toBeLessThan(500);
      expect(await personOf("mia_c")).toBe(mia.user.id);
    });

    itOnServer("review: an unlink that loses a deadlock to a concurrent merge of its target answers 409 ERR_LINK_CONFLICT, not a 500", async () => {
      const olga = await signIn("olga");
      expect((await link(olga.token, "olga_b")).status).toBe(200);
      const target = (await auth.api.findUser("test", "olga_b"))!;
      const holder = new pg.Client({ connectionString: (db as Database & { url?: string }).url });
      await holder.connect();
      try {
        // The other side: a merge that holds the target's row and then asks for the person's lock
        // (attach does it in that order), while the unlink holds the lock and asks for the row.
        await holder.query("SET deadlock_timeout = '10s'"); // the unlink's check finds the cycle first
        await holder.query("BEGIN");
        await holder.query("SELECT id FROM user_references WHERE id = $1 FOR UPDATE", [target.id]);
        const pending = call("DELETE", `/identities/${target.id}`, { token: olga.token });
        await expect
          .poll(async () => (await holder.query("SELECT count(*)::int AS n FROM pg_locks WHERE NOT granted AND pid IN (SELECT pid FROM pg_stat_activity WHERE datname = current_database())")).rows[0].n, { interval: 20, timeout: 20_000 })
          .toBeGreaterThan(0);
        const other = holder.query("SELECT pg_advisory_xact_lock(hashtext($1))", [`erebus_person:${olga.user.id}`]).catch((error: unknown) => error);
        const res = await pending;
        await other;
        await holder.query("ROLLBACK");
        expect(res.status).toBe(409);
        expect(res.body.code).toBe("ERR_LINK_CONFLICT");
      } finally {
        await holder.end();
      }
    });

    itOnServer("review: a link that waited for its person's lock sees what committed meanwhile (the asking session ended: nothing is attached)", async () => {
      const noah = await signIn("noah");
      const started = await startLink(noah.token, "noah_stranger");
      expect(started.status).toBe(200);
      const res = await whileLocked(
        noah.user.id,
        () => call("POST", "/test/verify", { token: noah.token, body: { handle: "noah_stranger", ticket: started.body.ticket } }),
        async (q) => {
          // Another identity of the person unlinks noah at the same time: its sessions end.
          await q.query("UPDATE user_references SET person_id = $2 WHERE id = $1", [noah.user.id, "00000000-0000-4000-8000-000000000001"]);
          await q.query("UPDATE erebus_sessions SET revoked_at = now() WHERE user_id = $1", [noah.user.id]);
        },
      );
      expect(res.status).toBeGreaterThanOrEqual(400);
      expect(res.status).toBeLessThan(500);
      expect(await personOf("noah_stranger")).toBeUndefined();
    });

    it("50 concurrent attempts to link one identity to two people: exactly one person gets it, the rest are refused", async () => {
      const p1 = await signIn("racer_one");
      const p2 = await signIn("racer_two");
      const tickets: { token: string; ticket: string }[] = [];
      for (let i = 0; i < 25; i++) {
        for (const who of [p1, p2]) tickets.push({ token: who.token, ticket: (await startLink(who.token, "contested")).body.ticket });
      }
      const results = await Promise.all(tickets.map(({ token, ticket }) => call("POST", "/test/verify", { token, body: { handle: "contested", ticket } })));
      expect(results.filter((r) => r.status >= 500)).toEqual([]);
      const owner = await personOf("contested");
      expect([p1.user.id, p2.user.id]).toContain(owner);
      const loser = owner === p1.user.id ? p2 : p1;
      const loserResults = results.filter((_r, i) => tickets[i]!.token === loser.token);
      expect(loserResults.every((r) => r.status === 409 && r.body.code === "ERR_IDENTITY_LINKED_ELSEWHERE")).toBe(true);
      const { rows } = await db.query<{ n: number }>("SELECT count(*)::int AS n FROM user_references WHERE network = 'test' AND source_identifier = 'contested'");
      expect(rows[0]!.n).toBe(1);
    });

    it("requireFresh guards an app route, and API-key-like credentials are never fresh", async () => {
      const { server: app } = await startAuthServer({ database: db, baseURL: ORIGIN, logger: silentLogger, clock: () => now, providers: [testProvider()] }, (express, a) => {
        express.post("/sensitive", a.requireFresh({ maxAge: 60 }), (_req, res) => void res.json({ ok: true }));
      });
      const ivy = await signIn("ivy");
      const post = (headers: Record<string, string>) => fetch(`${app.url}/sensitive`, { method: "POST", headers: { origin: ORIGIN, ...headers } });
      expect((await post({ authorization: `Bearer ${ivy.token}` })).status).toBe(200);
      now = new Date(now.getTime() + 61_000);
      const stale = await post({ authorization: `Bearer ${ivy.token}` });
      expect(stale.status).toBe(403);
      expect((await stale.json()).code).toBe("ERR_REAUTH_REQUIRED");
      const key = await post({ "x-test-key": "ivy" });
      expect((await key.json()).code).toBe("ERR_REAUTH_REQUIRED");
      await app.close();
    });

    it("fuzz: the people routes answer hostile input with 4xx problem+json and write nothing", async () => {
      const jack = await signIn("jack");
      const before = (await db.query<{ n: number }>("SELECT count(*)::int AS n FROM user_references")).rows[0]!.n;
      const ids = ["x", "\u0000", "%00", "%ED%A0%80", "%ED%B0%80", "00000000-0000-0000-0000-000000000000", "a".repeat(5000), "..%2F..", "' OR 1=1 --"];
      for (const id of ids) {
        const res = await call("DELETE", `/identities/${id.startsWith("%") ? id : encodeURIComponent(id)}`, { token: jack.token });
        expect(res.status, id).toBeGreaterThanOrEqual(400);
        expect(res.status, id).toBeLessThan(500);
      }
      for (const body of [{ handle: "jack_x", intent: "LINK" }, { handle: "jack_x", intent: "link", merge: "yes" }, { handle: "jack_x", intent: "\u0000" }, { handle: "jack_x", intent: "\ud800" }]) {
        const res = await call("POST", "/test/start", { token: jack.token, body });
        expect(res.status, JSON.stringify(body)).toBe(400);
      }
      expect((await db.query<{ n: number }>("SELECT count(*)::int AS n FROM user_references")).rows[0]!.n).toBe(before);
    });
  });
}
