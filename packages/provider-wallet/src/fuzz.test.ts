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

  // What PostgreSQL refuses in text (U+0000) and what is not text at all (unpaired surrogates),
  // inserted into each string field of each route, at its start, middle and end, and for messages
  // at the start and end of every line. The signature is made over the edited text, so nothing but
  // the character stands in the way: each must be a 400, never a 5xx, and write nothing.
  it("answers NUL and lone surrogates in every string field of every route with a 400 and no row", async () => {
    const BAD = ["\u0000", "\ud800", "\udfff"];
    const positions = (value: string) => {
      const at = new Set([0, Math.floor(value.length / 2), value.length]);
      for (let i = value.indexOf("\n"); i !== -1; i = value.indexOf("\n", i + 1)) at.add(i).add(i + 1);
      return [...at];
    };
    const edits = (value: string) => BAD.flatMap((char) => positions(value).map((at) => value.slice(0, at) + char + value.slice(at)));
    const eth = ethereumWallet();
    const sol = await solanaWallet();
    const siweMessage = async () => {
      const { body } = await post("/siwe/nonce", {});
      return formatSiweMessage({ domain: "app.test", address: eth.address, statement: "Sign in.", uri: ORIGIN, version: "1", chainId: 1, nonce: body.nonce, issuedAt: new Date().toISOString(), requestId: "r1", resources: ["https://app.test/tos"] });
    };
    const siwsMessage = async () => (await sol.signIn((await post("/siws/nonce", {})).body.input, { requestId: "r1" })).message;

    type Case = { route: string; field: string; body: () => Promise<Record<string, unknown>> };
    const cases: Case[] = [];
    const add = (route: string, field: string, values: string[], body: (value: string) => Promise<Record<string, unknown>>) => {
      for (const value of values) cases.push({ route, field, body: () => body(value) });
    };
    add("/siwe/nonce", "address", edits(eth.address), async (address) => ({ address, chainId: 1 }));
    add("/siwe/nonce", "(unknown key)", BAD, async (char) => ({ [`x${char}`]: char }));
    add("/siwe/verify", "message", edits(await siweMessage()), async (template) => {
      const message = template.replace(/Nonce: \w+/, `Nonce: ${(await post("/siwe/nonce", {})).body.nonce}`);
      return { message, signature: await eth.sign(message), provider: "metamask" };
    });
    add("/siwe/verify", "signature", edits(await eth.sign("x")), async (signature) => ({ message: await siweMessage(), signature }));
    add("/siwe/verify", "provider", edits("metamask"), async (provider) => {
      const message = await siweMessage();
      return { message, signature: await eth.sign(message), provider };
    });
    add("/siws/nonce", "(unknown key)", BAD, async (char) => ({ [`x${char}`]: char }));
    add("/siws/verify", "message", edits(await siwsMessage()), async (template) => {
      const message = template.replace(/Nonce: \w+/, `Nonce: ${(await post("/siws/nonce", {})).body.nonce}`);
      return { message, signature: await sol.signText(message), address: sol.address, provider: "phantom" };
    });
    add("/siws/verify", "signature", edits(await sol.signText("x")), async (signature) => ({ message: await siwsMessage(), signature, address: sol.address }));
    add("/siws/verify", "address", edits(sol.address), async (address) => {
      const message = await siwsMessage();
      return { message, signature: await sol.signText(message), address };
    });
    add("/siws/verify", "provider", edits("phantom"), async (provider) => {
      const message = await siwsMessage();
      return { message, signature: await sol.signText(message), address: sol.address, provider };
    });

    const before = await counts();
    const answers: string[] = [];
    for (const c of cases) {
      const res = await post(c.route, await c.body());
      // /siws/nonce reads no body: an ignored key is a 200 with a nonce, and writes no identity.
      if (c.route === "/siws/nonce" && res.status === 200) continue;
      if (res.status !== 400 || !res.type.startsWith("application/problem+json")) answers.push(`${c.route} ${c.field}: ${res.status} ${res.body?.code}`);
    }
    expect(cases.length).toBeGreaterThan(150);
    expect(answers).toEqual([]);
    expect(await counts()).toEqual(before);
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
