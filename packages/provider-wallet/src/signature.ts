import { createPublicKey, verify as verifySignature, type KeyObject } from "node:crypto";
import { keccak_256 } from "@noble/hashes/sha3.js";
import { toChecksumAddress } from "@erebus/core/provider";
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

// Encodings of the 8 points of small order (the torsion subgroup of edwards25519), without the sign
// bit: y = 0, 1, p - 1 and the two y of the order-8 points. The libsodium blacklist (crypto_sign
// `ge25519_has_small_order`) lists the same values. A key among them has no secret behind it: under
// it, S = 0 and a small-order R verify for about one message in eight, so anyone could sign as
// such an "address" (Solana's System Program, 32 zero bytes, is one).
const SMALL_ORDER_Y = new Set([
  "0000000000000000000000000000000000000000000000000000000000000000",
  "0100000000000000000000000000000000000000000000000000000000000000",
  "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
  "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
  "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
]);

/** y of a point encoding (its low 255 bits) as hex, for a look-up in SMALL_ORDER_Y. */
function yHex(encoding: Uint8Array): string {
  const y = Buffer.from(encoding);
  y[31]! &= 0x7f;
  return y.toString("hex");
}

/** Whether the 255-bit little-endian y of a point encoding is ≥ p = 2^255 - 19 (RFC 8032 §5.1.3 step 1 refuses it). */
function yNotCanonical(encoding: Uint8Array): boolean {
  if ((encoding[31]! & 0x7f) !== 0x7f) return false;
  for (let i = 30; i > 0; i--) if (encoding[i] !== 0xff) return false;
  return encoding[0]! >= 0xed;
}

/**
 * A point encoding that can stand for an Ed25519 key or R: canonical (y < p) and not of small
 * order. The sign bit on x = 0 needs no test of its own: x = 0 only for y = ±1, both small-order.
 */
export function isStrongPoint(encoding: Uint8Array): boolean {
  return encoding.length === 32 && !yNotCanonical(encoding) && !SMALL_ORDER_Y.has(yHex(encoding));
}

// The group order L = 2^252 + 27742317777372353535851937790883648493 (RFC 8032 §5.1), little-endian.
const L = Buffer.from("edd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010", "hex");

/** S < L, comparing the 32 little-endian bytes from the most significant one (RFC 8032 §5.1.7 step 1). */
function sIsCanonical(signature: Uint8Array): boolean {
  for (let i = 31; i >= 0; i--) {
    const s = signature[32 + i]!;
    if (s !== L[i]) return s < L[i]!;
  }
  return false;
}

/**
 * Verifies an Ed25519 signature (RFC 8032) of `message` under the 32-byte public key `address`
 * decodes to. Beyond what OpenSSL's verify checks, it refuses small-order and non-canonical keys
 * and R values and S ≥ L, so a signature proves that someone holds the key's secret, and each
 * (key, message) has one accepted encoding of a signature.
 */
export function verifyEd25519(cache: Ed25519KeyCache, address: string, publicKey: Uint8Array, message: string, signature: Uint8Array): boolean {
  if (publicKey.length !== 32 || signature.length !== 64) return false;
  if (!isStrongPoint(publicKey) || !isStrongPoint(signature.subarray(0, 32)) || !sIsCanonical(signature)) return false;
  try {
    return verifySignature(null, encoder.encode(message), cache.get(address, publicKey), signature);
  } catch {
    return false;
  }
}
