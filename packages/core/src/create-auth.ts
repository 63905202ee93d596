import type { ErrorRequestHandler, Request, RequestHandler, Response, Router } from "express";
import { createAuthentication } from "./authentication.js";
import { coreRouteDocs } from "./core-routes.js";
import { lazyDatabase } from "./db/lazy.js";
import type { Database } from "./db/types.js";
import { AuthError } from "./errors.js";
import { bearerToken, createErrorHandler } from "./http.js";
import type { UserType } from "./identities.js";
import { coreMigrations, runMigrations, type MigrateResult, type MigrationSet } from "./migrate.js";
import { describeRoute } from "./openapi.js";
import { resolveOptions, type AuthOptions } from "./options.js";
import type { ProviderCommand, ProviderContext, RequestAuth } from "./provider.js";
import { createPeople } from "./people.js";
import { createProviderContext } from "./provider-context.js";
import { checkProviders, collectCommands, setUpProvider, type ProviderInstance } from "./provider-registry.js";
import { createRateLimiterFactory, pruneRateLimits, type RateLimiter, type RateLimitRule } from "./rate-limit.js";
import { createRouter } from "./router.js";
import { createSessionCache } from "./session-cache.js";
import { createSessionStore, type Session, type SessionCheck } from "./sessions.js";
import { createSessionTransport, noResponse } from "./session-transport.js";
import { createSignIn } from "./sign-in.js";
import { SourceTypeRegistry, type SourceTypeDefinition } from "./source-types.js";
import { createUserStore, mapDatabaseError, type SystemAgentInput, type UserReference } from "./users.js";
import type { VerifiedIdentity } from "./identities.js";
import { createBrowserCookie, pruneVerifications } from "./verifications.js";

export { SESSION_TRANSPORT_HEADER } from "./session-transport.js";

declare global {
  // Express types `req` through this global namespace; declaration merging is how a library adds fields to it.
  namespace Express {
    interface Request {
      /** Set by Erebus's middleware: who made the request, or `null` for nobody. */
      auth?: RequestAuth | null;
      /** Why a session cookie on this request was not accepted (the request goes on unauthenticated). */
      authError?: AuthError;
    }
  }
}

/** Core's own CLI commands: a provider may not take these names. */
const CORE_COMMANDS = ["migrate", "prune", "sessions", "agents", "help"];

/** What `createAuth` returns: the router, the middleware and guards, the programmatic API. */
export interface ErebusAuth {
  /** Mount under `basePath`: `app.use("/auth", auth.router)`. */
  readonly router: Router;
  /** Sets `req.auth` on every request it sees. Mount it app-wide before your routes. */
  readonly middleware: RequestHandler;
  /** Renders any error as problem+json. Mount it last in your app if you throw AuthErrors from your own routes. */
  readonly errorHandler: ErrorRequestHandler;
  /**
   * Who made the request, as `middleware` works it out (once per request): `req.auth`, or `null`
   * for nobody. A bad explicit credential throws its AuthError (an unreachable database 503)
   * instead of answering, for code that answers itself (a Passport strategy). Without `res` the
   * cookie writes (the sliding refresh, clearing a bad cookie) are dropped.
   */
  authenticate(req: Request, res?: Response): Promise<RequestAuth | null>;
  requireUser(): RequestHandler;
  requireUserType(...allowed: UserType[]): RequestHandler;
  requireScope(...scopes: string[]): RequestHandler;
  /**
   * 403 `ERR_REAUTH_REQUIRED` unless the request's session proved a credential within `maxAge`
   * seconds (default `people.freshAge`): for sensitive actions (step-up). Signing in again, or
   * re-proving any identity of the person under a link intent, makes it fresh.
   */
  requireFresh(options?: { maxAge?: number }): RequestHandler;
  /** Settles when start-up work (migrations, with `migrate: true`) is done; rejects if it failed. */
  readonly ready: Promise<void>;
  /** The database Erebus uses. */
  readonly db: Database;
  /** Every registered source type (core's and the providers'). */
  readonly sourceTypes: readonly SourceTypeDefinition[];
  /** What each provider offers the app (its setup's `api`), by provider id. */
  readonly providers: Readonly<Record<string, unknown>>;
  /** The CLI commands the providers add, by name. */
  readonly commands: ReadonlyMap<string, { providerId: string; command: ProviderCommand }>;
  readonly api: ErebusApi;
  /** The context a provider gets (for its CLI commands and tests). */
  providerContext(id: string): ProviderContext;
  /** Closes the database if Erebus opened it (given as a URL). */
  close(): Promise<void>;
}

