import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { createAuth, silentLogger, type Database } from "@erebus/core";
import { engines, startAuthServer, type Running } from "@erebus/core/testing";
import { ethereumWallet, solanaWallet } from "../../../test/wallets.js";
import { formatSiweMessage } from "./siwe-message.js";
import { nonceMigration } from "./nonces.js";
import { walletProvider } from "./wallet-provider.js";

const ORIGIN = "http://app.test";

for (const engine of engines({ postgresUrl: inject("postgresUrl") })) {
  describe(`wallet nonces on core's single-use secret store (${engine.name})`, () => {
    let db: Database;
    let server: Running;

    const post = async (path: string, body: unknown = {}) => {
      const res = await fetch(`${server.url}/auth${path}`, { method: "POST", headers: { "content-type": "application/json", origin: ORIGIN }, body: JSON.stringify(body) });
      const text = await res.text();
      return { status: res.status, body: text ? JSON.parse(text) : null };
    };
    const siwe = (address: string, nonce: string) =>
      formatSiweMessage({ domain: "app.test", address, uri: ORIGIN, version: "1", chainId: 1, nonce, issuedAt: new Date().toISOString() });

    beforeAll(async () => {
      db = await engine.create();
      ({ server } = await startAuthServer({ database: db, baseURL: ORIGIN, logger: silentLogger, providers: [walletProvider({ rateLimit: { nonce: 1000, verify: 1000 } })] }));
    });
    afterAll(async () => {
      await server?.close();
      await db?.close();
    });

    it("stores each nonce as a hash on erebus_verifications (purpose nonce, the family as data), and the provider's own table is gone", async () => {
      const { body } = await post("/siwe/nonce");
      const solana = await post("/siws/nonce");
      const { rows } = await db.query<{ secret_hash: string; data: { family: string }; purpose: string }>(
        "SELECT secret_hash, data, purpose FROM erebus_verifications WHERE provider = 'wallet' ORDER BY created_at DESC, seq DESC LIMIT 2",
      );
      expect(rows.map((r) => [r.purpose, r.data.family])).toEqual([["nonce", "solana"], ["nonce", "ethereum"]]);
      expect(JSON.stringify(rows)).not.toContain(body.nonce);
      expect(JSON.stringify(rows)).not.toContain(solana.body.nonce);
      const table = await db.query<{ t: string | null }>("SELECT to_regclass('erebus_wallet_nonces')::text AS t");
      expect(table.rows[0]!.t).toBeNull();
    });

    it("attack: a Solana nonce in a SIWE message is unknown, and stays usable for the Solana sign-in it was issued for", async () => {
      const { body } = await post("/siws/nonce");
      const wallet = ethereumWallet();
      const message = siwe(wallet.address, body.nonce);
      const refused = await post("/siwe/verify", { message, signature: await wallet.sign(message) });
      expect([refused.status, refused.body.code]).toEqual([401, "ERR_SIWE_NONCE_UNKNOWN"]);
      const sol = await solanaWallet();
      const signed = await sol.signIn(body.input);
      const ok = await post("/siws/verify", { ...signed, address: sol.address });
      expect(ok.status).toBe(200);
    });

    it("counts its limits under core's namespaced names, wallet:nonce and wallet:verify", async () => {
      const wallet = ethereumWallet();
      const { body } = await post("/siwe/nonce");
      const message = siwe(wallet.address, body.nonce);
      expect((await post("/siwe/verify", { message, signature: await wallet.sign(message) })).status).toBe(200);
      const { rows } = await db.query<{ key: string }>("SELECT key FROM erebus_rate_limits");
      const names = new Set(rows.map((r) => r.key.split(":").slice(0, 3).join(":")));
      expect(names).toContain("erebus:wallet:nonce");
      expect(names).toContain("erebus:wallet:verify");
      expect([...names].some((name) => name.includes("wallet-nonce") || name.includes("wallet-verify"))).toBe(false);
    });
  });
}

describe("upgrading from the provider's own nonce table", () => {
  it("drops erebus_wallet_nonces with its live nonces: one issued before the upgrade answers ERR_SIWE_NONCE_UNKNOWN, a new one signs in", async () => {
    const db = await engines({ postgresUrl: null })[0]!.create();
    try {
      const before = createAuth({ database: db, baseURL: ORIGIN, logger: silentLogger, migrate: true, providers: [{ ...walletProvider(), migrations: [nonceMigration] }] });
      await before.ready;
      const old = "OldNonceFromTheOldTable1";
      await db.query("INSERT INTO erebus_wallet_nonces (nonce_hash, family, created_at, expires_at) VALUES (encode(sha256(convert_to($1, 'UTF8')), 'hex'), 'ethereum', now(), now() + interval '10 minutes')", [old]);
      const { server } = await startAuthServer({ database: db, baseURL: ORIGIN, logger: silentLogger, providers: [walletProvider()] });
      try {
        expect((await db.query<{ t: string | null }>("SELECT to_regclass('erebus_wallet_nonces')::text AS t")).rows[0]!.t).toBeNull();
        const post = async (path: string, body: unknown) => {
          const res = await fetch(`${server.url}/auth${path}`, { method: "POST", headers: { "content-type": "application/json", origin: ORIGIN }, body: JSON.stringify(body) });
          return { status: res.status, body: (await res.json()) as { code?: string; message?: string } };
        };
        const wallet = ethereumWallet();
        const stale = formatSiweMessage({ domain: "app.test", address: wallet.address, uri: ORIGIN, version: "1", chainId: 1, nonce: old, issuedAt: new Date().toISOString() });
        const refused = await post("/siwe/verify", { message: stale, signature: await wallet.sign(stale) });
        expect([refused.status, refused.body.code]).toEqual([401, "ERR_SIWE_NONCE_UNKNOWN"]);
        const fresh = await post("/siwe/nonce", { address: wallet.address, chainId: 1 });
        expect((await post("/siwe/verify", { message: fresh.body.message, signature: await wallet.sign(fresh.body.message!) })).status).toBe(200);
      } finally {
        await server.close();
      }
    } finally {
      await db.close();
    }
  });
});
