import { createPublicClient, http } from "viem";
import { fail, walletErrors, type Family } from "./errors.js";
import type { MessageVerifier } from "./options.js";
import { parseSiweMessage, type ParsedSiwe, type SiweParseCache } from "./siwe-message.js";
import { decodeBase58, Ed25519KeyCache, hexToBytes, isStrongPoint, recoverPersonalSigner, verifyEd25519 } from "./signature.js";
import { parseSiwsMessage, type SiwsFields } from "./siws-message.js";
import { parseRfc3339 } from "./time.js";

/** What a message is checked against. All of it comes from configuration, never from the request. */
export interface MessagePolicy {
  /** Expected `domain` (host[:port]). */
  domain: string;
  /** Expected origin of the message's URI (and, for SIWE, scheme when the message names one). */
  origin: string;
  /** Allowed chains: EIP-155 ids for Ethereum, cluster names for Solana. */
  chains: readonly (number | string)[];
  now: Date;
  clockSkewMs: number;
  /**
   * How old `issuedAt` may be (the nonce TTL); it may never be ahead of `now` by more than the skew.
   * `undefined` skips the issued-at freshness check (only for replaying fixed test vectors).
   */
  maxIssuedAgeMs: number | undefined;
  maxStatementLength: number;
  maxResources: number;
  maxResourceLength: number;
}

interface CommonFields {
  domain: string;
  statement?: string | undefined;
  uri: string;
  version: string;
  chainId: number | string;
  resources?: string[] | undefined;
  issuedAtDate: Date;
  expirationDate: Date | undefined;
  notBeforeDate: Date | undefined;
}

function sameOrigin(uri: string, origin: string): boolean {
  try {
    return new URL(uri).origin === origin;
  } catch {
    return false;
  }
}

/** The checks EIP-4361 §"Verifying a signed message" asks for, shared by SIWE and SIWS (all but nonce and signature). */
function checkCommon(family: Family, fields: CommonFields, policy: MessagePolicy): void {
  if ((fields.resources?.length ?? 0) > policy.maxResources) throw fail(family, "MESSAGE_TOO_LARGE", "too many resources");
  if (fields.resources?.some((r) => r.length > policy.maxResourceLength)) throw fail(family, "MESSAGE_TOO_LARGE", "resource too long");
  if ((fields.statement?.length ?? 0) > policy.maxStatementLength) throw fail(family, "MESSAGE_TOO_LARGE", "statement too long");
  if (fields.version !== "1") throw fail(family, "VERSION_UNSUPPORTED");
  if (fields.domain !== policy.domain) throw fail(family, "DOMAIN_MISMATCH", `expected ${policy.domain}`);
  if (!sameOrigin(fields.uri, policy.origin)) throw fail(family, "URI_MISMATCH", `expected a URI on ${policy.origin}`);
  if (!policy.chains.includes(fields.chainId)) throw fail(family, "CHAIN_NOT_ALLOWED", `allowed: ${policy.chains.join(", ")}`);
  const now = policy.now.getTime();
  if (fields.expirationDate && fields.expirationDate.getTime() <= now) throw fail(family, "MESSAGE_EXPIRED");
  if (fields.notBeforeDate && fields.notBeforeDate.getTime() > now + policy.clockSkewMs) throw fail(family, "MESSAGE_NOT_YET_VALID");
  if (policy.maxIssuedAgeMs !== undefined) {
    const issued = fields.issuedAtDate.getTime();
    if (issued > now + policy.clockSkewMs) throw fail(family, "ISSUED_AT_INVALID", "issued in the future");
    if (issued < now - policy.maxIssuedAgeMs - policy.clockSkewMs) throw fail(family, "ISSUED_AT_INVALID", "issued too long ago");
  }
}

// ---- Ethereum ----------------------------------------------------------------------------------

/** Parses a SIWE message (or takes the parse `cache` kept when this process wrote it) and checks everything but the nonce and the signature. */
export function checkSiweMessage(message: string, policy: MessagePolicy, cache?: SiweParseCache): ParsedSiwe {
  const parsed = cache?.take(message) ?? parseSiweMessage(message);
  if (!parsed) throw fail("SIWE", "MESSAGE_MALFORMED");
  // EIP-4361: when the message names a scheme it must be the expected one.
  if (parsed.scheme !== undefined && `${parsed.scheme}:` !== new URL(policy.origin).protocol) {
    throw fail("SIWE", "DOMAIN_MISMATCH", "scheme");
  }
  checkCommon("SIWE", parsed, policy);
  return parsed;
}

/** Decodes a SIWE signature: `0x` hex, 65 bytes for an account, longer for a contract wallet (ERC-6492). */
export function decodeSiweSignature(signature: string): Uint8Array {
  const bytes = hexToBytes(signature);
  if (!bytes || bytes.length < 65) throw fail("SIWE", "SIGNATURE_MALFORMED");
  return bytes;
}

export type RpcClients = ReadonlyMap<number, MessageVerifier>;

/** Builds one viem client per configured chain (a URL becomes an http transport with the timeout and no retries). */
export function createRpcClients(rpc: Record<string, string | MessageVerifier>, timeoutMs: number): RpcClients {
  return new Map(
    Object.entries(rpc).map(([chain, value]) => [
      Number(chain),
      typeof value === "string" ? (createPublicClient({ transport: http(value, { timeout: timeoutMs, retryCount: 0 }) }) as MessageVerifier) : value,
    ]),
  );
}

/**
 * Checks that `parsed.address` signed `message`: EIP-191 recovery for an ordinary account; otherwise,
 * when an RPC is configured for the message's chain, EIP-1271 `isValidSignature` / ERC-6492 through
 * viem's `verifyMessage` (an RPC failure or timeout is 503 `ERR_SIWE_RPC_UNAVAILABLE`).
 */