export interface ErebusApi {
  /** Applies core's and every provider's pending migrations (safe to call from several instances at once). */
  migrate(): Promise<MigrateResult>;
  resolveIdentity(identity: VerifiedIdentity, options?: { db?: import("./db/types.js").Queryable }): Promise<UserReference>;
  getUser(id: string): Promise<UserReference | null>;
  findUser(network: string, sourceIdentifier: string): Promise<UserReference | null>;
  registerSystemAgent(input: SystemAgentInput, options?: { db?: import("./db/types.js").Queryable }): Promise<UserReference>;
  deactivateUser(id: string): Promise<UserReference>;
  reactivateUser(id: string): Promise<UserReference>;
  /** Creates a session for a user id (e.g. for a test or an admin "log in as"); returns the token once. */
  createSession(userId: string): Promise<{ token: string; session: Session }>;
  checkSession(token: string): Promise<SessionCheck>;
  /** Revokes the session a token belongs to; whether there was one. */
  revokeSession(token: string): Promise<boolean>;
  revokeAllSessions(userId: string, q?: import("./db/types.js").Queryable): Promise<number>;
  pruneSessions(olderThanSeconds?: number): Promise<number>;
  /** Deletes rate-limit counters whose window has ended; returns how many. */
  pruneRateLimits(): Promise<number>;
  /**
   * What to run from cron (`npx erebus prune`): sessions and single-use secrets that ended more than
   * `olderThanSeconds` ago (default a day) and every rate-limit counter whose window has ended.
   */
  prune(olderThanSeconds?: number): Promise<{ sessions: number; rateLimits: number; verifications: number }>;
  rateLimit(rule: RateLimitRule): RateLimiter;
}

/**
 * Creates an Erebus instance: validates the options once (a bad option throws a TypeError naming it)
 * and returns the Express router, the middleware and guards, and the programmatic API.
 *
 * @example
 * const auth = createAuth({ database: "pglite://.data/erebus", baseURL: "http://localhost:3000", providers: [], migrate: true });
 * await auth.ready;
 * app.use("/auth", auth.router);
 * app.get("/api/me", auth.requireUser(), (req, res) => res.json(req.auth));
 */
