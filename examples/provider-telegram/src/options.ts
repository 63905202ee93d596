import { parseOptions } from "@erebus/core/provider";
import * as z from "zod";

/** Every option of `telegramProvider()`, with its default. */
export const telegramOptionsSchema = z.strictObject({
  /** The bot's token from @BotFather (`123456789:AA…`). It signs nothing here: SHA-256 of it is the key the widget's hash is checked with. */
  botToken: z.string().regex(/^\d{1,20}:[A-Za-z0-9_-]{20,100}$/, "must be a bot token from @BotFather, like 123456789:AAH…"),
  /** Seconds a login stays usable after Telegram dated it (`auth_date`). */
  maxAge: z.number().int().min(60).max(30 * 86_400).default(86_400),
  /** Seconds an `auth_date` may lie in the future (clocks differ a little; more than that is refused). */
  clockSkew: z.number().int().min(0).max(600).default(60),
  /** Where the browser goes after signing in through the confirm page (a same-origin path). */
  successRedirect: z.string().regex(/^\/(?!\/)[^\s\\]*$/, "must be a same-origin path like /").default("/"),
  /** Name shown on the confirm page. */
  appName: z.string().min(1).max(64).default("Erebus"),
  /** Confirm-page views and sign-in requests per client IP per minute (429 past it). */
  perClient: z.number().int().positive().default(60),
});

export type TelegramOptions = z.input<typeof telegramOptionsSchema>;
export type ResolvedTelegramOptions = z.output<typeof telegramOptionsSchema>;

export const resolveTelegramOptions = (input: unknown): ResolvedTelegramOptions => parseOptions(telegramOptionsSchema, input ?? {}, "telegramProvider");
