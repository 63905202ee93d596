import { parseOptions } from "@erebus/core/provider";
import * as z from "zod";

/** What Erebus needs of a chain client: a viem public client has it (EIP-1271 and ERC-6492 inside). */
export interface MessageVerifier {
  verifyMessage(args: { address: `0x${string}`; message: string; signature: `0x${string}` }): Promise<boolean>;
  getChainId(): Promise<number>;
}

const isClient = (value: unknown): value is MessageVerifier =>
  typeof value === "object" &&
  value !== null &&
  typeof (value as { verifyMessage?: unknown }).verifyMessage === "function" &&
  typeof (value as { getChainId?: unknown }).getChainId === "function";

const MINUTE = 60;

/** Every option of `walletProvider()`, with its default. */
export const walletOptionsSchema = z.strictObject({
  /** The domain messages must be made for (`app.example.com`, `localhost:3000`). Default: the host of core's `baseURL`. Never the Host header. */
  domain: z.string().regex(/^[^\s/@]+$/, "must be a host with an optional port, like app.example.com or localhost:3000").optional(),
  /** The origin a message's URI must be on. Default: core's `baseURL` origin. */
  origin: z.url({ protocol: /^https?$/ }).transform((value) => new URL(value).origin).optional(),
  /** Statement offered to Solana wallets in the sign-in input. */
  statement: z.string().max(256).regex(/^[^\n]*$/, "must be one line").optional(),
  ethereum: z
    .union([
      z.literal(false),
      z.strictObject({
        /** EIP-155 chain ids a message may name. */
        chains: z.array(z.number().int().positive()).min(1).default([1]),
        /** Per chain id, an RPC URL or a viem public client, to verify smart-contract wallets (EIP-1271, ERC-6492). */
        rpc: z.record(z.string().regex(/^\d+$/), z.union([z.url({ protocol: /^https?$/ }), z.custom<MessageVerifier>(isClient, "must be an http(s) URL or a viem public client")])).default({}),
        /** Milliseconds before a contract-wallet check gives up (503). */
        rpcTimeoutMs: z.number().int().min(100).max(60_000).default(5000),
      }),
    ])
    .default({ chains: [1], rpc: {}, rpcTimeoutMs: 5000 }),
  solana: z
    .union([
      z.literal(false),
      z.strictObject({
        /** Chains a message may name: `mainnet`, `devnet`, `testnet`, `localnet` (the `solana:` prefix is accepted too). */
        chains: z.array(z.string().regex(/^(solana:)?[a-z0-9-]{1,32}$/)).min(1).default(["mainnet"]),
      }),
    ])
    .default({ chains: ["mainnet"] }),
  /** Seconds a nonce stays usable; also how old a message's `issuedAt` may be. */
  nonceTtl: z.number().int().min(30).max(3600).default(10 * MINUTE),
  /** Seconds of clock difference tolerated between wallet and server. */
  clockSkew: z.number().int().min(0).max(600).default(60),
  /** Largest message accepted, in bytes. */
  maxMessageBytes: z.number().int().min(256).max(64 * 1024).default(4096),
  maxStatementLength: z.number().int().min(0).max(4096).default(512),
  maxResources: z.number().int().min(0).max(256).default(16),
  maxResourceLength: z.number().int().min(16).max(4096).default(512),
  /** Per client (IP) and minute. */
  rateLimit: z
    .strictObject({ nonce: z.number().int().positive().default(30), verify: z.number().int().positive().default(30) })
    .default({ nonce: 30, verify: 30 }),
});

export type WalletOptions = z.input<typeof walletOptionsSchema>;
export type ResolvedWalletOptions = z.output<typeof walletOptionsSchema>;

export function resolveWalletOptions(input: unknown): ResolvedWalletOptions {
  const options = parseOptions(walletOptionsSchema, input ?? {}, "walletProvider");
  if (options.ethereum === false && options.solana === false) throw new TypeError("walletProvider: enable ethereum, solana or both");
  if (options.ethereum) {
    for (const chain of Object.keys(options.ethereum.rpc)) {
      if (!options.ethereum.chains.includes(Number(chain))) {
        throw new TypeError(`walletProvider: option "ethereum.rpc.${chain}" is for a chain not in ethereum.chains`);
      }
    }
  }
  return options;
}
