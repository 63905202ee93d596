import { readFileSync } from "node:fs";
import bs58 from "bs58";
import { describe, expect, it } from "vitest";
import { AuthError } from "@erebus/core";
import { formatSiweMessage, parseSiweMessage, type SiweFields } from "./siwe-message.js";
import { formatSiwsMessage, parseSiwsMessage } from "./siws-message.js";
import { recoverPersonalSigner, hexToBytes, Ed25519KeyCache, verifyEd25519 } from "./signature.js";
import { checkSiweMessage, checkSiwsMessage, decodeSiweSignature, decodeSiwsCredentials, verifySiwsSignature, type MessagePolicy } from "./verify.js";

const fixture = (path: string) => JSON.parse(readFileSync(new URL(`../fixtures/${path}`, import.meta.url), "utf8"));

const basePolicy = { clockSkewMs: 60_000, maxStatementLength: 512, maxResources: 16, maxResourceLength: 512 };

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
    return undefined;
  } catch (error) {
    if (!(error instanceof AuthError)) throw error;
    return error.code;
  }
}

describe("official SIWE vectors (spruceid/siwe test/)", () => {
  const positive = Object.entries(fixture("siwe/parsing_positive.json") as Record<string, { message: string; fields: SiweFields }>);
  const negative = Object.entries(fixture("siwe/parsing_negative.json") as Record<string, string>);
  const invalidUris = Object.entries(fixture("siwe/v3-extra/invalid_uris.json") as Record<string, string>);
  const negativeObjects = Object.entries(fixture("siwe/parsing_negative_objects.json") as Record<string, SiweFields>);

  it("has the expected counts", () => {
    expect([positive.length, negative.length, invalidUris.length, negativeObjects.length]).toEqual([19, 29, 16, 18]);
  });

  it.each(positive)("parses positive %s into its fields, and formats the fields back into the message", (_name, vector) => {
    const parsed = parseSiweMessage(vector.message);
    expect(parsed).toBeDefined();
    for (const [key, value] of Object.entries(vector.fields)) expect(parsed![key as keyof SiweFields]).toEqual(value ?? undefined);
    expect(formatSiweMessage(vector.fields)).toBe(vector.message);
  });

  it.each(negative)("refuses to parse negative %s", (_name, message) => {
    expect(parseSiweMessage(message)).toBeUndefined();
  });

  it.each(invalidUris)("refuses a malformed URI: %s", (_name, message) => {
    expect(parseSiweMessage(message)).toBeUndefined();
  });

  it.each(negativeObjects)("refuses to build a message from the invalid object %s", (_name, fields) => {
    expect(() => formatSiweMessage(fields)).toThrow(TypeError);
  });

  type VerificationVector = SiweFields & { signature: string; time?: string; domainBinding?: string; matchNonce?: string; scheme?: string };
  const policyFor = (v: VerificationVector): MessagePolicy => ({
    ...basePolicy,
    domain: v.domainBinding ?? v.domain,
    origin: new URL(v.uri).origin,
    chains: [v.chainId],
    now: new Date(v.time ?? v.issuedAt),
    maxIssuedAgeMs: undefined, // the vectors are years old (and one is issued after its own "now"); freshness is tested over HTTP
  });
  /** What the verify route does, minus the nonce store: parse + policy + (for the vectors) nonce match + signature. */
  function verifyVector(v: VerificationVector): "ok" | string {
    const { signature, time: _t, domainBinding: _d, matchNonce, ...fields } = v;
    let message: string;
    try {
      message = formatSiweMessage(fields);
    } catch {
      return "ERR_SIWE_MESSAGE_MALFORMED"; // what the verify route answers for the same text
    }
    const code = codeOf(() => {
      const bytes = decodeSiweSignature(signature);
      const parsed = checkSiweMessage(message, policyFor(v));
      if (matchNonce !== undefined && matchNonce !== parsed.nonce) throw new AuthError("ERR_SIWE_NONCE_UNKNOWN", { status: 401, title: "nonce" });
      if (recoverPersonalSigner(message, bytes) !== parsed.address) throw new AuthError("ERR_SIWE_SIGNATURE_INVALID", { status: 401, title: "sig" });
    });
    return code ?? "ok";
  }

  const verificationPositive = Object.entries(fixture("siwe/verification_positive.json") as Record<string, VerificationVector>);
  const verificationNegative = Object.entries(fixture("siwe/verification_negative.json") as Record<string, VerificationVector>);
  it("has 4 positive and 10 negative verification vectors", () => {
    expect([verificationPositive.length, verificationNegative.length]).toEqual([4, 10]);
  });
  it.each(verificationPositive)("verifies positive %s", (_name, vector) => {
    expect(verifyVector(vector)).toBe("ok");
  });
  const expectedCodes: Record<string, string> = {
    "expired message": "ERR_SIWE_MESSAGE_EXPIRED",
    "domain binding": "ERR_SIWE_DOMAIN_MISMATCH",
    "custom time": "ERR_SIWE_MESSAGE_EXPIRED",
    "custom nonce": "ERR_SIWE_NONCE_UNKNOWN",
    "malformed signature": "ERR_SIWE_SIGNATURE_MALFORMED",
    "wrong signature": "ERR_SIWE_SIGNATURE_INVALID",
    "not yet valid": "ERR_SIWE_MESSAGE_NOT_YET_VALID",
    "invalid issuedAt": "ERR_SIWE_MESSAGE_MALFORMED",
    "invalid notBefore": "ERR_SIWE_MESSAGE_MALFORMED",
    "invalid expirationTime": "ERR_SIWE_MESSAGE_MALFORMED",
  };
  it.each(verificationNegative)("rejects negative %s with its own code", (name, vector) => {
    expect(verifyVector(vector)).toBe(expectedCodes[name]);
  });
});

