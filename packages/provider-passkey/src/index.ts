export { passkeyProvider, type PasskeyApi } from "./passkey-provider.js";
export { passkeyOptionsSchema, COSE_ALGORITHMS, type PasskeyOptions } from "./options.js";
export { passkeyErrors, type PasskeyErrorCode } from "./errors.js";
export { passkeySourceType, PASSKEY_NETWORK, type PasskeySourceType } from "./source-type.js";
export { KNOWN_AUTHENTICATORS } from "./authenticator-names.js";
export type { PasskeyInfo } from "./credentials.js";
