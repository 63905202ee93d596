import express from "express";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { createAuth, silentLogger, type Database, type ErebusAuth } from "@erebus/core";
import { engines } from "../../../test/engines.js";
import { listen, type Running } from "../../../test/http.js";
import { apiKeyProvider } from "./index.js";
import { formatKey, parseKey } from "./key.js";

// Delegates to the real functions; lets the tests see when the peppered HMAC runs and what is compared.
vi.mock("node:crypto", async (importOriginal) => {
  const actual = await importOriginal<typeof import("node:crypto")>();
  return { ...actual, createHmac: vi.fn(actual.createHmac), timingSafeEqual: vi.fn(actual.timingSafeEqual) };
});
const crypto = await import("node:crypto");

const PEPPER = "test-pepper-0123456789abcdef0123456789";
const DAY = 86_400_000;

/** Another secret for the same key id, with a valid checksum (so it reaches the hash comparison). */
function otherSecretOf(key: string): string {
  const parsed = parseKey(key, "erb");
  if (typeof parsed === "string") throw new Error("bad key");
  const secret = parsed.secret.replace(/^./, (c) => (c === "A" ? "B" : "A"));
  return formatKey({ ...parsed, secret });
}

for (const engine of engines()) {
  describe(`API key verification on ${engine.name}: a secret that verified is not hashed again`, () => {
    let db: Database;
    let auth: ErebusAuth;
    let server: Running;
    let now = new Date("2026-03-01T00:00:00Z");
    const provider = apiKeyProvider({ pepper: PEPPER, cacheTtl: 300, rotationGracePeriod: 600, maxFailedVerifications: 10_000 });
    const hmacs = () => vi.mocked(crypto.createHmac).mock.calls.length;
    const get = async (key: string) => {
      const res = await fetch(`${server.url}/api/me`, { headers: { "x-api-key": key } });
      const body = (await res.json()) as { code?: string };
      return res.status === 200 ? 200 : `${res.status} ${body.code}`;
    };

    beforeAll(async () => {
      db = await engine.create();
      auth = createAuth({ database: db, baseURL: "http://app.test", providers: [provider], migrate: true, logger: silentLogger, clock: () => now });
      await auth.ready;
      const app = express();
      app.get("/api/me", auth.requireUser(), (req, res) => res.json({ id: req.auth!.user.id }));
      server = await listen(app);
    });
    afterAll(async () => {
      await server?.close();
      await db?.close();
    });

    it("verifies a cached key's repeated requests with no HMAC, still refuses a wrong secret for it (constant time), and a revocation ends it at once", async () => {
      const { key, info } = await provider.keys(auth).create({ name: "memo", scopes: ["read"], ownerId: null, createdBy: "test" });
      expect(await get(key)).toBe(200);
      const before = hmacs();
      for (let i = 0; i < 20; i++) expect(await get(key)).toBe(200);
      expect(hmacs()).toBe(before);

      // A wrong secret for the same (cached) id takes the full check: one HMAC, 32-byte constant-time comparisons.
      vi.mocked(crypto.timingSafeEqual).mockClear();
      expect(await get(otherSecretOf(key))).toBe("401 ERR_APIKEY_INVALID");
      expect(hmacs()).toBe(before + 1);
      expect(crypto.timingSafeEqual).toHaveBeenCalled();
      for (const [x, y] of vi.mocked(crypto.timingSafeEqual).mock.calls) expect([(x as Buffer).length, (y as Buffer).length]).toEqual([32, 32]);
      // ...and did not replace what the right one is remembered by.
      expect(await get(key)).toBe(200);
      expect(hmacs()).toBe(before + 1);

      await provider.keys(auth).revoke(info.id);
      expect(await get(key)).toBe("401 ERR_APIKEY_REVOKED");
    });

    it("a remembered secret still meets the key's state: the old secret after its grace is ERR_APIKEY_ROTATED, an expired key ERR_APIKEY_EXPIRED", async () => {
      const { key: oldKey, info } = await provider.keys(auth).create({ name: "rotating", scopes: ["read"], ownerId: null, createdBy: "test", expiresInDays: 1 });
      const { key: newKey } = await provider.keys(auth).rotate(info.id, 60);
      expect(await get(newKey)).toBe(200);
      expect(await get(oldKey)).toBe(200); // the previous secret, in its grace period
      const before = hmacs();
      expect([await get(newKey), await get(oldKey)]).toEqual([200, 200]);
      expect(hmacs()).toBe(before); // both remembered
      // Still within cacheTtl (300 s), so these verdicts come from the remembered digests.
      now = new Date(now.getTime() + 61_000);
      expect(await get(oldKey)).toBe("401 ERR_APIKEY_ROTATED");
      expect(await get(newKey)).toBe(200);
      expect(hmacs()).toBe(before);
      now = new Date(now.getTime() + DAY - 61_000 - 100_000); // past cacheTtl: looked up and hashed again
      expect(await get(newKey)).toBe(200);
      const again = hmacs();
      expect(again).toBe(before + 1);
      now = new Date(now.getTime() + 200_000); // past expiresAt, within cacheTtl
      expect(await get(newKey)).toBe("401 ERR_APIKEY_EXPIRED");
      expect(hmacs()).toBe(again);
    });

    it("a cached key's request passes core's guard before the guard returns (no await); a revoked one is refused", async () => {
      now = new Date("2026-03-01T00:00:00Z");
      const { key, info } = await provider.keys(auth).create({ name: "sync", scopes: ["read"], ownerId: null, createdBy: "test" });
      expect(await get(key)).toBe(200); // looked up, cached
      const guard = auth.requireUser();
      const call = async () => {
        let passed = false;
        const req = { headers: { "x-api-key": key }, method: "GET", originalUrl: "/api/me", url: "/api/me" } as unknown as express.Request;
        const pending = guard(req, {} as express.Response, () => (passed = true)) as unknown;
        const sync = passed;
        await pending;
        return { sync, passed, via: (req as { auth?: { via: string } }).auth?.via };
      };
      expect(await call()).toEqual({ sync: true, passed: true, via: "api_key" });
      await provider.keys(auth).revoke(info.id);
      expect(await get(key)).toBe("401 ERR_APIKEY_REVOKED");
    });
  });
}
