import { createPublicKey, verify as verifySignature, type KeyObject } from "node:crypto";
import { keccak_256 } from "@noble/hashes/sha3.js";
import { toChecksumAddress } from "@erebus/core";
import bs58 from "bs58";
import secp256k1 from "secp256k1";

const encoder = new TextEncoder();

/** EIP-191 version 0x45 ("personal_sign") hash of a message: keccak256("\x19Ethereum Signed Message:\n" + len + message). */
export function hashPersonalMessage(message: string): Uint8Array {
  const bytes = encoder.encode(message);
  const prefix = encoder.encode(`\x19Ethereum Signed Message:\n${bytes.length}`);
  const data = new Uint8Array(prefix.length + bytes.length);
  data.set(prefix);
  data.set(bytes, prefix.length);
  return keccak_256(data);
}

/** `0x`-prefixed even-length hex → bytes; undefined when it is not that. */
export function hexToBytes(value: string): Uint8Array | undefined {
  if (!/^0x([0-9a-fA-F]{2})*$/.test(value)) return undefined;
  return Uint8Array.from(Buffer.from(value.slice(2), "hex"));
}

/**
 * Recovers the EIP-55 address that made a 65-byte `r || s || v` signature over a personal message
 * (v is 27/28, or 0/1 as some wallets and hardware signers send it). Undefined when the signature
 * is not a recoverable one. Uses libsecp256k1 (native), ~13× faster than the pure-JS curves here.
 */
export function recoverPersonalSigner(message: string, signature: Uint8Array): string | undefined {
  if (signature.length !== 65) return undefined;
  const v = signature[64]!;
  const recovery = v >= 27 ? v - 27 : v;
  if (recovery !== 0 && recovery !== 1) return undefined;
  try {
    const publicKey = secp256k1.ecdsaRecover(signature.subarray(0, 64), recovery, hashPersonalMessage(message), false);
    const address = Buffer.from(keccak_256(publicKey.subarray(1)).subarray(12)).toString("hex");
    return toChecksumAddress(`0x${address}`);
  } catch {
    return undefined;
  }
}

/** Base58 → bytes, undefined when not base58. */
export function decodeBase58(value: string): Uint8Array | undefined {
  try {
    return bs58.decode(value);
  } catch {
    return undefined;
  }
}

// DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410): the 32 key bytes follow.
const ED25519_SPKI_PREFIX = Buffer.from("302a300506032b6570032100", "hex");

/** A small cache of Node key objects: creating one costs more than the verification itself. */
export class Ed25519KeyCache {
  readonly #keys = new Map<string, KeyObject>();
  constructor(private readonly max = 1024) {}

  get(address: string, publicKey: Uint8Array): KeyObject {
    let key = this.#keys.get(address);
    if (key) {
      // Re-insert: a Map keeps insertion order, so the first entry is the least recently used.
      this.#keys.delete(address);
    } else {
      key = createPublicKey({ key: Buffer.concat([ED25519_SPKI_PREFIX, publicKey]), format: "der", type: "spki" });
    }
    this.#keys.set(address, key);
    if (this.#keys.size > this.max) this.#keys.delete(this.#keys.keys().next().value!);
    return key;
  }
}

/** Verifies an Ed25519 signature (RFC 8032) of `message` under the 32-byte public key `address` decodes to. */
export function verifyEd25519(cache: Ed25519KeyCache, address: string, publicKey: Uint8Array, message: string, signature: Uint8Array): boolean {
  if (publicKey.length !== 32 || signature.length !== 64) return false;
  try {
    return verifySignature(null, encoder.encode(message), cache.get(address, publicKey), signature);
  } catch {
    return false;
  }
}
