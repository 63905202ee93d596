import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { silentLogger, type Database, type ErebusAuth } from "@erebus/core";
import { engines } from "../../../test/engines.js";
import { startAuthServer, type Running } from "../../../test/http.js";
import { ethereumWallet, solanaWallet } from "../../../test/wallets.js";
import { walletProvider } from "./wallet-provider.js";

const ORIGIN = "http://app.test";

/**
 * The database with its durable commits counted: each transaction, and each write sent outside one
 * (autocommit). A rate-limit hit is left out: its table is UNLOGGED, so its commit writes no WAL and
 * waits for no fsync (core migration 0006); how many there are is counted apart.
 */
function counting(db: Database) {
  let transactions = 0;
  let autocommitWrites = 0;
  let limitHits = 0;
  const isLimitHit = (sql: string) => /^\s*INSERT INTO erebus_rate_limits\b/.test(sql);
  const isWrite = (sql: string) => /^\s*(WITH\b[\s\S]*\b)?(INSERT|UPDATE|DELETE)\b/i.test(sql);
  const wrapped: Database = {
    ...db,
    engine: db.engine,
    query: (sql, params) => {
      if (isLimitHit(sql)) limitHits++;
      else if (isWrite(sql)) autocommitWrites++;
      return db.query(sql, params);
    },
    exec: (sql) => db.exec(sql),
    transaction: (fn) => {
      transactions++;
      return db.transaction(fn);
    },
    listen: (channel, onNotify, onLost) => db.listen(channel, onNotify, onLost),
    close: () => db.close(),
  };
  return {
    db: wrapped,
    commits: () => transactions + autocommitWrites,
    limitHits: () => limitHits,
    reset: () => {
      transactions = 0;
      autocommitWrites = 0;
      limitHits = 0;
    },
  };
}

for (const engine of engines()) {
  describe(`wallet sign-in in one commit on ${engine.name}`, () => {
    let raw: Database;
    let counted: ReturnType<typeof counting>;
    let server: Running;
    let auth: ErebusAuth;

    const post = async (path: string, body: unknown = {}) => {
      const res = await fetch(`${server.url}/auth${path}`, { method: "POST", headers: { "content-type": "application/json", origin: ORIGIN }, body: JSON.stringify(body) });
      const text = await res.text();
      return { status: res.status, body: text ? JSON.parse(text) : null };
    };
    async function signedSiwe(wallet = ethereumWallet()) {
      const { body } = await post("/siwe/nonce", { address: wallet.address, chainId: 1 });
      return { wallet, message: body.message as string, signature: await wallet.sign(body.message) };
    }

    beforeAll(async () => {
      raw = await engine.create();
      counted = counting(raw);
      ({ server, auth } = await startAuthServer({
        database: counted.db,
        baseURL: ORIGIN,
        providers: [walletProvider({ rateLimit: { nonce: 1000, verify: 1000 } })],
        logger: silentLogger,
        production: false,
      }));
    });
    afterAll(async () => {
      await server?.close();
      await raw?.close();
    });

    it("a SIWE sign-in commits once: nonce, identity and session together, the client's limit hit apart (no fsync); the nonce once", async () => {
      const { message, signature } = await signedSiwe();
      counted.reset();
      const signedIn = await post("/siwe/verify", { message, signature });
      expect(signedIn.status).toBe(200);
      expect([counted.commits(), counted.limitHits()]).toEqual([1, 1]);
      counted.reset();
      expect((await post("/siwe/nonce", {})).status).toBe(200);
      expect([counted.commits(), counted.limitHits()]).toEqual([1, 1]);
    });

    it("a SIWS sign-in commits once too", async () => {
      const wallet = await solanaWallet();
      const { body } = await post("/siws/nonce");
      const { message, signature } = await wallet.signIn(body.input);
      counted.reset();
      const signedIn = await post("/siws/verify", { message, signature, address: wallet.address });
      expect(signedIn.status).toBe(200);
      expect([counted.commits(), counted.limitHits()]).toEqual([1, 1]);
    });

    it("attack: a wrong signature still uses the nonce up (the right one after it is refused as used)", async () => {
      const { wallet, message, signature } = await signedSiwe();
      const forged = await ethereumWallet().sign(message);
      const bad = await post("/siwe/verify", { message, signature: forged });
      expect(bad.status).toBe(401);
      expect(bad.body.code).toBe("ERR_SIWE_SIGNATURE_INVALID");
      const retry = await post("/siwe/verify", { message, signature });
      expect([retry.status, retry.body.code]).toEqual([401, "ERR_SIWE_NONCE_USED"]);
      expect(await auth.api.findUser("ethereum", wallet.address)).toBeNull();
    });

    it("attack: a sign-in refused after the signature check (deactivated user) still uses the nonce up, and writes no session", async () => {
      const first = await signedSiwe();
      const user = (await post("/siwe/verify", { message: first.message, signature: first.signature })).body.user as { id: string };
      await auth.api.deactivateUser(user.id);
      const { message, signature } = await signedSiwe(first.wallet);
      const sessionsBefore = (await raw.query<{ n: number }>("SELECT count(*)::int AS n FROM erebus_sessions WHERE user_id = $1", [user.id])).rows[0]!.n;
      const refused = await post("/siwe/verify", { message, signature });
      expect([refused.status, refused.body.code]).toEqual([403, "ERR_USER_DEACTIVATED"]);
      const sessionsAfter = (await raw.query<{ n: number }>("SELECT count(*)::int AS n FROM erebus_sessions WHERE user_id = $1", [user.id])).rows[0]!.n;
      expect(sessionsAfter).toBe(sessionsBefore);
      // The transaction that consumed the nonce rolled back; the nonce was used up on its own all the same.
      await auth.api.reactivateUser(user.id);
      const again = await post("/siwe/verify", { message, signature });
      expect([again.status, again.body.code]).toEqual([401, "ERR_SIWE_NONCE_USED"]);
    });

    it("attack: a message the server wrote, then altered (another domain) and signed, is parsed afresh and refused", async () => {
      const wallet = ethereumWallet();
      const { body } = await post("/siwe/nonce", { address: wallet.address, chainId: 1 });
      const altered = (body.message as string).replace("app.test wants you", "evil.test wants you");
      const result = await post("/siwe/verify", { message: altered, signature: await wallet.sign(altered) });
      expect([result.status, result.body.code]).toEqual([401, "ERR_SIWE_DOMAIN_MISMATCH"]);
      // Refused before the nonce is touched (as every message check is): the untouched message still signs in.
      const original = await post("/siwe/verify", { message: body.message, signature: await wallet.sign(body.message) });
      expect(original.status).toBe(200);
    });

    it("attack: the same signed message sent twice at once signs in exactly once", async () => {
      const { message, signature } = await signedSiwe();
      const results = await Promise.all(Array.from({ length: 6 }, () => post("/siwe/verify", { message, signature })));
      expect(results.filter((r) => r.status === 200)).toHaveLength(1);
      expect(results.filter((r) => r.status !== 200).every((r) => r.body.code === "ERR_SIWE_NONCE_USED")).toBe(true);
    });
  });
}

