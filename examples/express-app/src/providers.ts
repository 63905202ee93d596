import { defineSourceType, type ErebusProvider } from "@erebus/core";
import { testProvider } from "@erebus/core/testing";
import { passportProvider } from "@erebus/passport";
import { Strategy as LocalStrategy } from "passport-local";
import * as z from "zod";
import { apiKeyProvider } from "@erebus/provider-apikey";
import { emailProvider, memoryTransport, smtpTransport } from "@erebus/provider-email";
import { github, google, oauthProvider, oidc, type ProviderConfig } from "@erebus/provider-oauth";
import { passkeyProvider } from "@erebus/provider-passkey";
import { telegramProvider } from "@erebus/provider-telegram";
import { walletProvider } from "@erebus/provider-wallet";
import { syncProvider } from "@erebus/sync";
import type { AppConfig } from "./config.js";

/** The example's providers, shared by the app and by `erebus.config.mjs` (the CLI), so both migrate the same tables. */
export function providersFor(config: AppConfig) {
  const apiKeys = apiKeyProvider(config.apiKeyPepper ? { pepper: config.apiKeyPepper } : {});
  // Without SMTP (development only: the app refuses to start otherwise), mail lands in a mailbox the page can show.
  const mailbox = config.smtp ? undefined : memoryTransport();
  const transport = config.smtp ? smtpTransport(config.smtp.url, config.smtp.from) : mailbox!;
  const oauth: Record<string, ProviderConfig> = {};
  if (config.oauth.google) oauth.google = google(config.oauth.google);
  if (config.oauth.github) oauth.github = github(config.oauth.github);
  // With no real provider configured (in development only), the app's own development IdP.
  const devIdp = Object.keys(oauth).length === 0 && config.development ? devIdpSettings(config) : undefined;
  if (devIdp) oauth.dev = oidc({ issuer: devIdp.issuer, clientId: devIdp.clientId, clientSecret: devIdp.clientSecret, label: "Development IdP" });
  const providers: ErebusProvider[] = [
    walletProvider({ ethereum: config.ethereum, solana: config.solana }),
    emailProvider({ appName: config.appName, transport }),
    apiKeys,
  ];
  if (Object.keys(oauth).length > 0) providers.push(oauthProvider({ providers: oauth }));
  // Passkeys: their RP id is PUBLIC_URL's host name, which WebAuthn refuses when it is an IP address
  // (http://127.0.0.1:3000): the page then offers no passkey buttons (use http://localhost:3000).
  if (!/^(\d+\.\d+\.\d+\.\d+|\[.*\])$/.test(new URL(config.publicUrl).hostname)) providers.push(passkeyProvider({ rpName: config.appName }));
  // Telegram: the configured bot; with none, in development only, a development bot whose token the
  // stand-in widget at /dev/telegram signs with (the real widget cannot sign for a made-up bot).
  const devTelegram = !config.telegram && config.development ? devTelegramSettings() : undefined;
  const telegramBotToken = config.telegram?.botToken ?? devTelegram?.botToken;
  if (telegramBotToken) providers.push(telegramProvider({ botToken: telegramBotToken, appName: config.appName }));
  // The outbox (always: events wait there until a relay takes them) and `npx erebus sync run|status`.
  providers.push(syncProvider(config.agentsDatabaseUrl ? { target: config.agentsDatabaseUrl } : {}));
  // Sign in as anyone, and X-Test-Key: only when development helpers were asked for.
  if (config.development) providers.push(testProvider());
  // A Passport strategy next to the native providers (@erebus/passport): passport-local with one demo
  // account, POST /auth/passport/local { username: "demo", password: "demo" }; development only.
  if (config.development) providers.push(demoPassportLocal());
  return { providers, apiKeys, mailbox, devIdp, devTelegram };
}

/** Where the development IdP lives (mounted by the app at /dev/oidc) and the client it knows. */
export function devIdpSettings(config: AppConfig) {
  return {
    issuer: `${config.publicUrl}/dev/oidc`,
    clientId: "erebus-example",
    clientSecret: "development-only-not-a-secret",
    redirectUri: `${config.publicUrl}/auth/oauth/dev/callback`,
  };
}

/** The development bot (never a real one: its token is in this file) and the demo users its stand-in widget signs in. */
export function devTelegramSettings() {
  return {
    botToken: "100000001:development-only-not-a-secret",
    users: [
      { id: "100001", first_name: "Ada", last_name: "Lovelace", username: "ada_dev" },
      { id: "100002", first_name: "Grace", last_name: "Hopper", username: "grace_dev" },
      { id: "100003", first_name: "Alan" },
    ] as { id: string; first_name: string; last_name?: string; username?: string }[],
  };
}

const demoAccount = defineSourceType("demo_account", { username: z.string() });

/** passport-local with one demo account (its password is in this file: never in production). */
export function demoPassportLocal() {
  return passportProvider({
    id: "local",
    strategy: new LocalStrategy((username, password, done) => done(null, username === "demo" && password === "demo" ? { username } : false)),
    sourceTypes: [demoAccount],
    toIdentity: (user) => {
      const { username } = user as { username: string };
      return { network: "demo", sourceIdentifier: username, sourceType: { type: "demo_account", username } };
    },
  });
}
