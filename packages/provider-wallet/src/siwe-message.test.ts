import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { toChecksumAddress } from "@erebus/core/provider";
import { formatSiweMessage, parseSiweMessage, SiweParseCache, type SiweFields } from "./siwe-message.js";

const address = () => toChecksumAddress(`0x${randomBytes(20).toString("hex")}`);
const nonce = () => randomBytes(16).toString("hex");

/** Fixed parts as the nonce route writes them, and some it does not (scheme, times, resources). */
const templates: Omit<SiweFields, "address" | "chainId" | "nonce" | "issuedAt">[] = [
  { domain: "app.example", uri: "https://app.example", version: "1", statement: "Sign in to app.example" },
  { domain: "app.example:8443", uri: "https://app.example:8443/login", version: "1", statement: "Link this wallet to your account on app.example" },
  { domain: "127.0.0.1", uri: "http://127.0.0.1", version: "1" },
  { scheme: "https", domain: "app.example", uri: "https://app.example", version: "1", statement: "Confirm it is you", expirationTime: "2030-01-01T00:00:00Z", notBefore: "2020-01-01T00:00:00.5+02:00", requestId: "r-1", resources: ["ipfs://bafy", "https://app.example/terms"] },
];

describe("formatSiweMessage: the parse kept for the verify", () => {
  it("is, for every message written after the first with the same fixed parts, exactly the strict parser's (no ABNF parse needed)", () => {
    const cache = new SiweParseCache();
    for (let i = 0; i < 200; i++) {
      const template = templates[i % templates.length]!;
      const issued = new Date(Date.UTC(2020, 0, 1) + Math.floor(Math.random() * 4e11));
      const fields: SiweFields = { ...template, address: address(), chainId: [1, 10, 8453, 0, 2 ** 40][i % 5]!, nonce: nonce(), issuedAt: i % 3 ? issued.toISOString() : issued.toISOString().replace(".000Z", "Z") };
      const text = formatSiweMessage(fields, cache);
      expect(cache.take(text)).toEqual(parseSiweMessage(text));
    }
  });

  it("parses for real whatever the fast path does not vouch for, and refuses what the grammar refuses", () => {
    const cache = new SiweParseCache();
    const base = { ...templates[0]!, chainId: 1, nonce: nonce(), issuedAt: new Date().toISOString() };
    formatSiweMessage({ ...base, address: address() }, cache); // the template is known from here on
    const good = address();
    const bad: Partial<SiweFields>[] = [
      { address: good.toLowerCase() === good ? good.replace(/[0-9]$/, "A") : good.toLowerCase() }, // not EIP-55
      { address: `${good}0` },
      { nonce: "short" },
      { nonce: "has-a-dash-in-it" },
      { chainId: -1 },
      { chainId: 1.5 },
      { issuedAt: "2026-02-31T00:00:00Z" },
      { issuedAt: "yesterday" },
    ];
    for (const change of bad) {
      const fields = { ...base, address: good, ...change };
      expect(() => formatSiweMessage(fields, cache), JSON.stringify(change)).toThrow(TypeError);
    }
    // Valid but outside the fast path's subset (a time with an offset): parsed, and kept as parsed.
    const offset = { ...base, address: good, issuedAt: "2026-11-27T10:00:00+01:00" };
    const text = formatSiweMessage(offset, cache);
    expect(cache.take(text)).toEqual(parseSiweMessage(text));
  });

  it("never vouches for fixed parts that did not parse: a bad domain or statement is refused every time", () => {
    const cache = new SiweParseCache();
    const fields = { domain: "app.example", uri: "https://app.example", version: "1", address: address(), chainId: 1, nonce: nonce(), issuedAt: new Date().toISOString() };
    formatSiweMessage(fields, cache);
    for (let i = 0; i < 3; i++) {
      expect(() => formatSiweMessage({ ...fields, statement: "two\nlines" }, cache)).toThrow(TypeError);
      expect(() => formatSiweMessage({ ...fields, uri: "not a uri" }, cache)).toThrow(TypeError);
    }
  });

  it("review: the template is keyed by the text it writes, so fields written alike share it and fields written differently do not (a null statement is the line \"null\")", () => {
    const cache = new SiweParseCache();
    const base = { domain: "app.example", uri: "https://app.example", version: "1", chainId: 1, issuedAt: new Date().toISOString() };
    formatSiweMessage({ ...base, address: address(), nonce: nonce() }, cache);
    const text = formatSiweMessage({ ...base, address: address(), nonce: nonce(), statement: null as unknown as string }, cache);
    expect(cache.take(text)).toEqual(parseSiweMessage(text));
    const zero = formatSiweMessage({ ...base, address: address(), nonce: nonce(), chainId: -0 }, cache);
    expect(Object.is(cache.take(zero)!.chainId, 0)).toBe(true);
  });
});
