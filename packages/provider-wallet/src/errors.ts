import { defineErrors } from "@erebus/core/provider";

/** The checks both sign-in flavours share; each gets an `ERR_SIWE_*` and an `ERR_SIWS_*` code. */
const shared = {
  MESSAGE_MALFORMED: { status: 400, title: "The message is not a well-formed sign-in message" },
  MESSAGE_TOO_LARGE: { status: 413, title: "The message, its statement or its resources are over the size limits" },
  VERSION_UNSUPPORTED: { status: 400, title: "Only version 1 messages are accepted" },
  DOMAIN_MISMATCH: { status: 401, title: "The message was made for another domain" },
  URI_MISMATCH: { status: 401, title: "The message's URI is not on this app's origin" },
  CHAIN_NOT_ALLOWED: { status: 401, title: "The message's chain is not allowed here" },
  MESSAGE_EXPIRED: { status: 401, title: "The message's expiration time has passed" },
  MESSAGE_NOT_YET_VALID: { status: 401, title: "The message's not-before time is still in the future" },
  ISSUED_AT_INVALID: { status: 401, title: "The message's issued-at time is in the future or too old" },
  NONCE_UNKNOWN: { status: 401, title: "The nonce was not issued by this server" },
  NONCE_USED: { status: 401, title: "The nonce was already used (replay)" },
  NONCE_EXPIRED: { status: 401, title: "The nonce expired before it was used" },
  STATEMENT_MISMATCH: { status: 401, title: "A link nonce's message must carry the link statement the nonce answer gave" },
  SIGNATURE_MALFORMED: { status: 400, title: "The signature is not validly encoded" },
  SIGNATURE_INVALID: { status: 401, title: "The signature does not verify for the message's address" },
} as const;

type Shared = typeof shared;
type Prefixed<P extends string> = { [K in keyof Shared as `ERR_${P}_${K & string}`]: Shared[K] };

function prefixed<P extends string>(prefix: P): Prefixed<P> {
  return Object.fromEntries(Object.entries(shared).map(([key, value]) => [`ERR_${prefix}_${key}`, value])) as Prefixed<P>;
}

export const walletErrors = defineErrors({
  ...prefixed("SIWE"),
  ...prefixed("SIWS"),
  ERR_SIWE_RPC_UNAVAILABLE: { status: 503, title: "The chain's RPC, needed to check a smart-contract wallet, is unavailable" },
  ERR_SIWE_CONTRACT_CHAIN_MISMATCH: { status: 401, title: "This contract wallet's identity is bound to the chain it first signed in on, not this one" },
  ERR_SIWS_ADDRESS_INVALID: { status: 400, title: "The address is not a 32-byte base58 Ed25519 public key that can sign" },
  ERR_SIWS_ADDRESS_MISMATCH: { status: 401, title: "The message claims another address than the one that signed" },
});

export type WalletErrorCode = keyof typeof walletErrors.codes;
export type Family = "SIWE" | "SIWS";
export type SharedReason = keyof Shared;

/** Creates the family's error for a shared check: `fail("SIWS", "NONCE_USED")` is `ERR_SIWS_NONCE_USED`. */
export function fail(family: Family, reason: SharedReason, detail?: string) {
  return walletErrors.create(`ERR_${family}_${reason}`, detail === undefined ? {} : { detail });
}
