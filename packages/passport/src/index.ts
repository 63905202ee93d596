export { passportProvider } from "./passport-provider.js";
export { ErebusStrategy, type ErebusStrategyInfo } from "./erebus-strategy.js";
export { passportErrors, type PassportErrorCode } from "./errors.js";
export { passportOptionsSchema, type PassportProviderOptions, type PassportKind } from "./options.js";
export { oauthProfileIdentity, verifiedEmailOf, type ToIdentity } from "./identity.js";
export type { PassportStrategy } from "./drive.js";
