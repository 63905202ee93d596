import { base58Decode, base58Encode } from "./base58.js";

/**
 * Anything that can sign an EIP-191 personal message for an address: a viem account
 * (`privateKeyToAccount`, `mnemonicToAccount`, a `LocalAccount` or a JSON-RPC account bound to a wallet
 * client's `signMessage`), an ethers-style wrapper, or `eip1193Signer(provider)` from `@erebus/client/ethereum`.
 */
export interface EthereumSigner {
  readonly address: string;
  signMessage(args: { message: string }): Promise<string>;
}

/** Anything that signs raw bytes with an Ed25519 key and knows its base58 address. */
export interface SolanaSigner {
  readonly address: string;
  signMessage(message: Uint8Array): Promise<Uint8Array>;
}

/** The shape of `Keypair` from `@solana/web3.js` 1.x, the key most Solana programs already hold. */
export interface SolanaKeypairLike {
  readonly publicKey: { toBase58(): string };
  readonly secretKey: Uint8Array;
}

/** The shape of a `@solana/kit` `MessagePartialSigner` (e.g. `generateKeyPairSigner()`, `createKeyPairSignerFromBytes()`). */
export interface SolanaKitSignerLike {
  readonly address: string;
  signMessages(messages: readonly { content: Uint8Array; signatures: Record<string, Uint8Array> }[]): Promise<readonly Record<string, Uint8Array>[]>;
}

export type SolanaSignerInput = SolanaSigner | SolanaKeypairLike | SolanaKitSignerLike;

// PKCS#8 DER prefix of an Ed25519 private key (RFC 8410 §7): the 32-byte seed follows.
const PKCS8_ED25519_PREFIX = Uint8Array.from([0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20]);

function subtle(): SubtleCrypto {
  const value = globalThis.crypto?.subtle;
  if (!value) throw new TypeError("@erebus/client: Web Crypto (crypto.subtle) is needed to sign with a Solana Keypair");
  return value;
}

/**
 * Signs with a `@solana/web3.js` 1.x `Keypair` through Web Crypto's Ed25519 (Node ≥ 20, current
 * browsers), so the client needs no copy of tweetnacl or web3.js. The secret stays in this closure.
 */
export function keypairSigner(keypair: SolanaKeypairLike): SolanaSigner {
  const address = keypair.publicKey.toBase58();
  if (keypair.secretKey.length !== 64) throw new TypeError("@erebus/client: a Solana Keypair's secretKey must be 64 bytes (seed + public key)");
  const pkcs8 = new Uint8Array(PKCS8_ED25519_PREFIX.length + 32);
  pkcs8.set(PKCS8_ED25519_PREFIX);
  pkcs8.set(keypair.secretKey.subarray(0, 32), PKCS8_ED25519_PREFIX.length);
  let key: Promise<CryptoKey> | undefined;
  return {
    address,
    async signMessage(message) {
      key ??= subtle().importKey("pkcs8", pkcs8, { name: "Ed25519" }, false, ["sign"]);
      return new Uint8Array(await subtle().sign({ name: "Ed25519" }, await key, Uint8Array.from(message)));
    },
  };
}

/** Adapts a `@solana/kit` message signer. */
export function kitSigner(signer: SolanaKitSignerLike): SolanaSigner {
  return {
    address: signer.address,
    async signMessage(message) {
      const [signatures] = await signer.signMessages([{ content: message, signatures: {} }]);
      const signature = signatures?.[signer.address];
      if (!signature) throw new TypeError("@erebus/client: the @solana/kit signer returned no signature for its own address");
      return signature;
    },
  };
}

/** Accepts a Keypair (web3.js 1.x), a `@solana/kit` signer, or a plain `{ address, signMessage }`. */
export function toSolanaSigner(input: SolanaSignerInput): SolanaSigner {
  if ("secretKey" in input && "publicKey" in input) return keypairSigner(input);
  if ("signMessages" in input && typeof input.signMessages === "function") return kitSigner(input);
  if ("signMessage" in input && typeof input.signMessage === "function" && typeof input.address === "string") return input;
  throw new TypeError("@erebus/client: a Solana signer is a Keypair, a @solana/kit signer, or { address, signMessage(bytes) }");
}

export { base58Decode, base58Encode };
