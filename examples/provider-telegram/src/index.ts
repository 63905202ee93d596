export { telegramProvider } from "./telegram-provider.js";
export { telegramOptionsSchema, type TelegramOptions } from "./options.js";
export { telegramErrors, type TelegramErrorCode } from "./errors.js";
export { telegramSourceType, TELEGRAM_NETWORK, type TelegramSourceType } from "./source-type.js";
export { telegramAuthDataSchema, dataCheckString, signTelegramAuthData, verifyTelegramAuthData, type TelegramAuthData, type VerifiedTelegramLogin } from "./verify.js";
