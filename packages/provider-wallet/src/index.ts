export { walletProvider } from "./wallet-provider.js";
export { walletOptionsSchema, type WalletOptions, type MessageVerifier } from "./options.js";
export { walletErrors, type WalletErrorCode } from "./errors.js";
export { walletSourceTypeSchema, type WalletSourceType } from "./source-type.js";
export { formatSiweMessage, parseSiweMessage, type SiweFields, type ParsedSiwe } from "./siwe-message.js";
export { formatSiwsMessage, parseSiwsMessage, type SiwsFields } from "./siws-message.js";
export { checkSiweMessage, checkSiwsMessage, type MessagePolicy } from "./verify.js";
export { hashPersonalMessage, recoverPersonalSigner } from "./signature.js";
