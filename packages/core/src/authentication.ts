import type { ErrorRequestHandler, NextFunction, Request, RequestHandler, Response } from "express";
import { AuthError } from "./errors.js";
import { bearerToken, crossSiteRefusal } from "./http.js";
import { userTypes, type UserType } from "./identities.js";
import type { Logger } from "./logger.js";
import type { ProviderAuthResult } from "./provider.js";
import type { SessionStore } from "./sessions.js";
import type { SessionTransport } from "./session-transport.js";
import { mapDatabaseError } from "./users.js";

export interface AuthenticationDeps {
  sessions: SessionStore;
  transport: SessionTransport;
  /** Header authenticators of the providers that have one, in provider order. */
  authenticators: readonly ((req: Request) => Promise<ProviderAuthResult | null>)[];
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
   */
  async function authenticate(req: Request, res: Response): Promise<void> {
    if (req.auth !== undefined) return;
    req.auth = null;
    const pending = deps.whenReady();
    if (pending) await pending;
    for (const authenticator of authenticators) {
      const result = await authenticator(req);
      if (result) {
        if (result.user.is_active === false) throw AuthError.of("ERR_USER_DEACTIVATED");
        req.auth = { ...result, personId: result.personId ?? result.user.person_id ?? result.user.id };
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
      req.auth = { user: check.user, personId: check.user.person_id ?? check.user.id, via: "session", scopes: ["*"], session: check.session };
      return;
    }
    const token = transport.cookieToken(req);
    if (token === undefined) return;
    const check = await sessions.check(token);
    if (!check.ok) {
      req.authError = check.error;
      transport.clearCookie(res);
      return;
    }
    // The cookie rides along on cross-site requests too; state changes must come from our origins.
    checkSameSite(req);
    if (check.refreshed) res.append("Set-Cookie", transport.sessionCookie(token, check.session.expiresAt));
    req.auth = { user: check.user, personId: check.user.person_id ?? check.user.id, via: "session", scopes: ["*"], session: check.session };
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

  async function requireAuth(req: Request, res: Response) {
    await authenticate(req, res);
    if (!req.auth) throw req.authError ?? AuthError.of("ERR_UNAUTHENTICATED");
    return req.auth;
  }

  const middleware = guard("erebusAuthenticate", authenticate);

  function requireUser(): RequestHandler {
    return guard("erebusRequireUser", async (req, res) => {
      await requireAuth(req, res);
    });
  }

  function requireUserType(...allowed: UserType[]): RequestHandler {
    for (const type of allowed) {
      if (!userTypes.includes(type)) throw new TypeError(`requireUserType: "${type}" is not one of ${userTypes.join(", ")}`);
    }
    if (allowed.length === 0) throw new TypeError("requireUserType: name at least one user type");
    return guard("erebusRequireUserType", async (req, res) => {
      const auth = await requireAuth(req, res);
      if (!allowed.includes(auth.user.user_type)) {
        throw AuthError.of("ERR_USER_TYPE_FORBIDDEN", { detail: `needs user type ${allowed.join(" or ")}`, extensions: { allowed } });
      }
    });
  }

  function requireScope(...scopes: string[]): RequestHandler {
    if (scopes.length === 0) throw new TypeError("requireScope: name at least one scope");
    return guard("erebusRequireScope", async (req, res) => {
      const granted = (await requireAuth(req, res)).scopes;
      const missing = granted.includes("*") ? undefined : scopes.find((scope) => !granted.includes(scope));
      if (missing !== undefined) throw AuthError.of("ERR_SCOPE_MISSING", { detail: `needs scope "${missing}"`, extensions: { scope: missing } });
    });
  }

  return { authenticate, requireAuth, checkSameSite, guard, middleware, requireUser, requireUserType, requireScope };
}

export type Authentication = ReturnType<typeof createAuthentication>;
