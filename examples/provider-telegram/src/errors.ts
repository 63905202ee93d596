import { defineErrors } from "@erebus/core/provider";

export const telegramErrors = defineErrors({
  ERR_TELEGRAM_HASH_INVALID: { status: 401, title: "This Telegram login was not signed by this app's bot" },
  ERR_TELEGRAM_AUTH_EXPIRED: { status: 401, title: "This Telegram login is too old; sign in with Telegram again" },
  ERR_TELEGRAM_AUTH_DATE_FUTURE: { status: 401, title: "This Telegram login is dated in the future" },
  ERR_TELEGRAM_AUTH_USED: { status: 401, title: "This Telegram login was already used; sign in with Telegram again" },
});

export type TelegramErrorCode = keyof typeof telegramErrors.codes;
