export { createAuth, SESSION_TRANSPORT_HEADER, type ErebusAuth } from "./create-auth.js";
export { optionsSchema, parseOptions, productionFromEnv, type AuthOptions } from "./options.js";
export { AuthError, coreErrors, defineErrors, isConnectionError, type CoreErrorCode } from "./errors.js";
export type { Database, Queryable, QueryResult } from "./db/types.js";
export { connectDatabase, type ConnectOptions, type PGliteModule } from "./db/connect.js";
export { pgliteDatabase, type PGliteInstance, type PGliteQueryable, type PGliteDatabaseOptions } from "./db/pglite.js";
export { postgresDatabase } from "./db/postgres.js";
export { runMigrations, coreMigrations, type Migration, type MigrationSet, type MigrateResult } from "./migrate.js";
export {
  defineSourceType,
  SourceTypeRegistry,
  coreSourceTypes,
  web3WalletSourceType,
  apiKeySourceType,
  emailAuthSourceType,
  systemAgentSourceType,
  oauthSourceType,
  type SourceTypeDefinition,
  type SourceTypeRule,
  type JsonKind,
  type Web3WalletSourceType,
  type ApiKeySourceType,
  type EmailAuthSourceType,
  type SystemAgentSourceType,
  type OAuthSourceType,
  type SeedSourceType,
} from "./source-types.js";
export { canonicalIdentities, checkIdentity, toChecksumAddress, userTypes, type UserType, type VerifiedIdentity } from "./identities.js";
export { USER_DEACTIVATED_CHANNEL, type UserReference, type SystemAgentInput } from "./users.js";
export { hashToken, type Session, type SessionCheck } from "./sessions.js";
export { SESSION_CHANGED_CHANNEL } from "./session-cache.js";
export type { RateLimiter, RateLimitRule } from "./rate-limit.js";
export type { ErebusProvider, ProviderCommand, ProviderContext, ProviderAuthResult, RequestAuth, SignInAttempt, SignInResult } from "./provider.js";
export { main as runCli, type ErebusCliConfig } from "./cli.js";
export { consoleLogger, silentLogger, type Logger } from "./logger.js";
export { sendProblem } from "./http.js";
export { pgText, isPgText, findPgUnsafeString, PG_TEXT_MESSAGE } from "./pg-text.js";
export { describeRoute, signInResultSchema, userReferenceSchema, type RouteDoc, type ResponseDoc } from "./openapi.js";
export { escapeHtml, sendPage } from "./html.js";
