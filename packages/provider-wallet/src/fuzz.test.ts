import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { silentLogger, type Database } from "@erebus/core";
import { engines, rowCounts } from "../../../test/engines.js";
import { startAuthServer, type Running } from "../../../test/http.js";
import { formatSiweMessage } from "./siwe-message.js";
import { ethereumWallet, solanaWallet } from "../../../test/wallets.js";
import { walletProvider } from "./wallet-provider.js";

const ORIGIN = "http://app.test";

/** Mutations of a valid signed message: the kinds of edits an attacker or a broken client makes. */
const mutation = fc.oneof(
  fc.record({ kind: fc.constant("flip" as const), at: fc.nat(), char: fc.string({ minLength: 1, maxLength: 1, unit: "binary" }) }),
  fc.record({ kind: fc.constant("delete" as const), at: fc.nat(), length: fc.integer({ min: 1, max: 30 }) }),
  fc.record({ kind: fc.constant("insert" as const), at: fc.nat(), text: fc.oneof(fc.string({ maxLength: 40, unit: "binary" }), fc.constantFrom("\n", "\n\n", "\nURI: http://evil.test", "\nNonce: x", "Chain ID: 999\n", "\r\n", "\u0000", "- r\n")) }),
  fc.record({ kind: fc.constant("swapLines" as const), a: fc.nat(), b: fc.nat() }),
  fc.record({ kind: fc.constant("truncate" as const), at: fc.nat() }),
  // Edits that keep the grammar, so the deeper checks (domain, chain, nonce, time, signature) are reached.
  fc.record({ kind: fc.constant("field" as const), edit: fc.nat() }),
);

const FIELD_EDITS: [RegExp, string][] = [
  [/Chain ID: \w+/, "Chain ID: 56"],
  [/Chain ID: \w+/, "Chain ID: devnet"],
  [/Nonce: \w+/, "Nonce: abcdefgh12345"],
  [/^app\.test/, "evil.test"],
  [/URI: \S+/, "URI: http://evil.test/"],
  [/Issued At: \S+/, "Issued At: 2001-01-01T00:00:00Z"],
  [/Issued At: (\S+)/, "Issued At: $1\nExpiration Time: 2001-01-01T00:00:00Z"],
  [/Issued At: (\S+)/, "Issued At: $1\nNot Before: 2999-01-01T00:00:00Z"],
  [/Sign in/, "Sign out"],
];
type Mutation = typeof mutation extends fc.Arbitrary<infer T> ? T : never;

function mutate(message: string, m: Mutation): string {
  const at = (n: number) => n % (message.length + 1);
  switch (m.kind) {
    case "flip":
      return message.slice(0, at(m.at)) + m.char + message.slice(at(m.at) + 1);
    case "delete":
      return message.slice(0, at(m.at)) + message.slice(at(m.at) + m.length);
    case "insert":
      return message.slice(0, at(m.at)) + m.text + message.slice(at(m.at));
    case "swapLines": {
      const lines = message.split("\n");
      const a = m.a % lines.length;
      const b = m.b % lines.length;
      [lines[a], lines[b]] = [lines[b]!, lines[a]!];
      return lines.join("\n");
    }
    case "truncate":
      return message.slice(0, at(m.at));
    case "field": {
      const [pattern, replacement] = FIELD_EDITS[m.edit % FIELD_EDITS.length]!;
      return message.replace(pattern, replacement);
    }
  }
}

const signatureArb = (valid: string) =>
  fc.oneof(fc.constant(valid), fc.string({ maxLength: 200 }), fc.string({ unit: fc.constantFrom(..."0123456789abcdefABCDEF"), maxLength: 300 }).map((h) => `0x${h}`), fc.constant(valid.slice(0, -2)), fc.constant(""));

