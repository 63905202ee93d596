// Test helpers: real wallets from real wallet libraries (viem accounts, @solana/keys).
import { ed25519 } from "@noble/curves/ed25519.js";
import { sha512 } from "@noble/hashes/sha2.js";
import { getAddressFromPublicKey } from "@solana/addresses";
import { generateKeyPair, signBytes } from "@solana/keys";
import { createSignInMessageText } from "@solana/wallet-standard-util";
import bs58 from "bs58";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";

/** An Ethereum account from viem, as a wallet extension would hold it. */
export function ethereumWallet() {
  const account = privateKeyToAccount(generatePrivateKey());
  return {
    address: account.address,
    sign: (message: string) => account.signMessage({ message }),
  };
}

/** A Solana keypair from @solana/keys (WebCrypto Ed25519), signing like a Wallet Standard wallet. */
export async function solanaWallet() {
  const keys = await generateKeyPair();
  const address = await getAddressFromPublicKey(keys.publicKey);
  return {
    address: address as string,
    /** What `solana:signIn` does: fill in the address, render the text, sign its bytes. */
    async signIn(input: Record<string, string | undefined>, overrides: Record<string, string | undefined> = {}) {
      const message = createSignInMessageText({ ...input, address, ...overrides } as never);
      return { message, signature: await this.signText(message) };
    },
    async signText(message: string) {
      return bs58.encode(await signBytes(keys.privateKey, new TextEncoder().encode(message)));
    },
  };
}

// ---- Ed25519 attack material (finding 4 of issue 10), computed with @noble/curves as reference math ----

const Point = ed25519.Point;
/** The group order L = 2^252 + 27742317777372353535851937790883648493 (RFC 8032 §5.1). */
export const ED25519_L = Point.Fn.ORDER;
const leToBigInt = (bytes: Uint8Array) => bytes.reduceRight((n, byte) => n * 256n + BigInt(byte), 0n);
const bigIntToLe = (value: bigint, length: number) => Uint8Array.from({ length }, (_, i) => Number((value >> BigInt(8 * i)) & 255n));

/** The 8 points of small order (the torsion subgroup), each as [order, canonical encoding]. */
function torsionPoints(): { order: number; point: InstanceType<typeof Point> }[] {
  // An order-8 point generates the whole torsion subgroup.
  const generator = Point.fromHex("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a");
  const out: { order: number; point: InstanceType<typeof Point> }[] = [];
  let point = Point.ZERO;
  for (let i = 0; i < 8; i++) {
    let order = 1;
    for (let q = point; !q.is0(); q = q.add(point)) order++;
    out.push({ order, point });
    point = point.add(generator);
  }
  return out;
}

/**
 * Public keys no one can hold a secret for, as 32-byte encodings: the 8 small-order points, the
 * all-zero key (Solana's System Program address `11111111111111111111111111111111` is one of them),
 * and non-canonical encodings of small-order points (y ≥ p, or the sign bit set on x = 0).
 */
export function smallOrderPublicKeys(): { name: string; bytes: Uint8Array }[] {
  const keys = torsionPoints().map(({ order, point }) => ({ name: `order ${order} point ${point.toHex()}`, bytes: point.toBytes() }));
  const p = Point.Fp.ORDER;
  const nonCanonical = [
    { name: "y = p (non-canonical 0, order 4)", y: p, sign: 0 },
    { name: "y = p, sign bit set", y: p, sign: 1 },
    { name: "y = p + 1 (non-canonical identity)", y: p + 1n, sign: 0 },
    { name: "y = p + 1, sign bit set", y: p + 1n, sign: 1 },
    { name: "identity with the sign bit set (x = 0)", y: 1n, sign: 1 },
    { name: "order 2 point with the sign bit set (x = 0)", y: p - 1n, sign: 1 },
  ];
  for (const { name, y, sign } of nonCanonical) {
    const bytes = bigIntToLe(y, 32);
    bytes[31]! |= sign << 7;
    keys.push({ name, bytes });
  }
  return keys;
}

/**
 * Forges an Ed25519 signature under a small-order public key A without any secret: S = 0 and R a
 * small-order point equal to -[k]A, k = SHA-512(R ‖ A ‖ M) mod L. A verifier that checks only
 * [S]B = R + [k]A (RFC 8032 §5.1.7 without rejecting such keys) accepts it. Tries each torsion
 * point as R; undefined when none fits this message (change the message and try again).
 */
export function forgeSmallOrderSignature(publicKey: Uint8Array, message: Uint8Array): Uint8Array | undefined {
  // ZIP-215 decoding accepts the non-canonical encodings too, as a lenient verifier would.
  const a = Point.fromBytes(publicKey, true);
  for (const { point: r } of torsionPoints()) {
    const rBytes = r.toBytes();
    const k = leToBigInt(sha512(new Uint8Array([...rBytes, ...publicKey, ...message]))) % ED25519_L;
    if (a.multiplyUnsafe(k).add(r).is0()) return new Uint8Array([...rBytes, ...new Uint8Array(32)]);
  }
  return undefined;
}

/** The same signature with S replaced by S + L: the same group element, a non-canonical (malleable) encoding. */
export function withSPlusL(signature: Uint8Array): Uint8Array {
  const s = leToBigInt(signature.subarray(32)) + ED25519_L;
  return new Uint8Array([...signature.subarray(0, 32), ...bigIntToLe(s, 32)]);
}