export function createAuth(input: AuthOptions): ErebusAuth {
  const options = resolveOptions(input);
  const registry = new SourceTypeRegistry();
  checkProviders(options.providers, registry, options.production);

  const db: Database = typeof options.database === "string" ? lazyDatabase(options.database) : options.database;
  const { clock, random, logger } = options;
  const users = createUserStore(db, registry, random);
  // Session look-ups served from memory, dropped on every instance by NOTIFY (session-cache.ts).
  const sessionCache = createSessionCache(db, { ttl: options.session.cacheTtl, size: options.session.cacheSize }, logger);
  const sessions = createSessionStore(db, options.session, clock, random, sessionCache.enabled ? sessionCache : undefined);
  const rateLimit = createRateLimiterFactory(db, options.rateLimit);
  const transport = createSessionTransport(options, sessions);
  const errorHandler = createErrorHandler(logger);

  const migrationSets: MigrationSet[] = [coreMigrations, ...options.providers.map((p) => ({ owner: p.id, migrations: p.migrations ?? [] }))];
  const sourceTypeOwners = registry.all().map((definition) => ({
    definition,
    owner: options.providers.find((p) => p.sourceTypes?.includes(definition))?.id ?? "core",
  }));
  async function migrate(): Promise<MigrateResult> {
    const result = await runMigrations(db, migrationSets, sourceTypeOwners);
    if (result.applied.length) logger.info("migrations applied", { applied: result.applied });
    return result;
  }
  const ready: Promise<void> = options.migrate ? migrate().then(() => undefined) : Promise.resolve();
  // Failures surface through `await auth.ready` and as 503s; don't also crash on an unhandled rejection.
  ready.catch((error) => logger.error("start-up failed", { error: (error as Error).message }));
  // Once ready, a request checks a flag instead of awaiting a settled promise (a microtask hop each).
  let isReady = false;
  ready.then(() => {
    isReady = true;
  }, () => undefined);

  // Providers are set up before authentication exists, so their authenticators are read through this list.
  const authenticators: NonNullable<ProviderInstance["authenticate"]>[] = [];
  const authentication = createAuthentication({
    sessions,
    transport,
    authenticators,
    trustedOrigins: new Set([options.baseURL.origin, ...options.trustedOrigins]),
    logger,
    errorHandler,
    whenReady: () => (isReady ? undefined : ready),
  });
  const people = createPeople({ db, options, sessions, sessionCache, transport, authentication, rateLimit, logger });
  const signIn = createSignIn({ db, transport, sessionCache, logger, people });
  // Secure in production as the session cookie is (behind a TLS-terminating proxy with an http baseURL too).
  const browserCookie = createBrowserCookie(options.baseURL, options.basePath, options.production);
  const instances: ProviderInstance[] = options.providers.map((provider) =>
    setUpProvider(provider, createProviderContext(provider, { options, db, users, signIn, rateLimit, authentication, browserCookie, people, sessions })),
  );
  for (const instance of instances) if (instance.authenticate) authenticators.push(instance.authenticate);
  const commands = collectCommands(instances, CORE_COMMANDS);

  const router = createRouter({
    options,
    authentication,
    instances,
    cookieName: transport.cookieName,
    errorHandler,
    ready,
    coreRoutes(r) {
      r.get("/session", describeRoute(coreRouteDocs.session), authentication.requireUser(), async function erebusSession(req, res) {
        const auth = req.auth!;
        res.setHeader("Cache-Control", "no-store");
        res.json({ user: auth.user, person: await people.person(auth.personId), session: auth.session ?? null, via: auth.via, scopes: auth.scopes });
      });
      people.routes(r);
      r.post("/sign-out", describeRoute(coreRouteDocs.signOut), async function erebusSignOut(req, res) {
        const bearer = bearerToken(req);
        const cookie = transport.cookieToken(req);
        if (typeof bearer === "string") await sessions.revoke(bearer);
        if (cookie !== undefined) {
          await sessions.revoke(cookie);
          transport.clearCookie(res);
        }
        res.status(204).end();
      });
    },
  });

  const api: ErebusApi = {
    migrate,
    resolveIdentity: users.resolveIdentity,
    getUser: users.getUser,
    findUser: users.findUser,
    registerSystemAgent: users.registerSystemAgent,
    deactivateUser: async (id: string) => {
      const user = await users.deactivateUser(id, clock());
      sessionCache.dropUser(user.id); // here at once; the other instances hear the trigger's NOTIFY
      return user;
    },
    reactivateUser: users.reactivateUser,
    /** Creates a session for a user id (e.g. for a test or an admin "log in as"); returns the token once. */
    createSession: async (userId: string): Promise<{ token: string; session: Session }> => {
      const user = await users.getUser(userId);
      if (!user) throw AuthError.of("ERR_USER_NOT_FOUND");
      if (user.is_active === false) throw AuthError.of("ERR_USER_DEACTIVATED");
      return sessions.create(user.id);
    },
    checkSession: sessions.check,
    revokeSession: (token: string) => sessions.revoke(token),
    revokeAllSessions: sessions.revokeAll,
    pruneSessions: sessions.prune,
    /** Deletes rate-limit counters whose window has ended; returns how many. */
    pruneRateLimits: () => pruneRateLimits(db),
    /**
     * What to run from cron (`npx erebus prune`): sessions that ended more than `olderThanSeconds`
     * ago (default a day) and every rate-limit counter whose window has ended.
     */
    prune: async (olderThanSeconds = 86_400) => ({
      sessions: await sessions.prune(olderThanSeconds),
      rateLimits: await pruneRateLimits(db),
      verifications: await pruneVerifications(db, clock(), olderThanSeconds),
    }),
    rateLimit,
  };

  return {
    router,
    middleware: authentication.middleware,
    async authenticate(req, res) {
      try {
        await authentication.authenticate(req, res ?? noResponse);
      } catch (error) {
        throw mapDatabaseError(error);
      }
      return req.auth ?? null;
    },
    errorHandler,
    requireUser: authentication.requireUser,
    requireUserType: authentication.requireUserType,
    requireScope: authentication.requireScope,
    requireFresh(opts = {}) {
      if (opts.maxAge !== undefined && (!Number.isInteger(opts.maxAge) || opts.maxAge < 1)) throw new TypeError("requireFresh: maxAge must be a positive number of seconds");
      return authentication.guard("erebusRequireFresh", async (req, res) => {
        await people.requireFreshSession(req, res, opts.maxAge);
      });
    },
    ready,
    db,
    sourceTypes: registry.all() as readonly SourceTypeDefinition[],
    providers: Object.freeze(Object.fromEntries(instances.filter((i) => i.api !== undefined).map((i) => [i.provider.id, i.api]))),
    commands,
    api,
    providerContext(id: string): ProviderContext {
      const instance = instances.find((i) => i.provider.id === id);
      if (!instance) throw new TypeError(`no provider "${id}" in this createAuth()`);
      return instance.ctx;
    },
    close: async () => {
      await sessionCache.close();
      await db.close();
    },
  };
}