const engine = engines()[0]!;
describe(`fuzzing the wallet verify routes on ${engine.name}`, () => {
  let db: Database;
  let server: Running;
  const post = async (path: string, body: unknown) => {
    const res = await fetch(`${server.url}/auth${path}`, { method: "POST", headers: { "content-type": "application/json", origin: ORIGIN }, body: JSON.stringify(body) });
    return { status: res.status, type: res.headers.get("content-type") ?? "", body: await res.json().catch(() => null) };
  };
  const counts = () => rowCounts(db);

  beforeAll(async () => {
    db = await engine.create();
    ({ server } = await startAuthServer({ database: db, baseURL: ORIGIN, providers: [walletProvider({ rateLimit: { nonce: 100_000, verify: 100_000 } })], logger: silentLogger }));
  });
  afterAll(async () => {
    await server?.close();
    await db?.close();
  });

  it("answers 300 mutated SIWE messages with no 5xx and no row", async () => {
    const wallet = ethereumWallet();
    const { body: nonce } = await post("/siwe/nonce", {});
    const message = formatSiweMessage({ domain: "app.test", address: wallet.address, statement: "Sign in.", uri: ORIGIN, version: "1", chainId: 1, nonce: nonce.nonce, issuedAt: new Date().toISOString(), resources: ["https://app.test/tos"] });
    const signature = await wallet.sign(message);
    const before = await counts();
    const codes = new Map<string, number>();
    await fc.assert(
      fc.asyncProperty(fc.array(mutation, { minLength: 1, maxLength: 3 }), signatureArb(signature), async (mutations, sig) => {
        const mutated = mutations.reduce(mutate, message);
        fc.pre(mutated !== message);
        const res = await post("/siwe/verify", { message: mutated, signature: sig });
        expect(res.status).toBeGreaterThanOrEqual(400);
        expect(res.status).toBeLessThan(500);
        expect(res.type).toMatch(/^application\/problem\+json/);
        codes.set(res.body.code, (codes.get(res.body.code) ?? 0) + 1);
      }),
      { numRuns: 300, seed: 4361 },
    );
    expect(await counts()).toEqual(before);
    expect(codes.size).toBeGreaterThanOrEqual(4); // the mutations reach several different checks
  });

  it("answers 300 mutated SIWS messages with no 5xx and no row", async () => {
    const wallet = await solanaWallet();
    const { body: nonce } = await post("/siws/nonce", {});
    const signed = await wallet.signIn(nonce.input);
    const before = await counts();
    const codes = new Map<string, number>();
    await fc.assert(
      fc.asyncProperty(
        fc.array(mutation, { minLength: 1, maxLength: 3 }),
        fc.oneof(fc.constant(signed.signature), fc.string({ maxLength: 120 }), fc.constant(signed.signature.slice(1))),
        fc.oneof(fc.constant(wallet.address), fc.string({ maxLength: 50 })),
        async (mutations, sig, address) => {
          const mutated = mutations.reduce(mutate, signed.message);
          fc.pre(mutated !== signed.message);
          const res = await post("/siws/verify", { message: mutated, signature: sig, address });
          expect(res.status).toBeGreaterThanOrEqual(400);
          expect(res.status).toBeLessThan(500);
          expect(res.type).toMatch(/^application\/problem\+json/);
          codes.set(res.body.code, (codes.get(res.body.code) ?? 0) + 1);
        },
      ),
      { numRuns: 300, seed: 4362 },
    );
    expect(await counts()).toEqual(before);
    expect(codes.size).toBeGreaterThanOrEqual(4);
  });
});

describe("wallet rate limits", () => {
  it("limits nonce issuance and verify attempts per client", async () => {
    const db = await engine.create();
    const { server: running } = await startAuthServer({ database: db, baseURL: ORIGIN, providers: [walletProvider({ rateLimit: { nonce: 3, verify: 2 } })], logger: silentLogger });
    try {
      const statuses = async (path: string, n: number) => {
        const out: number[] = [];
        for (let i = 0; i < n; i++) {
          out.push((await fetch(`${running.url}/auth${path}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(path.endsWith("verify") ? { message: "x", signature: "0x00" } : {}) })).status);
        }
        return out;
      };
      expect(await statuses("/siwe/nonce", 4)).toEqual([200, 200, 200, 429]);
      expect(await statuses("/siws/nonce", 1)).toEqual([429]); // one budget for both chains
      expect(await statuses("/siwe/verify", 3)).toEqual([400, 400, 429]);
    } finally {
      await running.close();
      await db.close();
    }
  });
});
