import type { ErebusProvider } from "@erebus/core/provider";
import { contractChainMigration } from "./contract-chains.js";
import { walletErrors } from "./errors.js";
import { dropNonceTableMigration, nonceMigration } from "./nonces.js";
import { resolveWalletOptions, type WalletOptions } from "./options.js";
import { walletRoutes } from "./routes.js";

/**
 * Sign-In with Ethereum (EIP-4361) and Sign In With Solana, as one Erebus provider.
 * Options are validated here, once: a bad one throws a TypeError naming it.
 *
 * @example
 * const auth = createAuth({
 *   database, baseURL: "https://app.example.com",
 *   providers: [walletProvider({ ethereum: { chains: [1, 8453], rpc: { 1: process.env.MAINNET_RPC! } } })],
 * });
 */
export function walletProvider(input: WalletOptions = {}) {
  const options = resolveWalletOptions(input);
  return {
    id: "wallet",
    emits: ["web3_wallet"],
    errors: walletErrors.codes,
    migrations: [nonceMigration, contractChainMigration, dropNonceTableMigration],
    setup(ctx) {
      return { routes: (router) => walletRoutes(router, ctx, options) };
    },
  } satisfies ErebusProvider;
}
