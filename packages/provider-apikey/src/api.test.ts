import express from "express";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { createAuth, silentLogger, type Database, type ErebusAuth } from "@erebus/core";
import { engines, listen, testProvider, type Running } from "@erebus/core/testing";
import { apiKeyProvider, formatKey, type ApiKeysApi } from "./index.js";

const ORIGIN = "http://app.test";

for (const engine of engines({ postgresUrl: inject("postgresUrl") })) {
  describe(`the apikey provider on the provider kit (${engine.name})`, () => {
    let db: Database;
    let auth: ErebusAuth;
    let server: Running;
    const provider = apiKeyProvider({ maxFailedVerifications: 10_000 });
    const me = async (key: string) => {
      const res = await fetch(`${server.url}/api/me`, { headers: { "x-api-key": key } });
      return { status: res.status, body: (await res.json()) as { code?: string; user?: { id: string } } };
    };

    beforeAll(async () => {
      db = await engine.create();
      auth = createAuth({ database: db, baseURL: ORIGIN, providers: [provider, testProvider()], migrate: true, logger: silentLogger, production: false });
      await auth.ready;
      const app = express();
      app.use("/auth", auth.router);
      app.get("/api/me", auth.requireUser(), (req, res) => res.json({ user: req.auth!.user }));
      server = await listen(app);
    });
    afterAll(async () => {
      await server?.close();
      await db?.close();
    });

    it("hands its keys API to the app as auth.providers.apikey: create, list, rotate and revoke, effective over HTTP at once", async () => {
      const keys = auth.providers.apikey as ApiKeysApi;
      const { key, info } = await keys.create({ name: "exporter", scopes: ["read"], ownerId: null, createdBy: "test" });
      expect((await me(key)).status).toBe(200);
      expect((await keys.list({ ownerId: null })).map((k) => k.id)).toContain(info.id);
      const rotated = await keys.rotate(info.id, 0);
      expect((await me(key)).body.code).toBe("ERR_APIKEY_ROTATED");
      expect((await me(rotated.key)).status).toBe(200);
      await keys.revoke(info.id);
      expect((await me(rotated.key)).body.code).toBe("ERR_APIKEY_REVOKED");
    });

    it("keeps apiKeys.keys(auth) as a deprecated alias of auth.providers.apikey, and says so when auth lacks the provider", () => {
      expect(provider.keys(auth)).toBe(auth.providers.apikey);
      const other = createAuth({ database: "pglite://memory", baseURL: ORIGIN, providers: [testProvider()], logger: silentLogger, production: false });
      expect(() => provider.keys(other)).toThrow(TypeError);
    });

    it("counts its limits under core's namespaced names, apikey:create and apikey:verify-failed", async () => {
      const signIn = await fetch(`${server.url}/auth/test/sign-in`, {
        method: "POST",
        headers: { "content-type": "application/json", origin: ORIGIN, "erebus-session-transport": "bearer" },
        body: JSON.stringify({ handle: "limits" }),
      });
      const { session } = (await signIn.json()) as { session: { token: string } };
      const created = await fetch(`${server.url}/auth/api-keys`, {
        method: "POST",
        headers: { "content-type": "application/json", origin: ORIGIN, authorization: `Bearer ${session.token}` },
        body: JSON.stringify({ name: "mine" }),
      });
      expect(created.status).toBe(201);
      // A well-formed key (right checksum) that was never made: a counted failure.
      expect((await me(formatKey({ prefix: "erb", id: "ZZZZZZZZZZZZ", secret: "A".repeat(22) }))).body.code).toBe("ERR_APIKEY_INVALID");
      const { rows } = await db.query<{ key: string }>("SELECT key FROM erebus_rate_limits");
      const names = new Set(rows.map((r) => r.key.split(":").slice(0, 3).join(":")));
      expect(names).toContain("erebus:apikey:create");
      expect(names).toContain("erebus:apikey:verify-failed");
      expect([...names].some((name) => name.includes("apikey-create") || name.includes("apikey-verify"))).toBe(false);
    });
    it("one provider object in two createAuth calls: each has its own store, caches and API (no shared state)", async () => {
      const second = createAuth({ database: "pglite://memory", baseURL: ORIGIN, providers: [provider], migrate: true, logger: silentLogger });
      await second.ready;
      try {
        expect(second.providers.apikey).not.toBe(auth.providers.apikey);
        const { info } = await (second.providers.apikey as ApiKeysApi).create({ name: "elsewhere", scopes: [], ownerId: null, createdBy: "test" });
        expect((await (auth.providers.apikey as ApiKeysApi).list({ all: true })).map((k) => k.id)).not.toContain(info.id);
      } finally {
        await second.close();
      }
    });
  });
}