export async function verifySiweSignature(
  parsed: ParsedSiwe,
  message: string,
  signature: Uint8Array,
  signatureHex: `0x${string}`,
  rpc: RpcClients,
  timeoutMs: number,
  confirmedChains: Set<number>,
): Promise<"account" | "contract"> {
  if (recoverPersonalSigner(message, signature) === parsed.address) return "account";
  const client = rpc.get(parsed.chainId);
  if (!client) throw fail("SIWE", "SIGNATURE_INVALID");
  const unavailable = (cause: unknown) => walletErrors.create("ERR_SIWE_RPC_UNAVAILABLE", { cause, retryAfter: 10 });
  let valid: boolean;
  try {
    valid = await withTimeout(
      client.verifyMessage({ address: parsed.address as `0x${string}`, message, signature: signatureHex }),
      timeoutMs,
    );
  } catch (error) {
    throw unavailable(error);
  }
  // viem answers `false` both for a refused signature and for an RPC it could not reach; a cheap
  // eth_chainId tells them apart, and catches an RPC that serves another chain than configured.
  // A `true` needs it as much: the identity is then bound to parsed.chainId (contract-chains.ts),
  // which only holds if that is the chain the signature was checked on. Once per chain and process.
  if (!valid || !confirmedChains.has(parsed.chainId)) {
    let served: number;
    try {
      served = await withTimeout(client.getChainId(), timeoutMs);
    } catch (error) {
      throw unavailable(error);
    }
    if (served !== parsed.chainId) throw unavailable(new Error(`the RPC for chain ${parsed.chainId} serves chain ${served}`));
    confirmedChains.add(parsed.chainId);
  }
  if (!valid) throw fail("SIWE", "SIGNATURE_INVALID");
  return "contract";
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`RPC timed out after ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// ---- Solana -----------------------------------------------------------------------------------

export interface ParsedSiws extends SiwsFields {
  uri: string;
  version: string;
  chainId: string;
  nonce: string;
  issuedAt: string;
  issuedAtDate: Date;
  expirationDate: Date | undefined;
  notBeforeDate: Date | undefined;
}

/** `solana:mainnet` and `mainnet` name the same cluster. */
export const normalizeSolanaChain = (chain: string) => chain.replace(/^solana:/, "");

/**
 * Parses a SIWS message and checks everything but the nonce and the signature. Beyond the text
 * format, this server requires URI, Version, Chain ID, Nonce and Issued At, a one-line statement,
 * and the message's address to be the `address` the client says signed.
 */
export function checkSiwsMessage(message: string, address: string, policy: MessagePolicy): ParsedSiws {
  const parsed = parseSiwsMessage(message);
  if (!parsed) throw fail("SIWS", "MESSAGE_MALFORMED");
  const { uri, version, chainId, nonce, issuedAt } = parsed;
  if (!uri || !version || !chainId || !nonce || !issuedAt) {
    throw fail("SIWS", "MESSAGE_MALFORMED", "URI, Version, Chain ID, Nonce and Issued At are required");
  }
  if (parsed.statement?.includes("\n")) throw fail("SIWS", "MESSAGE_MALFORMED", "the statement must be one line");
  if (!/^[A-Za-z0-9]{8,}$/.test(nonce)) throw fail("SIWS", "MESSAGE_MALFORMED", "nonce");
  const issuedAtDate = parseRfc3339(issuedAt);
  const expirationDate = parsed.expirationTime === undefined ? undefined : parseRfc3339(parsed.expirationTime);
  const notBeforeDate = parsed.notBefore === undefined ? undefined : parseRfc3339(parsed.notBefore);
  if (!issuedAtDate || (parsed.expirationTime !== undefined && !expirationDate) || (parsed.notBefore !== undefined && !notBeforeDate)) {
    throw fail("SIWS", "MESSAGE_MALFORMED", "times must be RFC 3339");
  }
  if (parsed.address !== address) throw walletErrors.create("ERR_SIWS_ADDRESS_MISMATCH");
  const full: ParsedSiws = { ...parsed, uri, version, chainId, nonce, issuedAt, issuedAtDate, expirationDate, notBeforeDate };
  checkCommon("SIWS", { ...full, chainId: normalizeSolanaChain(chainId) }, { ...policy, chains: policy.chains.map((c) => normalizeSolanaChain(String(c))) });
  return full;
}

/**
 * Decodes the client's address (32-byte base58 public key) and signature (64-byte base58). An
 * address that is a small-order or non-canonical point (the System Program's 32 zero bytes, say)
 * is refused here: no one holds a secret for it, and a forged signature would verify under it.
 */
export function decodeSiwsCredentials(address: string, signature: string): { publicKey: Uint8Array; signature: Uint8Array } {
  const publicKey = decodeBase58(address);
  if (!publicKey || publicKey.length !== 32) throw walletErrors.create("ERR_SIWS_ADDRESS_INVALID");
  if (!isStrongPoint(publicKey)) {
    throw walletErrors.create("ERR_SIWS_ADDRESS_INVALID", { detail: "a small-order or non-canonical Ed25519 key cannot sign" });
  }
  const bytes = decodeBase58(signature);
  if (!bytes || bytes.length !== 64) throw fail("SIWS", "SIGNATURE_MALFORMED");
  return { publicKey, signature: bytes };
}

/** Checks the Ed25519 signature of the exact message text under the address's key. */
export function verifySiwsSignature(cache: Ed25519KeyCache, address: string, publicKey: Uint8Array, message: string, signature: Uint8Array): void {
  if (!verifyEd25519(cache, address, publicKey, message, signature)) throw fail("SIWS", "SIGNATURE_INVALID");
}
