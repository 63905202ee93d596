import type { ErrorRequestHandler, NextFunction, Request, RequestHandler, Response } from "express";
import { AuthError } from "./errors.js";
import { bearerToken, crossSiteRefusal } from "./http.js";
import { userTypes, type UserType } from "./identities.js";
import type { Logger } from "./logger.js";
import type { ProviderAuthResult, RequestAuth } from "./provider.js";
import type { SessionCheck, SessionStore } from "./sessions.js";
import type { SessionTransport } from "./session-transport.js";
import { mapDatabaseError } from "./users.js";

export interface AuthenticationDeps {
  sessions: SessionStore;
  transport: SessionTransport;
  /** Header authenticators of the providers that have one, in provider order. */
  authenticators: readonly ((req: Request) => ProviderAuthResult | null | Promise<ProviderAuthResult | null>)[];
  trustedOrigins: ReadonlySet<string>;
  logger: Logger;
  errorHandler: ErrorRequestHandler;
  /** Resolves once start-up work is done (awaited only until it has). */
  whenReady(): Promise<void> | undefined;
}

/** Works out who made a request (`req.auth`), and the guards that require someone. */
export function createAuthentication(deps: AuthenticationDeps) {
  const { sessions, transport, authenticators, trustedOrigins, logger, errorHandler } = deps;

  /**
   * Works out `req.auth`. Explicit credentials (a provider's header, a Bearer session token) that are
   * bad fail the request; a bad session cookie only leaves the request unauthenticated.
   *
   * Synchronous when nothing needs the database (a cached session or API key: most requests), so
   * such a request takes no trip through the microtask queue; otherwise a promise. Either way, a bad
   * credential is thrown (or rejected) as its AuthError.
   */
  function authenticate(req: Request, res: Response): void | Promise<void> {
    if (req.auth !== undefined) return;
    req.auth = null;
    const pending = deps.whenReady();
    if (pending) return pending.then(() => fromProviders(req, res, 0));
    return fromProviders(req, res, 0);
  }

  /** The providers' header authenticators from `index` on, then the session. */
  function fromProviders(req: Request, res: Response, index: number): void | Promise<void> {
    for (let i = index; i < authenticators.length; i++) {
      const result = authenticators[i]!(req);
      if (isPromise(result)) return result.then((found) => (found ? accept(req, found) : fromProviders(req, res, i + 1)));
      if (result) return accept(req, result);
    }
    return fromSession(req, res);
  }

  function accept(req: Request, result: ProviderAuthResult): void {
    if (result.user.is_active === false) throw AuthError.of("ERR_USER_DEACTIVATED");
    req.auth = { ...result, personId: result.personId ?? result.user.person_id ?? result.user.id };
  }

  function fromSession(req: Request, res: Response): void | Promise<void> {
    const bearer = bearerToken(req);
    // A bad explicit credential fails the request: falling back to the cookie (or to nobody) would
    // hide a client bug and let a request run as someone other than its sender meant.
    if (bearer === undefined) throw AuthError.of("ERR_SESSION_INVALID", { detail: "the Authorization: Bearer header is malformed" });
    if (typeof bearer === "string") return andThen(sessions.checkNow(bearer), (check) => acceptBearer(req, check));
    const token = transport.cookieToken(req);
    if (token === undefined) return;
    return andThen(sessions.checkNow(token), (check) => acceptCookie(req, res, token, check));
  }

  function acceptBearer(req: Request, check: SessionCheck): void {
    if (!check.ok) throw check.error;
    req.auth = sessionAuth(check);
  }

  function acceptCookie(req: Request, res: Response, token: string, check: SessionCheck): void {
    if (!check.ok) {
      req.authError = check.error;
      transport.clearCookie(res);
      return;
    }
    // The cookie rides along on cross-site requests too; state changes must come from our origins.
    checkSameSite(req);
    if (check.refreshed) res.append("Set-Cookie", transport.sessionCookie(token, check.session.expiresAt));
    req.auth = sessionAuth(check);
  }

  function sessionAuth(check: Extract<SessionCheck, { ok: true }>): RequestAuth {
    return { user: check.user, personId: check.user.person_id ?? check.user.id, via: "session", scopes: ["*"], session: check.session };
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

  /**
   * Runs `fn` and renders an AuthError as problem+json right here, so guards work without an
   * app-wide error handler. `fn` may answer synchronously (then `next` runs with no await).
   */
  function guard(name: string, fn: (req: Request, res: Response) => unknown): RequestHandler {
    const handler = (req: Request, res: Response, next: NextFunction) => {
      let pending: unknown;
      try {
        pending = fn(req, res);
      } catch (error) {
        return errorHandler(mapDatabaseError(error), req, res, next);
      }
      if (!isPromise(pending)) return next();
      // Returned: Express 5 hands a throw from `next` on (as it did when this was an async function).
      return pending.then(
        () => next(),
        (error: unknown) => errorHandler(mapDatabaseError(error), req, res, next),
      );
    };
    Object.defineProperty(handler, "name", { value: name });
    return handler;
  }

  /** `req.auth`, or the reason there is nobody (401, or the session's own error). Synchronous when `authenticate` was. */
  function requireAuth(req: Request, res: Response): RequestAuth | Promise<RequestAuth> {
    return andThen(authenticate(req, res), () => signedIn(req));
  }

  function signedIn(req: Request): RequestAuth {
    if (!req.auth) throw req.authError ?? AuthError.of("ERR_UNAUTHENTICATED");
    return req.auth;
  }

  const middleware = guard("erebusAuthenticate", authenticate);

  function requireUser(): RequestHandler {
    return guard("erebusRequireUser", requireAuth);
  }

  function requireUserType(...allowed: UserType[]): RequestHandler {
    for (const type of allowed) {
      if (!userTypes.includes(type)) throw new TypeError(`requireUserType: "${type}" is not one of ${userTypes.join(", ")}`);
    }
    if (allowed.length === 0) throw new TypeError("requireUserType: name at least one user type");
    const check = (auth: RequestAuth): void => {
      if (!allowed.includes(auth.user.user_type)) {
        throw AuthError.of("ERR_USER_TYPE_FORBIDDEN", { detail: `needs user type ${allowed.join(" or ")}`, extensions: { allowed } });
      }
    };
    return guard("erebusRequireUserType", (req, res) => andThen(requireAuth(req, res), check));
  }

  function requireScope(...scopes: string[]): RequestHandler {
    if (scopes.length === 0) throw new TypeError("requireScope: name at least one scope");
    const check = ({ scopes: granted }: RequestAuth): void => {
      const missing = granted.includes("*") ? undefined : scopes.find((scope) => !granted.includes(scope));
      if (missing !== undefined) throw AuthError.of("ERR_SCOPE_MISSING", { detail: `needs scope "${missing}"`, extensions: { scope: missing } });
    };
    return guard("erebusRequireScope", (req, res) => andThen(requireAuth(req, res), check));
  }

  return { authenticate, requireAuth, checkSameSite, guard, middleware, requireUser, requireUserType, requireScope };
}

export type Authentication = ReturnType<typeof createAuthentication>;

/** A thenable, as `await` would treat it (a provider may hand back any promise-like). */
function isPromise<T>(value: T | Promise<T>): value is Promise<T> {
  return typeof (value as { then?: unknown } | null | undefined)?.then === "function";
}

/** `fn(value)`, at once when `value` is there already, else when it settles: no await on the synchronous path. */
function andThen<T, R>(value: T | Promise<T>, fn: (value: T) => R | Promise<R>): R | Promise<R> {
  return isPromise(value) ? value.then(fn) : fn(value);
}
