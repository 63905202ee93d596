import type { ErrorRequestHandler, Request, Response } from "express";
import { AuthError, coreErrors } from "./errors.js";
import type { Logger } from "./logger.js";

/** Writes an RFC 9457 problem document. The `code` member is the stable part; match on it, not on text. */
export function sendProblem(res: Response, error: AuthError): void {
  if (res.headersSent) return;
  if (error.retryAfter !== undefined) res.setHeader("Retry-After", String(error.retryAfter));
  res
    .status(error.status)
    .type("application/problem+json")
    .send(
      JSON.stringify({
        ...error.extensions,
        type: `urn:erebus:error:${error.code}`,
        title: error.title,
        status: error.status,
        ...(error.detail !== undefined && error.status < 500 ? { detail: error.detail } : {}),
        code: error.code,
      }),
    );
}

/** Maps errors thrown by Express's body parser (raw-body / body-parser) onto core's codes. */
function fromBodyParser(error: unknown): AuthError | undefined {
  const type = (error as { type?: unknown } | null)?.type;
  if (typeof type !== "string") return undefined;
  switch (type) {
    case "entity.parse.failed":
      return AuthError.of("ERR_BODY_MALFORMED", { cause: error });
    case "entity.too.large":
      return AuthError.of("ERR_BODY_TOO_LARGE", { cause: error });
    case "encoding.unsupported":
    case "charset.unsupported":
      return AuthError.of("ERR_UNSUPPORTED_MEDIA_TYPE", { detail: "use UTF-8 JSON", cause: error });
    case "request.size.invalid":
    case "request.aborted":
    case "stream.encoding.set":
    case "stream.not.readable":
      return AuthError.of("ERR_BODY_MALFORMED", { cause: error });
    default:
      return undefined;
  }
}

/** Turns anything thrown into an AuthError; what isn't one already becomes a 500 that says nothing. */
export function toAuthError(error: unknown): AuthError {
  if (error instanceof AuthError) return error;
  const parsed = fromBodyParser(error);
  if (parsed) return parsed;
  const status = (error as { status?: unknown; statusCode?: unknown } | null)?.status;
  if (typeof status === "number" && status >= 400 && status < 500) {
    return new AuthError("ERR_BAD_REQUEST", { status, title: coreErrors.ERR_BAD_REQUEST.title, cause: error });
  }
  return AuthError.of("ERR_INTERNAL", { cause: error });
}

/**
 * Express error handler rendering every error as problem+json. 5xx details are logged, never sent.
 *
 * @example
 * app.use(auth.errorHandler);
 */
export function createErrorHandler(logger: Logger): ErrorRequestHandler {
  return function erebusErrorHandler(error, req, res, next) {
    if (res.headersSent) return next(error);
    const authError = toAuthError(error);
    if (authError.status >= 500) {
      logger.error("request failed", { method: req.method, path: req.path, code: authError.code, error: describe(authError.cause ?? error) });
    }
    sendProblem(res, authError);
  };
}

function describe(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}

const SAFE_METHODS = new Set(["GET", "HEAD", "OPTIONS"]);

/**
 * Cross-site request check for state-changing requests (OWASP CSRF cheat sheet: verifying origin with
 * standard headers). A browser always sends `Origin` on a cross-origin POST, and `Sec-Fetch-Site`
 * in every current engine; a request whose `Origin` is not trusted, or that the browser itself
 * labels `cross-site`, is refused. Clients that send neither (curl, servers) are not browsers and
 * cannot be made to carry a victim's cookie.
 *
 * Returns why the request is refused (one sentence naming what came and what was expected, for the
 * problem's `detail`: origins are not secrets, and without them a misconfigured `baseURL` is a
 * riddle), or `undefined` when it may go on.
 */
export function crossSiteRefusal(req: Request, trustedOrigins: ReadonlySet<string>): string | undefined {
  if (SAFE_METHODS.has(req.method)) return undefined;
  const origin = req.headers.origin;
  // Structured-header tokens are case-insensitive to us: `Cross-Site` from a client is `cross-site`.
  const site = req.headers["sec-fetch-site"]?.trim().toLowerCase();
  const expected = [...trustedOrigins].join(", ");
  // A page served with `Referrer-Policy: no-referrer` (the email confirm page) makes the browser send
  // `Origin: null` even on a same-origin form POST; Sec-Fetch-Site, which pages cannot set, still
  // says where it came from. A sandboxed cross-site frame also sends null, with `cross-site`.
  if (origin === "null") {
    return site === "same-origin" ? undefined : `Origin: null is accepted only with Sec-Fetch-Site: same-origin; came Sec-Fetch-Site: ${site ?? "(none)"}`;
  }
  if (origin !== undefined) {
    return trustedOrigins.has(origin) ? undefined : `Origin "${origin}" is not trusted; expected ${expected} (baseURL or trustedOrigins)`;
  }
  // Without Origin, only what a browser says of a same-origin or user-initiated request passes; any
  // other value (cross-site, same-site, two values joined, garbage) is refused.
  if (site === undefined || site === "same-origin" || site === "none") return undefined;
  return `the browser labelled the request Sec-Fetch-Site: ${site} and sent no Origin; expected a request from ${expected}`;
}

/** True when {@link crossSiteRefusal} refuses the request. */
export const isCrossSiteRequest = (req: Request, trustedOrigins: ReadonlySet<string>): boolean => crossSiteRefusal(req, trustedOrigins) !== undefined;

/**
 * The token of `Authorization: Bearer <token>`: `null` when there is no Authorization header or it
 * uses another scheme (not ours to judge), `undefined` when it says Bearer but the token is malformed.
 */
export function bearerToken(req: Request): string | null | undefined {
  const header = req.headers.authorization;
  if (header === undefined || !/^bearer(?:\s|$)/i.test(header)) return null;
  const match = /^Bearer +([A-Za-z0-9._~+/=-]{1,1024}) *$/i.exec(header);
  return match ? match[1] : undefined;
}
