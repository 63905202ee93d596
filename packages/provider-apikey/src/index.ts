export { apiKeyProvider } from "./api-key-provider.js";
export type { ApiKeysApi } from "./api.js";
export { apiKeyOptionsSchema, type ApiKeyOptions } from "./options.js";
export { apiKeyErrors, type ApiKeyErrorCode } from "./errors.js";
export { apiKeySourceTypeSchema, type ApiKeySourceType } from "./source-type.js";
export { BASE62, formatKey, generateKey, parseKey, type ParsedKey } from "./key.js";
export { KEY_CHANGED_CHANNEL, pepperFingerprint, type ApiKeyInfo, type CreateKeyInput } from "./store.js";
