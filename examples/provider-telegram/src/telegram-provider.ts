import type { ErebusProvider } from "@erebus/core/provider";
import { telegramErrors } from "./errors.js";
import { resolveTelegramOptions, type TelegramOptions } from "./options.js";
import { moveUsedLoginsMigration, usedLoginsMigration } from "./migrations.js";
import { telegramRoutes } from "./routes.js";
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
    migrations: [usedLoginsMigration, moveUsedLoginsMigration],
    // Per-instance state lives in this closure (core calls setup once per createAuth). The verify
    // route takes the confirm page's HTML form too: its describeRoute says `form: true`.
    setup(ctx) {
      return { routes: (router) => telegramRoutes(router, ctx, options) };
    },
  } satisfies ErebusProvider;
}
