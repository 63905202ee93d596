import express, { type NextFunction, type Request, type RequestHandler, type Response, type Router } from "express";
import { parse as parseCookies, serialize as serializeCookie } from "cookie";
import * as z from "zod";
import { lazyDatabase } from "./db/lazy.js";
import type { Database, Queryable } from "./db/types.js";
import { AuthError } from "./errors.js";
import { bearerToken, createErrorHandler, crossSiteRefusal } from "./http.js";
import { userTypes, type UserType, type VerifiedIdentity } from "./identities.js";
import type { Logger } from "./logger.js";
import { checkMigrationSet, coreMigrations, runMigrations, type MigrateResult, type MigrationSet } from "./migrate.js";
import { coreRouteDocs } from "./core-routes.js";
import { buildOpenApiDocument, collectRoutes, describeRoute } from "./openapi.js";
import { resolveOptions, type AuthOptions } from "./options.js";
import { findPgUnsafeString, PG_TEXT_MESSAGE } from "./pg-text.js";
import type { ErebusProvider, ProviderContext, RequestAuth, SignInAttempt, SignInResult } from "./provider.js";
import { createRateLimiterFactory, pruneRateLimits } from "./rate-limit.js";
import { createSessionCache } from "./session-cache.js";
import { createSessionStore, hashToken, type Session } from "./sessions.js";
import { SourceTypeRegistry, type SourceTypeDefinition } from "./source-types.js";
import { createUserStore, mapDatabaseError, type UserReference } from "./users.js";

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

const PROVIDER_ID = /^[a-z][a-z0-9-]{0,31}$/;
/** Header a non-browser client sends to receive the session token in the body instead of a cookie. */
export const SESSION_TRANSPORT_HEADER = "erebus-session-transport";

