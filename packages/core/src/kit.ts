// @erebus/core/provider: what a provider author uses. An app imports `@erebus/core`; a provider's
// tests import `@erebus/core/testing`.
export type {
  ErebusProvider,
  ProviderSetup,
  ProviderCommand,
  ProviderContext,
  ProviderAuthResult,
  RequestAuth,
  SignInAttempt,
  SignInResult,
  LinkIntent,
  Verifications,
  VerificationResult,
} from "./provider.js";
export type { IssueInput, Issued, ConsumeInput, SecretKind, VerificationFailureReason } from "./verifications.js";
export { AuthError, defineErrors, isConnectionError } from "./errors.js";
export { parseOptions } from "./options.js";
export {
  defineSourceType,
  type SourceTypeDefinition,
  type SourceTypeRule,
  type JsonKind,
  web3WalletSourceType,
  apiKeySourceType,
  emailAuthSourceType,
  systemAgentSourceType,
  oauthSourceType,
} from "./source-types.js";
export { checkIdentity, toChecksumAddress, type VerifiedIdentity, type UserType } from "./identities.js";
export { USER_DEACTIVATED_CHANNEL, type UserReference, type SystemAgentInput } from "./users.js";
export type { Database, Queryable, QueryResult } from "./db/types.js";
export type { Migration } from "./migrate.js";
export type { RateLimiter, RateLimitRule } from "./rate-limit.js";
export type { Logger } from "./logger.js";
export { describeRoute, personSchema, signInResultSchema, userReferenceSchema, type RouteDoc, type ResponseDoc } from "./openapi.js";
export type { Person, PersonIdentity, LinkOutcome } from "./people.js";
export { escapeHtml, sendPage } from "./html.js";
export { sendProblem } from "./http.js";
export { pgText, isPgText, findPgUnsafeString, PG_TEXT_MESSAGE } from "./pg-text.js";
