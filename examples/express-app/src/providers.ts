import type { ErebusProvider } from "@erebus/core";
import { testProvider } from "@erebus/core/testing";
import { apiKeyProvider } from "@erebus/provider-apikey";
import { walletProvider } from "@erebus/provider-wallet";
import type { AppConfig } from "./config.js";

/** The example's providers, shared by the app and by `erebus.config.mjs` (the CLI), so both migrate the same tables. */
export function providersFor(config: AppConfig) {
  const apiKeys = apiKeyProvider(config.apiKeyPepper ? { pepper: config.apiKeyPepper } : {});
  const providers: ErebusProvider[] = [walletProvider({ ethereum: config.ethereum, solana: config.solana }), apiKeys];
  if (!config.production) providers.push(testProvider());
  return { providers, apiKeys };
}