function checkProviders(providers: readonly ErebusProvider[], registry: SourceTypeRegistry, production: boolean): void {
  const ids = new Set<string>();
  for (const [index, provider] of providers.entries()) {
    const where = `providers[${index}]${typeof provider.id === "string" ? ` ("${provider.id}")` : ""}`;
    if (production && provider.developmentOnly === true) {
      throw new TypeError(
        `createAuth: ${where} is for development only and production is on; set NODE_ENV=development (or EREBUS_DEV=1), or pass production: false, only where it is not a deployment`,
      );
    }
    if (typeof provider.id !== "string" || !PROVIDER_ID.test(provider.id)) {
      throw new TypeError(`createAuth: ${where}.id must be a lower-case token matching ${PROVIDER_ID}`);
    }
    if (provider.id === "core") throw new TypeError(`createAuth: ${where}.id "core" is reserved`);
    if (ids.has(provider.id)) throw new TypeError(`createAuth: ${where}.id "${provider.id}" is used by two providers`);
    ids.add(provider.id);
    if (provider.routes !== undefined && typeof provider.routes !== "function") throw new TypeError(`createAuth: ${where}.routes must be a function`);
    if (provider.authenticate !== undefined && typeof provider.authenticate !== "function") throw new TypeError(`createAuth: ${where}.authenticate must be a function`);
    if (!provider.routes && !provider.authenticate && !provider.migrations?.length && !provider.commands) {
      throw new TypeError(`createAuth: ${where} has no routes, authenticate, migrations or commands: it can do nothing`);
    }
    if (!Array.isArray(provider.emits)) throw new TypeError(`createAuth: ${where}.emits must list the source types it emits`);
    for (const path of provider.formRoutes ?? []) {
      if (typeof path !== "string" || !/^\/[A-Za-z0-9/_-]+$/.test(path)) throw new TypeError(`createAuth: ${where}.formRoutes must be paths like /email/verify`);
    }
    for (const definition of provider.sourceTypes ?? []) {
      if (!definition || typeof definition.type !== "string" || !definition.schema || !definition.rule) {
        throw new TypeError(`createAuth: ${where}.sourceTypes must be made with defineSourceType()`);
      }
      registry.add(definition, provider.id);
    }
    checkMigrationSet({ owner: provider.id, migrations: provider.migrations ?? [] }, `createAuth: ${where}`);
  }
  for (const [index, provider] of providers.entries()) {
    for (const type of provider.emits) {
      if (!registry.get(type)) throw new TypeError(`createAuth: providers[${index}] ("${provider.id}") emits unknown source type "${type}"; register it in sourceTypes`);
    }
  }
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
export function createAuth(input: AuthOptions) {
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
  const secure = options.baseURL.protocol === "https:";
  const cookieName = options.session.cookieName ?? (secure ? "__Host-erebus_session" : "erebus_session");
  const trustedOrigins = new Set([options.baseURL.origin, ...options.trustedOrigins]);
  const errorHandler = createErrorHandler(logger);

  const migrationSets: MigrationSet[] = [
    coreMigrations,
    ...options.providers.map((p) => ({ owner: p.id, migrations: p.migrations ?? [] })),
  ];
  const sourceTypeOwners = [
    ...registry.all().map((definition) => ({
      definition,
      owner: options.providers.find((p) => p.sourceTypes?.includes(definition))?.id ?? "core",
    })),
  ];

  /** Applies core's and every provider's pending migrations (safe to call from several instances at once). */
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

  // ---- sessions on the wire ----------------------------------------------------------------

  function sessionCookie(token: string, expiresAt: Date): string {
    return serializeCookie(cookieName, token, {
      httpOnly: true,
      sameSite: "lax",
      secure: secure || options.production,
      path: "/",
      expires: expiresAt,
    });
  }
  function clearCookie(res: Response): void {
    res.append("Set-Cookie", serializeCookie(cookieName, "", { httpOnly: true, sameSite: "lax", secure: secure || options.production, path: "/", maxAge: 0 }));
  }
  function cookieToken(req: Request): string | undefined {
    const header = req.headers.cookie;
    if (!header) return undefined;
    try {
      return parseCookies(header)[cookieName] || undefined;
    } catch {
      return undefined;
    }
  }
  const wantsBearer = (req: Request) => String(req.headers[SESSION_TRANSPORT_HEADER] ?? "").toLowerCase() === "bearer";

  /** Ends the request's own session(s) and starts a new one, on `q`; the response is written by the caller after commit. */
  async function issueSession(q: Queryable, req: Request, user: UserReference): Promise<{ token: string; session: Session; previous: string[] }> {
    if (user.is_active === false) throw AuthError.of("ERR_USER_DEACTIVATED");
    // Rotate: whatever session the request came with ends here (session fixation, OWASP ASVS 3.2.1).
    const previous = [cookieToken(req), bearerToken(req)].filter((t): t is string => typeof t === "string");
    for (const token of previous) await sessions.revoke(token, q);
    const { token, session } = await sessions.create(user.id, { userAgent: req.headers["user-agent"], ip: req.ip }, q);
    return { token, session, previous };
  }

  function signInResponse(req: Request, res: Response, user: UserReference, token: string, session: Session): SignInResult {
    const body: SignInResult = { user, session: { id: session.id, expiresAt: session.expiresAt.toISOString() } };
    if (wantsBearer(req)) {
      body.session.token = token;
    } else {
      res.append("Set-Cookie", sessionCookie(token, session.expiresAt));
    }
    res.setHeader("Cache-Control", "no-store");
    return body;
  }

  async function signIn(req: Request, res: Response, user: UserReference): Promise<SignInResult> {
    const { token, session } = await issueSession(db, req, user);
    return signInResponse(req, res, user, token, session);
  }

  /**
   * A whole sign-in in one commit: the proof is checked first (no writes), then the client's limit,
   * the single-use secret, the identity upsert, the provider's own rows and the session are written
   * in one transaction. Every way it can fail after the check still uses the secret up, in a commit
   * of its own, so each nonce, code or state gets exactly one try.
   */
  async function signInOnce(req: Request, res: Response, attempt: SignInAttempt): Promise<SignInResult> {
    // The shared counter, read before the costly proof (an RPC, a signature): every instance's hits
    // count, not only this one's. Its hit is written later, in the sign-in's or the use-up's commit.
    if (attempt.limit) await attempt.limit.limiter.check(attempt.limit.key);
    let identity: VerifiedIdentity;
    try {
      identity = await attempt.verify();
    } catch (error) {
      await useUp(attempt);
      throw error;
    }
    let consumed = false;
    try {
      const { user, token, session, previous } = await db.transaction(async (tx) => {
        if (attempt.limit) await attempt.limit.limiter.consumeIn(tx, attempt.limit.key);
        await attempt.consume(tx);
        consumed = true;
        const user = await users.resolveIdentity(identity, { db: tx });
        await attempt.bind?.(tx, user);
        return { user, ...(await issueSession(tx, req, user)) };
      });
      // Revoked in the commit; dropped here again in case a request cached them in between.
      for (const old of previous) sessionCache.dropHash(hashToken(old));
      return signInResponse(req, res, user, token, session);
    } catch (error) {
      // Rolled back with the rest (or refused before it): used up alone, so the attempt still counts.
      if (consumed || (error instanceof AuthError && error.code === "ERR_RATE_LIMITED")) await useUp(attempt);
      throw error;
    }
  }

  /**
   * Marks the attempt's secret used, and counts the failed attempt on the shared limit, in one commit
   * of their own (a failure must count on every instance, not only in this one's memory). The
   * secret's own refusal (used, expired, unknown) wins over the caller's error.
   */
  async function useUp(attempt: SignInAttempt): Promise<void> {
    let refusal: AuthError | undefined;
    try {
      await db.transaction(async (tx) => {
        try {
          await attempt.consume(tx);
        } catch (error) {
          if (!(error instanceof AuthError)) throw error;
          refusal = error;
        }
        if (attempt.limit) {
          try {
            await attempt.limit.limiter.consumeIn(tx, attempt.limit.key);
          } catch (error) {
            if (!(error instanceof AuthError)) throw error; // past the limit: counted all the same
          }
        }
      });
    } catch (error) {
      logger.warn("sign-in: a failed attempt's secret could not be marked used", { error: (error as Error).message });
    }
    if (refusal) throw refusal;
  }

  // ---- request authentication -----------------------------------------------------------

  function providerContext(provider: ErebusProvider): ProviderContext {
    const providerLogger: Logger = {
      debug: (m, f) => logger.debug(m, { provider: provider.id, ...f }),
      info: (m, f) => logger.info(m, { provider: provider.id, ...f }),
      warn: (m, f) => logger.warn(m, { provider: provider.id, ...f }),
      error: (m, f) => logger.error(m, { provider: provider.id, ...f }),
    };
    return {
      providerId: provider.id,
      db,
      clock,
      random,
      logger: providerLogger,
      baseURL: options.baseURL,
      basePath: options.basePath,
      production: options.production,
      resolveIdentity: (identity: VerifiedIdentity, opts?: { db?: Queryable }) => users.resolveIdentity(identity, opts),
      registerSystemAgent: users.registerSystemAgent,
      getUser: users.getUser,
      findUser: users.findUser,
      signIn,
      signInOnce,
      rateLimit,
      parse: parseWith,
      async authenticate(req, res) {
        await authenticate(req, res);
        return req.auth ?? null;
      },
      async requireUser(req, res) {
        await authenticate(req, res);
        if (!req.auth) throw req.authError ?? AuthError.of("ERR_UNAUTHENTICATED");
        return req.auth;
      },
    };
  }
  const contexts = new Map(options.providers.map((p) => [p.id, providerContext(p)]));
  const authenticators = options.providers.filter((p) => p.authenticate);

  /**
   * Works out `req.auth`. Explicit credentials (a provider's header, a Bearer session token) that are
   * bad fail the request; a bad session cookie only leaves the request unauthenticated.
   */
  async function authenticate(req: Request, res: Response): Promise<void> {
    if (req.auth !== undefined) return;
    req.auth = null;
    if (!isReady) await ready;
    for (const provider of authenticators) {
      const result = await provider.authenticate!(req, contexts.get(provider.id)!);
      if (result) {
        if (result.user.is_active === false) throw AuthError.of("ERR_USER_DEACTIVATED");
        req.auth = { ...result };
        return;
      }
    }
    const bearer = bearerToken(req);
    // A bad explicit credential fails the request: falling back to the cookie (or to nobody) would
    // hide a client bug and let a request run as someone other than its sender meant.
    if (bearer === undefined) throw AuthError.of("ERR_SESSION_INVALID", { detail: "the Authorization: Bearer header is malformed" });
    if (typeof bearer === "string") {
      const check = await sessions.check(bearer);
      if (!check.ok) throw check.error;
      req.auth = { user: check.user, via: "session", scopes: ["*"], session: check.session };
      return;
    }
    const token = cookieToken(req);
    if (token === undefined) return;
    const check = await sessions.check(token);
    if (!check.ok) {
      req.authError = check.error;
      clearCookie(res);
      return;
    }
    // The cookie rides along on cross-site requests too; state changes must come from our origins.
    checkSameSite(req);
    if (check.refreshed) res.append("Set-Cookie", sessionCookie(token, check.session.expiresAt));
    req.auth = { user: check.user, via: "session", scopes: ["*"], session: check.session };
  }

  /** Refuses a cross-site state-changing request, saying (and logging at debug) what came and what was expected. */
  function checkSameSite(req: Request): void {
    const refusal = crossSiteRefusal(req, trustedOrigins);
    if (refusal === undefined) return;
    logger.debug("cross-site request refused", {
      method: req.method,
      path: req.originalUrl.split("?")[0],
      origin: req.headers.origin,
      secFetchSite: req.headers["sec-fetch-site"],
      expected: [...trustedOrigins],
    });
    throw AuthError.of("ERR_ORIGIN_FORBIDDEN", { detail: refusal });
  }

  /** Runs `fn` and renders an AuthError as problem+json right here, so guards work without an app-wide error handler. */
  function guard(name: string, fn: (req: Request, res: Response) => Promise<void>): RequestHandler {
    const handler = async (req: Request, res: Response, next: NextFunction) => {
      try {
        await fn(req, res);
      } catch (error) {
        return errorHandler(mapDatabaseError(error), req, res, next);
      }
      next();
    };
    Object.defineProperty(handler, "name", { value: name });
    return handler;
  }

  const middleware = guard("erebusAuthenticate", authenticate);

  function requireUser(): RequestHandler {
    return guard("erebusRequireUser", async (req, res) => {
      await authenticate(req, res);
      if (!req.auth) throw req.authError ?? AuthError.of("ERR_UNAUTHENTICATED");
    });
  }

  function requireUserType(...allowed: UserType[]): RequestHandler {
    for (const type of allowed) {
      if (!userTypes.includes(type)) throw new TypeError(`requireUserType: "${type}" is not one of ${userTypes.join(", ")}`);
    }
    if (allowed.length === 0) throw new TypeError("requireUserType: name at least one user type");
    return guard("erebusRequireUserType", async (req, res) => {
      await authenticate(req, res);
      if (!req.auth) throw req.authError ?? AuthError.of("ERR_UNAUTHENTICATED");
      if (!allowed.includes(req.auth.user.user_type)) {
        throw AuthError.of("ERR_USER_TYPE_FORBIDDEN", { detail: `needs user type ${allowed.join(" or ")}`, extensions: { allowed } });
      }
    });
  }

  function requireScope(...scopes: string[]): RequestHandler {
    if (scopes.length === 0) throw new TypeError("requireScope: name at least one scope");
    return guard("erebusRequireScope", async (req, res) => {
      await authenticate(req, res);
      if (!req.auth) throw req.authError ?? AuthError.of("ERR_UNAUTHENTICATED");
      const granted = req.auth.scopes;
      const missing = granted.includes("*") ? undefined : scopes.find((scope) => !granted.includes(scope));
      if (missing !== undefined) throw AuthError.of("ERR_SCOPE_MISSING", { detail: `needs scope "${missing}"`, extensions: { scope: missing } });
    });
  }

  // ---- the router ---------------------------------------------------------------------------

  const router: Router = express.Router();
  router.use(async function erebusReady(_req, _res, next) {
    try {
      await ready;
    } catch (error) {
      throw AuthError.of("ERR_DATABASE_UNAVAILABLE", { cause: error, retryAfter: 5 });
    }
    next();
  });
  router.use(function erebusOriginCheck(req, _res, next) {
    // Login CSRF too: no cross-site request may sign someone in or out.
    checkSameSite(req);
    next();
  });
  const formPaths = new Set(options.providers.flatMap((p) => p.formRoutes ?? []));
  router.use(function erebusJsonOnly(req, _res, next) {
    if (req.method !== "GET" && req.method !== "HEAD" && typeof req.is("*/*") === "string" && !req.is("application/json")) {
      const form = req.method === "POST" && formPaths.has(req.path) && req.is("application/x-www-form-urlencoded");
      if (!form) throw AuthError.of("ERR_UNSUPPORTED_MEDIA_TYPE");
    }
    next();
  });
  router.use(express.json({ limit: options.bodyLimit, strict: true }));
  router.use(express.urlencoded({ limit: options.bodyLimit, extended: false, parameterLimit: 20 }));

  router.get("/session", describeRoute(coreRouteDocs.session), requireUser(), function erebusSession(req, res) {
    res.setHeader("Cache-Control", "no-store");
    res.json({ user: req.auth!.user, session: req.auth!.session ?? null, via: req.auth!.via, scopes: req.auth!.scopes });
  });

  router.post("/sign-out", describeRoute(coreRouteDocs.signOut), async function erebusSignOut(req, res) {
    const bearer = bearerToken(req);
    const cookie = cookieToken(req);
    if (typeof bearer === "string") await sessions.revoke(bearer);
    if (cookie !== undefined) {
      await sessions.revoke(cookie);
      clearCookie(res);
    }
    res.status(204).end();
  });

  let openApiDocument: string | undefined;
  router.get("/openapi.json", describeRoute(coreRouteDocs.openapi), function erebusOpenApi(_req, res) {
    res.type("application/json").send(openApiDocument);
  });
  const collected = collectRoutes(router, "core");
  for (const provider of options.providers) {
    if (!provider.routes) continue;
    const sub = express.Router();
    provider.routes(sub, contexts.get(provider.id)!);
    router.use(sub);
    collected.push(...collectRoutes(sub, provider.id));
  }
  // Built now, not on the first request: a route documenting a code in no errors table fails createAuth.
  openApiDocument = JSON.stringify(
    buildOpenApiDocument({
      title: "Erebus",
      version: "0.1.0",
      baseURL: options.baseURL,
      basePath: options.basePath,
      cookieName,
      routes: collected,
      errors: Object.fromEntries(options.providers.map((provider) => [provider.id, provider.errors ?? {}])),
    }),
  );

  router.use(function erebusNotFound() {
    throw AuthError.of("ERR_NOT_FOUND");
  });
  router.use(((error, req, res, next) => errorHandler(mapDatabaseError(error), req, res, next)) as express.ErrorRequestHandler);

  return {
    /** Mount under `basePath`: `app.use("/auth", auth.router)`. */
    router,
    /** Sets `req.auth` on every request it sees. Mount it app-wide before your routes. */
    middleware,
    /** Renders any error as problem+json. Mount it last in your app if you throw AuthErrors from your own routes. */
    errorHandler,
    requireUser,
    requireUserType,
    requireScope,
    /** Settles when start-up work (migrations, with `migrate: true`) is done; rejects if it failed. */
    ready,
    /** The database Erebus uses. */
    db,
    /** Every registered source type (core's five and the providers'). */
    sourceTypes: registry.all() as readonly SourceTypeDefinition[],
    api: {
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
      prune: async (olderThanSeconds = 86_400): Promise<{ sessions: number; rateLimits: number }> => ({
        sessions: await sessions.prune(olderThanSeconds),
        rateLimits: await pruneRateLimits(db),
      }),
      rateLimit,
    },
    /** The context a provider gets (for its CLI commands and tests). */
    providerContext(id: string): ProviderContext {
      const ctx = contexts.get(id);
      if (!ctx) throw new TypeError(`no provider "${id}" in this createAuth()`);
      return ctx;
    },
    /** Closes the database if Erebus opened it (given as a URL). */
    close: async () => {
      await sessionCache.close();
      await db.close();
    },
  };
}

export type ErebusAuth = ReturnType<typeof createAuth>;

function parseWith<S extends z.ZodType>(schema: S, value: unknown, part: "body" | "query" = "body"): z.infer<S> {
  const invalid = (path: readonly PropertyKey[] | undefined, message: string) => {
    const field = path?.length ? path.map(String).join(".") : part;
    return AuthError.of(part === "body" ? "ERR_BODY_INVALID" : "ERR_QUERY_INVALID", { detail: `${field}: ${message}`, extensions: { field } });
  };
  // Whatever a route does with the parsed value, it may reach PostgreSQL, which refuses U+0000 and
  // unpaired surrogates (a 500 otherwise, or a silent U+FFFD): refused here, before any schema runs.
  const unsafe = findPgUnsafeString(value);
  if (unsafe) throw invalid(unsafe, PG_TEXT_MESSAGE);
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  throw invalid(issue?.path, issue?.message ?? "invalid");
}