describe("wallet verify limit across instances", () => {
  it("attack: the shared counter, hit before the proof, refuses a client over the limit on another instance, and the nonce is used up", async () => {
    const db = await engines()[0]!.create();
    const options = { database: db, baseURL: ORIGIN, logger: silentLogger, production: false } as const;
    const a = await startAuthServer({ ...options, providers: [walletProvider({ rateLimit: { nonce: 100, verify: 2 } })] });
    const b = await startAuthServer({ ...options, migrate: false, providers: [walletProvider({ rateLimit: { nonce: 100, verify: 2 } })] });
    try {
      const post = async (server: Running, path: string, body: unknown = {}) => {
        const res = await fetch(`${server.url}/auth${path}`, { method: "POST", headers: { "content-type": "application/json", origin: ORIGIN }, body: JSON.stringify(body) });
        return { status: res.status, body: (await res.json()) as Record<string, unknown> };
      };
      const signed = async (server: Running) => {
        const wallet = ethereumWallet();
        const { body } = await post(server, "/siwe/nonce", { address: wallet.address, chainId: 1 });
        return { message: body.message as string, signature: await wallet.sign(body.message as string) };
      };
      // Two sign-ins on A use the client's budget up; B's own memory has counted nothing.
      for (let i = 0; i < 2; i++) expect((await post(a.server, "/siwe/verify", await signed(a.server))).status).toBe(200);
      const attempt = await signed(b.server);
      const refused = await post(b.server, "/siwe/verify", attempt);
      expect([refused.status, refused.body.code]).toEqual([429, "ERR_RATE_LIMITED"]);
      const { rows } = await db.query<{ n: number }>("SELECT count(*)::int AS n FROM erebus_verifications WHERE provider = 'wallet' AND purpose = 'nonce' AND consumed_at IS NOT NULL");
      // The two sign-ins. The refused attempt was turned away by the shared counter before its proof
      // was looked at (review: before any RPC), so its nonce had no try and is not used up.
      expect(rows[0]!.n).toBe(2);
    } finally {
      await b.server.close();
      await a.server.close();
      await db.close();
    }
  });
});
