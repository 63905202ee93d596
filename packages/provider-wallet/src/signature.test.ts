import { generateKeyPairSync, sign } from "node:crypto";
import bs58 from "bs58";
import { describe, expect, it } from "vitest";
import { forgeSmallOrderSignature, smallOrderPublicKeys, withSPlusL } from "../../../test/wallets.js";
import { Ed25519KeyCache, verifyEd25519 } from "./signature.js";
import { decodeSiwsCredentials } from "./verify.js";

const encoder = new TextEncoder();

/** A real Ed25519 key pair from Node (OpenSSL), its raw public key and a signer. */
function nodeKeyPair() {
  const { publicKey, privateKey } = generateKeyPairSync("ed25519");
  const raw = new Uint8Array(publicKey.export({ format: "der", type: "spki" }).subarray(-32));
  return { raw, address: bs58.encode(raw), sign: (message: string) => new Uint8Array(sign(null, encoder.encode(message), privateKey)) };
}

/** A message the forger can make a signature for under `key` (it varies a request id until one fits). */
function forged(key: Uint8Array) {
  for (let i = 0; i < 200; i++) {
    const message = `app.test wants you to sign in with your Solana account:\n${bs58.encode(key)}\n\nRequest ID: ${i}`;
    const signature = forgeSmallOrderSignature(key, encoder.encode(message));
    if (signature) return { message, signature };
  }
  throw new Error("no forgery found");
}

describe("Ed25519 verification (finding 4)", () => {
  it("finding 4: verifyEd25519 refuses forged S=0 signatures under each small-order or non-canonical public key", () => {
    const keys = smallOrderPublicKeys();
    expect(keys.length).toBe(14);
    expect(keys.some((k) => bs58.encode(k.bytes) === "11111111111111111111111111111111")).toBe(true);
    const accepted: string[] = [];
    for (const key of keys) {
      const { message, signature } = forged(key.bytes);
      // A fresh cache each time, and a warm one: the cached fast path must refuse too.
      const cache = new Ed25519KeyCache();
      for (let round = 0; round < 2; round++) {
        if (verifyEd25519(cache, bs58.encode(key.bytes), key.bytes, message, signature)) accepted.push(`${key.name} (round ${round})`);
      }
    }
    expect(accepted).toEqual([]);
  });

  it("finding 4: the System Program address is not a key a sign-in can name (ERR_SIWS_ADDRESS_INVALID)", () => {
    for (const key of smallOrderPublicKeys()) {
      expect(() => decodeSiwsCredentials(bs58.encode(key.bytes), bs58.encode(new Uint8Array(64))), key.name).toThrow(
        expect.objectContaining({ code: "ERR_SIWS_ADDRESS_INVALID" }),
      );
    }
  });

  it("finding 4: refuses a valid signature re-encoded with S + L, and non-canonical or small-order R", () => {
    const cache = new Ed25519KeyCache();
    const wallet = nodeKeyPair();
    const message = "sign in";
    const signature = wallet.sign(message);
    expect(verifyEd25519(cache, wallet.address, wallet.raw, message, signature)).toBe(true);
    expect(verifyEd25519(cache, wallet.address, wallet.raw, message, withSPlusL(signature))).toBe(false);
    // R replaced by a small-order point or a non-canonical encoding (y ≥ p): never a valid signature.
    for (const key of smallOrderPublicKeys()) {
      const bad = new Uint8Array(signature);
      bad.set(key.bytes, 0);
      expect(verifyEd25519(cache, wallet.address, wallet.raw, message, bad), key.name).toBe(false);
    }
  });

  it("finding 4: still verifies ordinary keys and signatures (200 random keys, cold and cached)", () => {
    const cache = new Ed25519KeyCache();
    for (let i = 0; i < 200; i++) {
      const wallet = nodeKeyPair();
      const message = `message ${i}`;
      const signature = wallet.sign(message);
      expect(verifyEd25519(cache, wallet.address, wallet.raw, message, signature)).toBe(true);
      expect(verifyEd25519(cache, wallet.address, wallet.raw, message, signature)).toBe(true);
      expect(decodeSiwsCredentials(wallet.address, bs58.encode(signature)).publicKey).toEqual(wallet.raw);
    }
  });
});
