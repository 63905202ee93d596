export { createErebusClient, isLinkResult, type ErebusClient, type ErebusClientOptions, type EmailStart, type EmailVerify } from "./client.js";
export { ErebusError, IdentityLinkedElsewhereError, ReauthRequiredError, type Problem } from "./errors.js";
export { memoryTokenStore, type TokenStore } from "./token-store.js";
export type { EthereumSigner, SolanaSigner, SolanaKeypairLike, SolanaKitSignerLike, SolanaSignerInput } from "./signers.js";
export type { SolanaSignInInput } from "./messages.js";
export type {
  ApiKeyInfo,
  IntentOption,
  LinkIntentOption,
  LinkOutcome,
  LinkResult,
  NewApiKey,
  OAuthProviderInfo,
  PersonIdentity,
  PersonInfo,
  SessionInfo,
  SignInResult,
  SiweNonce,
  SiwsNonce,
  UserReference,
} from "./types.js";
