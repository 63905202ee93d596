// @erebus/core: what an app uses. A provider author imports `@erebus/core/provider`; a provider's
// tests import `@erebus/core/testing`.
export { createAuth, SESSION_TRANSPORT_HEADER, type ErebusAuth, type ErebusApi } from "./create-auth.js";
export { parseOptions, productionFromEnv, type AuthOptions } from "./options.js";
export { AuthError, coreErrors, defineErrors, isConnectionError, type CoreErrorCode } from "./errors.js";
export type { Database, Queryable, QueryResult } from "./db/types.js";
export { connectDatabase, type ConnectOptions, type PGliteModule } from "./db/connect.js";
export { pgliteDatabase, type PGliteInstance, type PGliteQueryable, type PGliteDatabaseOptions } from "./db/pglite.js";
export { postgresDatabase } from "./db/postgres.js";
export { runMigrations, type Migration, type MigrationSet, type MigrateResult } from "./migrate.js";
export {
  coreSourceTypes,
  web3WalletSourceType,
  apiKeySourceType,
  emailAuthSourceType,
  systemAgentSourceType,
  oauthSourceType,
  type SourceTypeDefinition,
  type Web3WalletSourceType,
  type ApiKeySourceType,
  type EmailAuthSourceType,
  type SystemAgentSourceType,
  type OAuthSourceType,
  type SeedSourceType,
} from "./source-types.js";
export { toChecksumAddress, userTypes, type UserType, type VerifiedIdentity } from "./identities.js";
export { USER_DEACTIVATED_CHANNEL, type UserReference, type SystemAgentInput } from "./users.js";
export type { Session, SessionCheck } from "./sessions.js";
export { SESSION_CHANGED_CHANNEL } from "./session-cache.js";
export type { RateLimiter, RateLimitRule } from "./rate-limit.js";
export type { ErebusProvider, ProviderCommand, ProviderContext, RequestAuth, SignInResult } from "./provider.js";
export type { Person, PersonIdentity, LinkOutcome } from "./people.js";
export { main as runCli, type ErebusCliConfig } from "./cli.js";
export { consoleLogger, silentLogger, type Logger } from "./logger.js";
export { sendProblem } from "./http.js";
// What a provider author needs is in `@erebus/core/provider`; these are here too so an app can
// describe and guard its own routes the same way.
export {
  defineSourceType,
  describeRoute,
  signInResultSchema,
  userReferenceSchema,
  escapeHtml,
  sendPage,
  pgText,
  isPgText,
  findPgUnsafeString,
  PG_TEXT_MESSAGE,
  type RouteDoc,
  type ResponseDoc,
  type SourceTypeRule,
  type JsonKind,
  type ProviderAuthResult,
  type ProviderSetup,
  type SignInAttempt,
  type Verifications,
  type VerificationResult,
} from "./kit.js";
