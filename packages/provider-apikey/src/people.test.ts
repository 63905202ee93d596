import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { silentLogger, type Database, type ErebusAuth } from "@erebus/core";
import type { ProviderContext } from "@erebus/core/provider";
import { engines, startAuthServer, testProvider, type Running } from "@erebus/core/testing";
import { apiKeyProvider } from "./index.js";

const ORIGIN = "http://app.test";

for (const engine of engines({ postgresUrl: inject("postgresUrl") })) {
  describe(`API keys belong to a person on ${engine.name}`, () => {
    let db: Database;
    let auth: ErebusAuth;
    let server: Running;
    let now = new Date();
    /** A provider's context, as a provider that removes ways to sign in would use it (ctx.lockPerson). */
    let probe!: ProviderContext;

    beforeAll(async () => {
      db = await engine.create();
      const probing = { id: "probe", emits: [], setup: (ctx: ProviderContext) => ((probe = ctx), {}) };
      ({ auth, server } = await startAuthServer(
        { database: db, baseURL: ORIGIN, logger: silentLogger, clock: () => now, providers: [testProvider(), apiKeyProvider({ maxKeysPerUser: 3, createPerMinute: 100 }), probing] },
        (app, a) => {
          app.get("/whoami", a.middleware, (req, res) => void res.json({ personId: req.auth?.personId, user: req.auth?.user.id, via: req.auth?.via }));
        },
      ));
    });
    afterAll(async () => {
      await server?.close();
      await db?.close();
    });

    const call = async (method: string, path: string, token?: string, body?: unknown) => {
      const res = await fetch(`${server.url}${path}`, {
        method,
        headers: {
          origin: ORIGIN,
          "erebus-session-transport": "bearer",
          ...(body !== undefined ? { "content-type": "application/json" } : {}),
          ...(token ? { authorization: `Bearer ${token}` } : {}),
        },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      });
      const text = await res.text();
      return { status: res.status, body: text ? JSON.parse(text) : undefined };
    };
    const signIn = async (handle: string) => {
      const { ticket } = (await call("POST", "/auth/test/start", undefined, { handle })).body;
      const res = await call("POST", "/auth/test/verify", undefined, { handle, ticket });
      return { token: res.body.session.token as string, user: res.body.user as { id: string; person_id: string } };
    };
    const link = async (token: string, handle: string, merge?: boolean) => {
      const { ticket } = (await call("POST", "/auth/test/start", token, { handle, intent: "link", ...(merge ? { merge } : {}) })).body;
      return call("POST", "/auth/test/verify", token, { handle, ticket });
    };

    it("review: ctx.lockPerson hands back the person's identities without its API keys' rows, and refuses an API key's request with 403 ERR_REAUTH_REQUIRED (not a 500)", async () => {
      const bob = await signIn("lock_bob");
      const created = await call("POST", "/auth/api-keys", bob.token, { name: "bot" });
      expect(created.status).toBe(201);
      const { rows } = await db.query<{ n: number }>("SELECT count(*)::int AS n FROM user_references WHERE person_id = $1 AND user_type = 'api'", [bob.user.person_id]);
      expect(rows[0]!.n).toBe(1); // the key's own row is in the person
      const asSession = (await auth.authenticate({ headers: { authorization: `Bearer ${bob.token}` }, method: "GET" } as never))!;
      const { identities } = await db.transaction((tx) => probe.lockPerson(tx, asSession));
      expect(identities.map((u) => u.id)).toEqual([bob.user.id]);
      const asKey = (await auth.authenticate({ headers: { "x-api-key": created.body.key }, method: "GET" } as never))!;
      expect(asKey.via).toBe("api_key");
      await expect(db.transaction((tx) => probe.lockPerson(tx, asKey))).rejects.toMatchObject({ code: "ERR_REAUTH_REQUIRED", status: 403 });
    });

    it("every identity of the person sees and manages a key; a program acting with it has the owner's personId", async () => {
      const alice = await signIn("key_alice");
      const created = await call("POST", "/auth/api-keys", alice.token, { name: "bot" });
      expect(created.status).toBe(201);
      expect((await link(alice.token, "key_alice_phone")).body.outcome).toBe("linked");
      const phone = await signIn("key_alice_phone");
      const listed = await call("GET", "/auth/api-keys", phone.token);
      expect(listed.body.keys.map((k: { id: string }) => k.id)).toEqual([created.body.id]);
      // The program's request: its own identity row, the owner's person.
      const asKey = await fetch(`${server.url}/whoami`, { headers: { "x-api-key": created.body.key } });
      expect(await asKey.json()).toMatchObject({ personId: alice.user.id, via: "api_key" });
      // Not an identity of the person: GET /auth/identities lists sign-in identities only.
      const identities = await call("GET", "/auth/identities", phone.token);
      expect(identities.body.person.identities.map((i: { network: string }) => i.network)).toEqual(["test", "test"]);
      // Managed from the other identity.
      expect((await call("POST", `/auth/api-keys/${created.body.id}/rotate`, phone.token, { gracePeriodSeconds: 0 })).status).toBe(200);
      expect((await call("DELETE", `/auth/api-keys/${created.body.id}`, phone.token)).status).toBe(204);
    });

    it("attack: another person can neither list, rotate nor revoke the key", async () => {
      const owner = await signIn("key_owner");
      const stranger = await signIn("key_stranger");
      const created = await call("POST", "/auth/api-keys", owner.token, { name: "mine" });
      expect((await call("GET", "/auth/api-keys", stranger.token)).body.keys).toEqual([]);
      expect((await call("POST", `/auth/api-keys/${created.body.id}/rotate`, stranger.token, {})).body.code).toBe("ERR_APIKEY_NOT_FOUND");
      expect((await call("DELETE", `/auth/api-keys/${created.body.id}`, stranger.token)).body.code).toBe("ERR_APIKEY_NOT_FOUND");
      const asKey = await fetch(`${server.url}/whoami`, { headers: { "x-api-key": created.body.key } });
      expect((await asKey.json()).personId).toBe(owner.user.id);
    });

    it("a merge moves the other person's keys; the key limit counts the person's keys", async () => {
      const into = await signIn("key_into");
      const from = await signIn("key_from");
      const theirs = await call("POST", "/auth/api-keys", from.token, { name: "theirs" });
      await call("POST", "/auth/api-keys", into.token, { name: "ours" });
      expect((await link(into.token, "key_from", true)).body.outcome).toBe("merged");
      const listed = await call("GET", "/auth/api-keys", into.token);
      expect(listed.body.keys.map((k: { name: string }) => k.name).sort()).toEqual(["ours", "theirs"]);
      await expect.poll(async () => (await (await fetch(`${server.url}/whoami`, { headers: { "x-api-key": theirs.body.key } })).json()).personId).toBe(into.user.id);
      expect((await call("POST", "/auth/api-keys", into.token, { name: "third" })).status).toBe(201);
      expect((await call("POST", "/auth/api-keys", from.token, { name: "fourth" })).body.code).toBe("ERR_APIKEY_LIMIT");
    });

    it("step-up: creating or rotating a key needs a fresh session (403 ERR_REAUTH_REQUIRED); a step-up makes it fresh; listing and revoking do not", async () => {
      const stale = await signIn("key_stale");
      const made = await call("POST", "/auth/api-keys", stale.token, { name: "before" });
      now = new Date(now.getTime() + 11 * 60_000);
      expect((await call("POST", "/auth/api-keys", stale.token, { name: "late" })).body.code).toBe("ERR_REAUTH_REQUIRED");
      expect((await call("POST", `/auth/api-keys/${made.body.id}/rotate`, stale.token, {})).body.code).toBe("ERR_REAUTH_REQUIRED");
      expect((await call("GET", "/auth/api-keys", stale.token)).body.keys).toHaveLength(1);
      const { ticket } = (await call("POST", "/auth/test/start", stale.token, { handle: "key_stale", intent: "reauthenticate" })).body;
      expect((await call("POST", "/auth/test/verify", stale.token, { handle: "key_stale", ticket })).body.outcome).toBe("reauthenticated");
      expect((await call("POST", "/auth/api-keys", stale.token, { name: "late" })).status).toBe(201);
      expect((await call("DELETE", `/auth/api-keys/${made.body.id}`, stale.token)).status).toBe(204);
    });

    it("migration 0003 puts existing keys into their owner's person", async () => {
      const owner = await signIn("key_legacy");
      const created = await call("POST", "/auth/api-keys", owner.token, { name: "legacy" });
      const keyRow = (await db.query<{ user_id: string }>("SELECT user_id FROM erebus_api_keys WHERE id = $1", [created.body.id])).rows[0]!;
      // As before people: the key's row was a person of its own.
      await db.query("UPDATE user_references SET person_id = id WHERE id = $1", [keyRow.user_id]);
      const migration = (await import("./store.js")).keysToPersonMigration;
      await db.exec(migration.sql);
      expect((await auth.api.getUser(keyRow.user_id))?.person_id).toBe(owner.user.id);
    });
  });
}