describe("SIWS vectors", () => {
  it("parses and formats the 6 @solana/wallet-standard-util cases exactly", () => {
    const cases = Object.entries(fixture("siws/wallet-standard-util_signIn_cases.json") as Record<string, { parsed: object; text: string }>);
    expect(cases).toHaveLength(6);
    for (const [, c] of cases) {
      expect(parseSiwsMessage(c.text)).toEqual(c.parsed);
      expect(formatSiwsMessage(c.parsed as never)).toBe(c.text);
    }
  });

  type Generated = { input: Record<string, string>; message: string; signatureBase58: string; verifySignIn?: boolean; expect?: string; verifyAt?: string; expectedDomain?: string };
  const generated = Object.entries(fixture("siws/generated_siws_vectors.json") as Record<string, Generated>).filter(([name]) => name !== "_meta");
  const policy = (v: Generated, overrides: Partial<MessagePolicy> = {}): MessagePolicy => ({
    ...basePolicy,
    domain: "localhost:3000",
    origin: "http://localhost:3000",
    chains: ["mainnet", "devnet"],
    now: new Date(v.verifyAt ?? v.input.issuedAt ?? "2026-01-01T00:00:00.000Z"),
    maxIssuedAgeMs: 600_000,
    ...overrides,
  });
  const cache = new Ed25519KeyCache();
  function verifyGenerated(v: Generated, overrides: Partial<MessagePolicy> = {}): string {
    const address = v.input.address!;
    return (
      codeOf(() => {
        const credentials = decodeSiwsCredentials(address, v.signatureBase58);
        checkSiwsMessage(v.message, address, policy(v, overrides));
        verifySiwsSignature(cache, address, credentials.publicKey, v.message, credentials.signature);
      }) ?? "ok"
    );
  }

  it("accepts the generated positives whose messages carry every field this server requires", () => {
    expect(verifyGenerated(generated.find(([n]) => n === "full fields with statement and resources")![1])).toBe("ok");
    expect(verifyGenerated(generated.find(([n]) => n === "fields without statement")![1])).toBe("ok");
    expect(verifyGenerated(generated.find(([n]) => n === "chainId solana:devnet")![1])).toBe("ok");
  });

  it("verifies the signature of the minimal message but refuses it: no nonce, URI or issued-at", () => {
    const [, minimal] = generated.find(([n]) => n === "minimal (domain+address only)")!;
    const { publicKey, signature } = decodeSiwsCredentials(minimal.input.address!, minimal.signatureBase58);
    expect(verifyEd25519(cache, minimal.input.address!, publicKey, minimal.message, signature)).toBe(true);
    expect(verifyGenerated(minimal)).toBe("ERR_SIWS_MESSAGE_MALFORMED");
  });

  it("rejects each generated negative with its own code", () => {
    const byName = Object.fromEntries(generated);
    expect(verifyGenerated(byName["NEG tampered nonce (signature over original)"]!)).toBe("ERR_SIWS_SIGNATURE_INVALID");
    expect(verifyGenerated(byName["NEG flipped signature bit"]!)).toBe("ERR_SIWS_SIGNATURE_INVALID");
    // The message names another address than the key that signed it; verifySignIn alone says true.
    const other = byName["NEG message claims other address, signed by seed key"]!;
    const signer = bs58.encode(Buffer.from((other as unknown as { signerPublicKeyHex: string }).signerPublicKeyHex, "hex"));
    expect(codeOf(() => checkSiwsMessage(other.message, signer, policy(other)))).toBe("ERR_SIWS_ADDRESS_MISMATCH");
    expect(verifyGenerated(byName["NEG expired at verification time 2026-01-01T00:20:00Z"]!)).toBe("ERR_SIWS_MESSAGE_EXPIRED");
    const wrongDomain = byName["NEG domain mismatch (RP expects example.com)"]!;
    expect(verifyGenerated(wrongDomain, { domain: "example.com", origin: "http://localhost:3000" })).toBe("ERR_SIWS_DOMAIN_MISMATCH");
  });

  type Web3Auth = { address: string; message: string; signatureBase58: string; expectSignatureValid: boolean; expectRelyingParty: string };
  const web3auth = Object.entries(fixture("siws/web3auth_as_wallet_standard_text.json") as Record<string, Web3Auth>).filter(([name]) => name !== "_meta");
  const web3authCodes: Record<string, string> = {
    "validation_positive: example message": "ok",
    "validation_positive: without expiration": "ok",
    "validation_negative: expired message": "ERR_SIWS_MESSAGE_EXPIRED",
    // 64 base58-decoded bytes, so well-formed; "malformed" in Web3Auth's suite means not a signature of this message.
    "validation_negative: malformed signature": "ERR_SIWS_SIGNATURE_INVALID",
    "validation_negative: wrong signature": "ERR_SIWS_SIGNATURE_INVALID",
    "validation_negative: invalid expiration time": "ERR_SIWS_MESSAGE_MALFORMED",
  };
  it.each(web3auth)("Web3Auth %s (third-party signatures)", (name, v) => {
    const parsed = parseSiwsMessage(v.message)!;
    const code =
      codeOf(() => {
        const credentials = decodeSiwsCredentials(v.address, v.signatureBase58);
        const origin = new URL(parsed.uri!).origin;
        checkSiwsMessage(v.message, v.address, { ...basePolicy, domain: parsed.domain, origin, chains: ["1"], now: new Date(parsed.issuedAt!), maxIssuedAgeMs: 600_000 });
        verifySiwsSignature(cache, v.address, credentials.publicKey, v.message, credentials.signature);
      }) ?? "ok";
    expect(code).toBe(web3authCodes[name]);
  });

  it("finding 12: parseSiwsMessage refuses control characters, lone surrogates and display controls in every field", () => {
    const [, full] = generated.find(([n]) => n === "full fields with statement and resources")!;
    expect(parseSiwsMessage(full.message)).toBeDefined();
    const lines = full.message.split("\n");
    const chars = ["\r", "\t", "\u0000", "\u000b", "\u001b", "\u007f", "\u0085", "\u2028", "\u2029", "\u202e", "\u2066", "\ud800", "\udfff"];
    const accepted: string[] = [];
    lines.forEach((line, index) => {
      if (line === "") return;
      for (const char of chars) {
        for (const at of [0, Math.floor(line.length / 2), line.length]) {
          const edited = [...lines];
          edited[index] = line.slice(0, at) + char + line.slice(at);
          if (parseSiwsMessage(edited.join("\n"))) accepted.push(`line ${index} ${JSON.stringify(line)} at ${at}: ${JSON.stringify(char)}`);
        }
      }
    });
    expect(accepted).toEqual([]);
    // A space inside a URI is not RFC 3986 either.
    const spaced = full.message.replace(/URI: (\S+)/, "URI: $1 x");
    expect(codeOf(() => checkSiwsMessage(spaced, full.input.address!, policy(full)))).toBe("ERR_SIWS_MESSAGE_MALFORMED");
  });

  it("review: parseSiwsMessage refuses the bidirectional marks too (U+061C, U+200E, U+200F: Bidi_Control like U+202A-202E), and U+FEFF", () => {
    const [, full] = generated.find(([n]) => n === "full fields with statement and resources")!;
    const lines = full.message.split("\n");
    const accepted: string[] = [];
    lines.forEach((line, index) => {
      if (line === "") return;
      for (const char of ["\u061c", "\u200e", "\u200f", "\ufeff"]) {
        const edited = [...lines];
        edited[index] = line + char;
        if (parseSiwsMessage(edited.join("\n"))) accepted.push(`line ${index} ${JSON.stringify(line)}: ${JSON.stringify(char)}`);
      }
    });
    expect(accepted).toEqual([]);
  });

  it("decodes signatures strictly", () => {
    expect(hexToBytes("0x0")).toBeUndefined();
    expect(hexToBytes("0xzz")).toBeUndefined();
    expect(codeOf(() => decodeSiwsCredentials("0OIl", "x"))).toBe("ERR_SIWS_ADDRESS_INVALID");
  });
});
