import type { ErebusProvider } from "@erebus/core";
import { testProvider } from "@erebus/core/testing";
import { apiKeyProvider } from "@erebus/provider-apikey";
import { emailProvider, memoryTransport, smtpTransport } from "@erebus/provider-email";
import { walletProvider } from "@erebus/provider-wallet";
import type { AppConfig } from "./config.js";

/** The example's providers, shared by the app and by `erebus.config.mjs` (the CLI), so both migrate the same tables. */
export function providersFor(config: AppConfig) {
  const apiKeys = apiKeyProvider(config.apiKeyPepper ? { pepper: config.apiKeyPepper } : {});
  // Without SMTP (development only: config refuses production without it), mail lands in a mailbox the page can show.
  const mailbox = config.smtp ? undefined : memoryTransport();
  const transport = config.smtp ? smtpTransport(config.smtp.url, config.smtp.from) : mailbox!;
  const providers: ErebusProvider[] = [
    walletProvider({ ethereum: config.ethereum, solana: config.solana }),
    emailProvider({ appName: config.appName, transport }),
    apiKeys,
  ];
  if (!config.production) providers.push(testProvider());
  return { providers, apiKeys, mailbox };
}
