import { defineSourceType } from "@erebus/core/provider";
import * as z from "zod";

/**
 * The `telegram` source type: a Telegram account as the Login Widget described it at the last
 * sign-in. Registered by the provider (core writes its rule to the database at migration).
 */
export const telegramSourceType = defineSourceType("telegram", {
  /** Telegram's numeric user id, in decimal (it can exceed 2^31, so a string, not a JSON number). */
  user_id: z.string(),
  first_name: z.string(),
  last_name: z.string().optional(),
  username: z.string().optional(),
  photo_url: z.string().optional(),
  metadata: z.record(z.string(), z.unknown()).optional(),
});

export type TelegramSourceType = z.infer<typeof telegramSourceType.schema>;

/** The network the provider's identities live on; `source_identifier` is the decimal id, so the identity reads `telegram:<id>`. */
export const TELEGRAM_NETWORK = "telegram";
