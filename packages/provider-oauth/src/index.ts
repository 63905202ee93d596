export { oauthProvider, type OAuthApi } from "./oauth-provider.js";
export type { RefreshTokenStore } from "./refresh-tokens.js";
export { oidc, google, microsoft, github, discord, type ProviderConfig, type OidcConfig, type OAuth2Config } from "./presets.js";
export { oauthOptionsSchema, type OAuthOptions } from "./options.js";
export { oauthErrors, type OAuthErrorCode } from "./errors.js";
export { oauthSourceTypeSchema, type OAuthSourceType, type OAuthProfile } from "./source-type.js";
