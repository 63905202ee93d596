import type { ErebusProvider } from "@erebus/core";
import { telegramErrors } from "./errors.js";
import { resolveTelegramOptions, type TelegramOptions } from "./options.js";
import { telegramRoutes, telegramUsedLoginsMigration } from "./routes.js";
import { telegramSourceType } from "./source-type.js";

/**
 * Sign-in with the Telegram Login Widget (https://core.telegram.org/widgets/login): checks the
 * widget's HMAC-SHA-256 signature with the bot token, refuses stale and future-dated logins, and
 * lets each signed login sign in once. Identities are `telegram:<id>` (network `telegram`, `source_identifier` the decimal id), with
 * source type `telegram`.
 *
 * @example
 * app.use("/auth", createAuth({ database, baseURL, providers: [telegramProvider({ botToken: process.env.TELEGRAM_BOT_TOKEN! })] }).router);
 */
export function telegramProvider(input: TelegramOptions) {
  const options = resolveTelegramOptions(input);
  return {
    id: "telegram",
    emits: ["telegram"],
    sourceTypes: [telegramSourceType],
    errors: telegramErrors.codes,
    migrations: [telegramUsedLoginsMigration],
    // The confirm page's button is a plain HTML form.
    formRoutes: ["/telegram/verify"],
    routes(router, ctx) {
      telegramRoutes(router, ctx, options);
    },
  } satisfies ErebusProvider;
}
