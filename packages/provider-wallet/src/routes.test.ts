import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { silentLogger, type Database } from "@erebus/core";
import { engines, rowCounts } from "../../../test/engines.js";
import { cookieFrom, startAuthServer, type Running } from "../../../test/http.js";
import bs58 from "bs58";
import { formatSiweMessage, type SiweFields } from "./siwe-message.js";
import { formatSiwsMessage } from "./siws-message.js";
import { ethereumWallet, forgeSmallOrderSignature, smallOrderPublicKeys, solanaWallet, withSPlusL } from "../../../test/wallets.js";
import { walletProvider } from "./wallet-provider.js";

const ORIGIN = "http://app.test";
const MINUTE = 60_000;

for (const engine of engines()) {
  describe(`wallet sign-in over HTTP on ${engine.name}`, () => {
    let db: Database;
    let server: Running;
    let now = new Date("2026-06-01T12:00:00.000Z");
    const advance = (ms: number) => (now = new Date(now.getTime() + ms));

    const post = async (path: string, body: unknown = {}, headers: Record<string, string> = {}) => {
      const res = await fetch(`${server.url}/auth${path}`, {
        method: "POST",
        headers: { "content-type": "application/json", origin: ORIGIN, ...headers },
        body: JSON.stringify(body),
      });
      const text = await res.text();
      return { status: res.status, body: text ? JSON.parse(text) : null, res };
    };
    const counts = () => rowCounts(db);
    type Attack = [name: string, status: number, code: string, attack: () => Promise<{ status: number; body: { code: string } }>];
    /** Each attack must fail with its status and code and write nothing (the replay signs in once, legitimately, first). */
    function tryAttacks(attacks: Attack[]) {
      for (const [name, status, code, attack] of attacks) {
        it(`refuses ${name}: ${status} ${code}`, async () => {
          const before = await counts();
          const result = await attack();
          expect(result.status).toBe(status);
          expect(result.body.code).toBe(code);
          const after = await counts();
          expect(after.sessions - before.sessions).toBe(name === "a replayed message" ? 1 : 0);
          expect(after.users - before.users).toBe(name === "a replayed message" ? 1 : 0);
        });
      }
    }

    // ---- Ethereum helpers ----
    async function siweMessage(address: string, overrides: Partial<SiweFields> = {}) {
      const { body } = await post("/siwe/nonce");
      return formatSiweMessage({
        domain: "app.test",
        address,
        statement: "Sign in to the example app.",
        uri: `${ORIGIN}/login`,
        version: "1",
        chainId: 1,
        nonce: body.nonce,
        issuedAt: now.toISOString(),
        ...overrides,
      });
    }
    async function siweSignIn(wallet = ethereumWallet(), overrides: Partial<SiweFields> = {}, provider = "metamask") {
      const message = await siweMessage(wallet.address, overrides);
      return post("/siwe/verify", { message, signature: await wallet.sign(message), provider });
    }

    // ---- Solana helpers ----
    async function siwsSignIn(wallet: Awaited<ReturnType<typeof solanaWallet>>, overrides: Record<string, string | undefined> = {}) {
      const { body } = await post("/siws/nonce");
      const { message, signature } = await wallet.signIn(body.input, overrides);
      return post("/siws/verify", { message, signature, address: wallet.address, provider: "phantom" });
    }

    beforeAll(async () => {
      db = await engine.create({ max: 20 });
      ({ server } = await startAuthServer({
        database: db,
        baseURL: ORIGIN,
        providers: [walletProvider({ ethereum: { chains: [1, 10] }, rateLimit: { nonce: 10_000, verify: 10_000 } })],
        logger: silentLogger,
        clock: () => now,
      }));
    });
    afterAll(async () => {
      await server?.close();
      await db?.close();
    });

    it("issues single-use nonces of ≥ 96 bits with what a client needs to build the message", async () => {
      const a = await post("/siwe/nonce");
      const b = await post("/siwe/nonce");
      expect(a.status).toBe(200);
      expect(a.body).toMatchObject({ nonce: expect.stringMatching(/^[A-Za-z0-9]{22}$/), domain: "app.test", uri: ORIGIN, version: "1", chains: [1, 10] });
      expect(new Date(a.body.expiresAt).getTime()).toBe(now.getTime() + 10 * MINUTE);
      expect(a.body.nonce).not.toBe(b.body.nonce);
      const stored = await db.query("SELECT * FROM erebus_verifications WHERE provider = 'wallet'");
      expect(stored.rows.length).toBeGreaterThanOrEqual(2);
      expect(JSON.stringify(stored.rows)).not.toContain(a.body.nonce);
    });

    it("prepares the exact message for a client that names its account and chain", async () => {
      const wallet = ethereumWallet();
      const { status, body } = await post("/siwe/nonce", { address: wallet.address.toLowerCase(), chainId: 10 });
      expect(status).toBe(200);
      expect(body.message).toBe(
        formatSiweMessage({ domain: "app.test", address: wallet.address, statement: "Sign in to app.test", uri: ORIGIN, version: "1", chainId: 10, nonce: body.nonce, issuedAt: now.toISOString() }),
      );
      const signedIn = await post("/siwe/verify", { message: body.message, signature: await wallet.sign(body.message) });
      expect(signedIn.status).toBe(200);
      const badChain = await post("/siwe/nonce", { address: wallet.address, chainId: 56 });
      expect([badChain.status, badChain.body.code]).toEqual([401, "ERR_SIWE_CHAIN_NOT_ALLOWED"]);
      const badAddress = await post("/siwe/nonce", { address: "0x123", chainId: 1 });
      expect([badAddress.status, badAddress.body.code]).toEqual([400, "ERR_BODY_INVALID"]);
    });

    it("signs an Ethereum wallet in: EIP-55 identity, web3_wallet source type, session", async () => {
      const wallet = ethereumWallet();
      const { status, body, res } = await siweSignIn(wallet);
      expect(status).toBe(200);
      expect(body.user).toMatchObject({
        network: "ethereum",
        source_identifier: wallet.address,
        user_type: "external",
        source_type: { type: "web3_wallet", provider: "metamask", network: "ethereum", metadata: { chain_id: 1, signer: "account" } },
      });
      const cookie = cookieFrom(res, "erebus_session")!;
      const session = await fetch(`${server.url}/auth/session`, { headers: { cookie: `erebus_session=${cookie.value}` } });
      expect((await session.json()).user.id).toBe(body.user.id);

      const again = await siweSignIn(wallet, { chainId: 10 }, "coinbase");
      expect(again.body.user.id).toBe(body.user.id);
      expect(again.body.user.source_type).toMatchObject({ provider: "coinbase", metadata: { chain_id: 10 } });
    });

    it("resolves 50 concurrent sign-ins of one wallet, each with its own nonce, to one row", async () => {
      const wallet = ethereumWallet();
      const results = await Promise.all(Array.from({ length: 50 }, () => siweSignIn(wallet)));
      expect(results.map((r) => r.status)).toEqual(Array(50).fill(200));
      expect(new Set(results.map((r) => r.body.user.id)).size).toBe(1);
      const { rows } = await db.query<{ n: number }>("SELECT count(*)::int AS n FROM user_references WHERE source_identifier = $1", [wallet.address]);
      expect(rows[0]!.n).toBe(1);
    });

    describe("Ethereum attacks, each refused with its own code and nothing written", () => {
      const attacks: Attack[] = [
        ["a replayed message", 401, "ERR_SIWE_NONCE_USED", async () => {
          const wallet = ethereumWallet();
          const message = await siweMessage(wallet.address);
          const signature = await wallet.sign(message);
          expect((await post("/siwe/verify", { message, signature })).status).toBe(200);
          return post("/siwe/verify", { message, signature });
        }],
        ["a nonce this server never issued", 401, "ERR_SIWE_NONCE_UNKNOWN", async () => {
          const wallet = ethereumWallet();
          const message = formatSiweMessage({ domain: "app.test", address: wallet.address, uri: ORIGIN, version: "1", chainId: 1, nonce: "madeUpNonce12345", issuedAt: now.toISOString() });
          return post("/siwe/verify", { message, signature: await wallet.sign(message) });
        }],
        ["an expired nonce", 401, "ERR_SIWE_NONCE_EXPIRED", async () => {
          const wallet = ethereumWallet();
          const { body } = await post("/siwe/nonce");
          advance(11 * MINUTE);
          const message = formatSiweMessage({ domain: "app.test", address: wallet.address, uri: ORIGIN, version: "1", chainId: 1, nonce: body.nonce, issuedAt: now.toISOString() });
          return post("/siwe/verify", { message, signature: await wallet.sign(message) });
        }],
        ["a message for another domain (whatever the Host header says)", 401, "ERR_SIWE_DOMAIN_MISMATCH", async () => {
          const wallet = ethereumWallet();
          const message = await siweMessage(wallet.address, { domain: "evil.test", uri: "http://evil.test" });
          return post("/siwe/verify", { message, signature: await wallet.sign(message) }, { host: "evil.test" });
        }],
        ["a message naming another scheme", 401, "ERR_SIWE_DOMAIN_MISMATCH", async () => {
          const wallet = ethereumWallet();
          const message = await siweMessage(wallet.address, { scheme: "https" });
          return post("/siwe/verify", { message, signature: await wallet.sign(message) });
        }],
        ["a URI on another origin", 401, "ERR_SIWE_URI_MISMATCH", async () => {
          const wallet = ethereumWallet();
          const message = await siweMessage(wallet.address, { uri: "https://app.test.evil.test/login" });
          return post("/siwe/verify", { message, signature: await wallet.sign(message) });
        }],
        ["a chain not in the allow-list", 401, "ERR_SIWE_CHAIN_NOT_ALLOWED", async () => siweSignIn(ethereumWallet(), { chainId: 56 })],
        ["an expired message", 401, "ERR_SIWE_MESSAGE_EXPIRED", async () => siweSignIn(ethereumWallet(), { expirationTime: new Date(now.getTime() - 1000).toISOString() })],
        ["a message not yet valid", 401, "ERR_SIWE_MESSAGE_NOT_YET_VALID", async () => siweSignIn(ethereumWallet(), { notBefore: new Date(now.getTime() + 10 * MINUTE).toISOString() })],
        ["an issuedAt older than the nonce TTL", 401, "ERR_SIWE_ISSUED_AT_INVALID", async () => siweSignIn(ethereumWallet(), { issuedAt: new Date(now.getTime() - 30 * MINUTE).toISOString() })],
        ["an issuedAt in the future", 401, "ERR_SIWE_ISSUED_AT_INVALID", async () => siweSignIn(ethereumWallet(), { issuedAt: new Date(now.getTime() + 10 * MINUTE).toISOString() })],
        ["a message tampered with after signing", 401, "ERR_SIWE_SIGNATURE_INVALID", async () => {
          const wallet = ethereumWallet();
          const message = await siweMessage(wallet.address);
          const signature = await wallet.sign(message);
          return post("/siwe/verify", { message: message.replace("Sign in to the example app.", "Sign in to the example app!"), signature });
        }],
        ["a signature from another key", 401, "ERR_SIWE_SIGNATURE_INVALID", async () => {
          const victim = ethereumWallet();
          const attacker = ethereumWallet();
          const message = await siweMessage(victim.address);
          return post("/siwe/verify", { message, signature: await attacker.sign(message) });
        }],
        ["an odd-length hex signature", 400, "ERR_SIWE_SIGNATURE_MALFORMED", async () => post("/siwe/verify", { message: await siweMessage(ethereumWallet().address), signature: "0xabc" })],
        ["a non-hex signature", 400, "ERR_SIWE_SIGNATURE_MALFORMED", async () => post("/siwe/verify", { message: await siweMessage(ethereumWallet().address), signature: "0x" + "zz".repeat(65) })],
        ["a too-short signature", 400, "ERR_SIWE_SIGNATURE_MALFORMED", async () => post("/siwe/verify", { message: await siweMessage(ethereumWallet().address), signature: "0x" + "11".repeat(64) })],
        ["an oversized message", 413, "ERR_SIWE_MESSAGE_TOO_LARGE", async () => {
          const wallet = ethereumWallet();
          const message = await siweMessage(wallet.address, { resources: Array.from({ length: 60 }, (_, i) => `https://app.test/r/${i}/${"x".repeat(60)}`) });
          return post("/siwe/verify", { message, signature: await wallet.sign(message) });
        }],
        ["a statement over the limit", 413, "ERR_SIWE_MESSAGE_TOO_LARGE", async () => siweSignIn(ethereumWallet(), { statement: "a".repeat(600) })],
        ["a message out of the EIP-4361 grammar", 400, "ERR_SIWE_MESSAGE_MALFORMED", async () => {
          const wallet = ethereumWallet();
          const message = (await siweMessage(wallet.address)).replace("Version: 1\nChain ID: 1", "Chain ID: 1\nVersion: 1");
          return post("/siwe/verify", { message, signature: await wallet.sign(message) });
        }],
      ];
      tryAttacks(attacks);

      it("burns the nonce on a failed signature: a second try with the right signature is a replay", async () => {
        const wallet = ethereumWallet();
        const message = await siweMessage(wallet.address);
        const wrong = await post("/siwe/verify", { message, signature: await ethereumWallet().sign(message) });
        expect(wrong.body.code).toBe("ERR_SIWE_SIGNATURE_INVALID");
        const right = await post("/siwe/verify", { message, signature: await wallet.sign(message) });
        expect(right.body.code).toBe("ERR_SIWE_NONCE_USED");
      });

      it("refuses a wallet name that is not a short token", async () => {
        const wallet = ethereumWallet();
        const message = await siweMessage(wallet.address);
        const res = await post("/siwe/verify", { message, signature: await wallet.sign(message), provider: "<script>" });
        expect(res.status).toBe(400);
        expect(res.body.code).toBe("ERR_BODY_INVALID");
      });
    });

    it("signs a Solana wallet in with the server's SolanaSignInInput, signed as a wallet would", async () => {
      const wallet = await solanaWallet();
      const nonce = await post("/siws/nonce");
      expect(nonce.body.input).toEqual({
        domain: "app.test",
        uri: ORIGIN,
        version: "1",
        chainId: "mainnet",
        nonce: nonce.body.nonce,
        issuedAt: now.toISOString(),
        statement: "Sign in to app.test",
      });
      const { message, signature } = await wallet.signIn(nonce.body.input);
      const res = await post("/siws/verify", { message, signature, address: wallet.address, provider: "phantom" });
      expect(res.status).toBe(200);
      expect(res.body.user).toMatchObject({
        network: "solana",
        source_identifier: wallet.address,
        source_type: { type: "web3_wallet", provider: "phantom", network: "solana", metadata: { chain_id: "mainnet" } },
      });
      const again = await siwsSignIn(wallet);
      expect(again.body.user.id).toBe(res.body.user.id);
    });

    describe("Solana attacks, each refused with its own code and nothing written", () => {
      const attacks: Attack[] = [
        ["a replayed message", 401, "ERR_SIWS_NONCE_USED", async () => {
          const wallet = await solanaWallet();
          const { body } = await post("/siws/nonce");
          const signed = await wallet.signIn(body.input);
          expect((await post("/siws/verify", { ...signed, address: wallet.address })).status).toBe(200);
          return post("/siws/verify", { ...signed, address: wallet.address });
        }],
        ["a nonce this server never issued", 401, "ERR_SIWS_NONCE_UNKNOWN", async () => siwsSignIn(await solanaWallet(), { nonce: "madeUpNonce12345" })],
        ["an expired nonce", 401, "ERR_SIWS_NONCE_EXPIRED", async () => {
          const wallet = await solanaWallet();
          const { body } = await post("/siws/nonce");
          advance(11 * MINUTE);
          const signed = await wallet.signIn(body.input, { issuedAt: now.toISOString() });
          return post("/siws/verify", { ...signed, address: wallet.address });
        }],
        ["a message for another domain", 401, "ERR_SIWS_DOMAIN_MISMATCH", async () => siwsSignIn(await solanaWallet(), { domain: "evil.test" })],
        ["a URI on another origin", 401, "ERR_SIWS_URI_MISMATCH", async () => siwsSignIn(await solanaWallet(), { uri: "http://evil.test" })],
        ["a chain not in the allow-list", 401, "ERR_SIWS_CHAIN_NOT_ALLOWED", async () => siwsSignIn(await solanaWallet(), { chainId: "devnet" })],
        ["an expired message", 401, "ERR_SIWS_MESSAGE_EXPIRED", async () => siwsSignIn(await solanaWallet(), { expirationTime: new Date(now.getTime() - 1000).toISOString() })],
        ["a message not yet valid", 401, "ERR_SIWS_MESSAGE_NOT_YET_VALID", async () => siwsSignIn(await solanaWallet(), { notBefore: new Date(now.getTime() + 10 * MINUTE).toISOString() })],
        ["an issuedAt in the future", 401, "ERR_SIWS_ISSUED_AT_INVALID", async () => siwsSignIn(await solanaWallet(), { issuedAt: new Date(now.getTime() + 10 * MINUTE).toISOString() })],
        ["a message tampered with after signing", 401, "ERR_SIWS_SIGNATURE_INVALID", async () => {
          const wallet = await solanaWallet();
          const { body } = await post("/siws/nonce");
          const signed = await wallet.signIn(body.input);
          return post("/siws/verify", { message: signed.message.replace("Sign in to app.test", "Sign in to app.test!"), signature: signed.signature, address: wallet.address });
        }],
        ["a signature from another key", 401, "ERR_SIWS_SIGNATURE_INVALID", async () => {
          const victim = await solanaWallet();
          const attacker = await solanaWallet();
          const { body } = await post("/siws/nonce");
          const { message } = await victim.signIn(body.input);
          return post("/siws/verify", { message, signature: await attacker.signText(message), address: victim.address });
        }],
        ["a message claiming another address than the signer's", 401, "ERR_SIWS_ADDRESS_MISMATCH", async () => {
          const victim = await solanaWallet();
          const attacker = await solanaWallet();
          const { body } = await post("/siws/nonce");
          const { message, signature } = await attacker.signIn(body.input, { address: victim.address });
          return post("/siws/verify", { message, signature, address: attacker.address });
        }],
        ["a signature that is not base58", 400, "ERR_SIWS_SIGNATURE_MALFORMED", async () => {
          const wallet = await solanaWallet();
          const { body } = await post("/siws/nonce");
          const { message } = await wallet.signIn(body.input);
          return post("/siws/verify", { message, signature: "0OIl+/".repeat(10), address: wallet.address });
        }],
        ["a signature of the wrong length", 400, "ERR_SIWS_SIGNATURE_MALFORMED", async () => {
          const wallet = await solanaWallet();
          const { body } = await post("/siws/nonce");
          const { message, signature } = await wallet.signIn(body.input);
          return post("/siws/verify", { message, signature: signature.slice(0, 40), address: wallet.address });
        }],
        ["an address that is not a 32-byte key", 400, "ERR_SIWS_ADDRESS_INVALID", async () => {
          const wallet = await solanaWallet();
          const { body } = await post("/siws/nonce");
          const { message, signature } = await wallet.signIn(body.input);
          return post("/siws/verify", { message, signature, address: "1111" });
        }],
        ["an oversized message", 413, "ERR_SIWS_MESSAGE_TOO_LARGE", async () => siwsSignIn(await solanaWallet(), { statement: "x".repeat(5000) })],
        ["a message without a nonce", 400, "ERR_SIWS_MESSAGE_MALFORMED", async () => siwsSignIn(await solanaWallet(), { nonce: undefined })],
      ];
      tryAttacks(attacks);

      it("finding 4: SIWS refuses a small-order public key (System Program address and every torsion point, forged S=0 signatures)", async () => {
        const before = await counts();
        const answers: string[] = [];
        for (const key of smallOrderPublicKeys()) {
          const address = bs58.encode(key.bytes);
          const { body } = await post("/siws/nonce");
          // Vary the request id until S = 0 with a small-order R verifies under this key (≈ 2 in 3 per message).
          let forged: { message: string; signature: string } | undefined;
          for (let i = 0; !forged && i < 100; i++) {
            const message = formatSiwsMessage({ ...body.input, address, requestId: `forged-${i}` });
            const signature = forgeSmallOrderSignature(key.bytes, new TextEncoder().encode(message));
            if (signature) forged = { message, signature: bs58.encode(signature) };
          }
          const res = await post("/siws/verify", { ...forged!, address, provider: "phantom" });
          answers.push(`${key.name}: ${res.status} ${res.body.code}`);
        }
        expect(answers).toEqual(smallOrderPublicKeys().map((key) => `${key.name}: 400 ERR_SIWS_ADDRESS_INVALID`));
        expect(smallOrderPublicKeys().map((key) => bs58.encode(key.bytes))).toContain("11111111111111111111111111111111");
        expect(await counts()).toEqual(before);
      });

      it("finding 12: SIWS refuses CR and TAB inside URI and every other field (ERR_SIWS_MESSAGE_MALFORMED), signed by the wallet", async () => {
        const wallet = await solanaWallet();
        const before = await counts();
        const answers: string[] = [];
        for (const field of ["domain", "statement", "uri", "version", "chainId", "nonce", "issuedAt", "expirationTime", "notBefore", "requestId"]) {
          for (const char of ["\r", "\t"]) {
            const { body } = await post("/siws/nonce");
            const input: Record<string, string | undefined> = {
              ...body.input,
              expirationTime: new Date(now.getTime() + 5 * MINUTE).toISOString(),
              notBefore: new Date(now.getTime() - MINUTE).toISOString(),
              requestId: "req-1",
            };
            // At the end of the value: where a URL parser drops it (WHATWG URL strips CR and TAB) and a wallet shows nothing.
            const { message, signature } = await wallet.signIn(input, { [field]: `${input[field]}${char}` });
            const res = await post("/siws/verify", { message, signature, address: wallet.address });
            answers.push(`${field} ${JSON.stringify(char)}: ${res.status} ${res.body.code}`);
          }
        }
        expect(answers.filter((a) => !a.endsWith("400 ERR_SIWS_MESSAGE_MALFORMED"))).toEqual([]);
        // Resources, one more field: a CR in the middle of a resource URI.
        const { body } = await post("/siws/nonce");
        const signed = await wallet.signIn(body.input);
        const withResources = `${signed.message}\nResources:\n- https://app.test/a\r/b`;
        const res = await post("/siws/verify", { message: withResources, signature: await wallet.signText(withResources), address: wallet.address });
        expect([res.status, res.body.code]).toEqual([400, "ERR_SIWS_MESSAGE_MALFORMED"]);
        expect(await counts()).toEqual(before);
      });

      it("finding 12: SIWE refuses CR and TAB in every field too (the EIP-4361 grammar)", async () => {
        const wallet = ethereumWallet();
        const message = await siweMessage(wallet.address, { expirationTime: new Date(now.getTime() + 5 * MINUTE).toISOString(), notBefore: now.toISOString(), requestId: "req-1", resources: ["https://app.test/r"] });
        const values = ["app.test", "Sign in to the example app.", `${ORIGIN}/login`, "Version: 1", "Chain ID: 1", message.match(/Nonce: (\w+)/)![1]!, now.toISOString(), "req-1", "https://app.test/r"];
        const before = await counts();
        for (const value of values) {
          for (const char of ["\r", "\t"]) {
            const tampered = message.replace(value, `${value}${char}`);
            expect(tampered).not.toBe(message);
            const res = await post("/siwe/verify", { message: tampered, signature: await wallet.sign(tampered) });
            expect([value, char, res.status, res.body.code]).toEqual([value, char, 400, "ERR_SIWE_MESSAGE_MALFORMED"]);
          }
        }
        expect(await counts()).toEqual(before);
      });

      it("finding 4: SIWS refuses a valid signature re-encoded with S + L, and still signs the wallet in with the original", async () => {
        const wallet = await solanaWallet();
        const { body } = await post("/siws/nonce");
        const { message, signature } = await wallet.signIn(body.input);
        const before = await counts();
        const malleated = await post("/siws/verify", { message, signature: bs58.encode(withSPlusL(bs58.decode(signature))), address: wallet.address });
        expect([malleated.status, malleated.body.code]).toEqual([401, "ERR_SIWS_SIGNATURE_INVALID"]);
        expect(await counts()).toEqual(before);
        expect((await siwsSignIn(wallet)).status).toBe(200);
      });
    });
  });
}
