/**
 * Every error code core can answer with, its HTTP status and a short title.
 * Providers define their own codes the same way (`ERR_<AREA>_<REASON>`).
 */
export const coreErrors = {
  ERR_BAD_REQUEST: { status: 400, title: "Bad request" },
  ERR_BODY_MALFORMED: { status: 400, title: "The request body is not valid JSON" },
  ERR_BODY_INVALID: { status: 400, title: "The request body does not match what this route expects" },
  ERR_QUERY_INVALID: { status: 400, title: "The query string does not match what this route expects" },
  ERR_HEADER_INVALID: { status: 400, title: "A request header is malformed" },
  ERR_SOURCE_TYPE_INVALID: { status: 400, title: "The source_type is not a valid registered source type" },
  ERR_IDENTITY_INVALID: { status: 400, title: "The identity is not valid for its network" },
  ERR_UNAUTHENTICATED: { status: 401, title: "Sign-in required" },
  ERR_SESSION_INVALID: { status: 401, title: "The session is unknown, expired or revoked" },
  ERR_CREDENTIAL_INVALID: { status: 401, title: "The credential is not valid" },
  ERR_USER_DEACTIVATED: { status: 403, title: "This user is deactivated" },
  ERR_USER_TYPE_FORBIDDEN: { status: 403, title: "This user type may not use this route" },
  ERR_SCOPE_MISSING: { status: 403, title: "The credential lacks a required scope" },
  ERR_ORIGIN_FORBIDDEN: { status: 403, title: "Cross-site request refused" },
  ERR_REAUTH_REQUIRED: { status: 403, title: "Sign in again: this needs a recently proven session" },
  ERR_LINK_SESSION_MISMATCH: { status: 403, title: "This link was started by another session or browser" },
  ERR_REAUTH_IDENTITY_FOREIGN: { status: 403, title: "Re-authentication must prove one of the signed-in person's own identities" },
  ERR_IDENTITY_NOT_FOUND: { status: 404, title: "No such identity of this person" },
  ERR_IDENTITY_LINKED_ELSEWHERE: { status: 409, title: "This identity belongs to another person; ask to merge to take it in" },
  ERR_IDENTITY_LAST: { status: 409, title: "A person's last identity cannot be unlinked" },
  ERR_IDENTITY_IN_USE: { status: 409, title: "The identity this session signed in with cannot be unlinked from it" },
  ERR_IDENTITY_LIMIT: { status: 409, title: "This person has as many identities as allowed" },
  ERR_LINK_CONFLICT: { status: 409, title: "Another change to this person happened at the same time; try again" },
  ERR_NOT_FOUND: { status: 404, title: "No such route" },
  ERR_USER_NOT_FOUND: { status: 404, title: "No such user" },
  ERR_BODY_TOO_LARGE: { status: 413, title: "The request body is too large" },
  ERR_UNSUPPORTED_MEDIA_TYPE: { status: 415, title: "The request body must be application/json" },
  ERR_RATE_LIMITED: { status: 429, title: "Too many requests" },
  ERR_INTERNAL: { status: 500, title: "Internal error" },
  ERR_DATABASE_UNAVAILABLE: { status: 503, title: "The database is unavailable" },
} as const satisfies Record<string, { status: number; title: string }>;

export type CoreErrorCode = keyof typeof coreErrors;

/**
 * An error caused by a request (never by the programmer): it carries a stable `code` and an HTTP
 * `status`, and is rendered as RFC 9457 `application/problem+json` by core's error handler.
 *
 * @example
 * throw new AuthError("ERR_SIWE_NONCE_UNKNOWN", { status: 401, title: "The nonce was not issued by this server" });
 * throw AuthError.of("ERR_SCOPE_MISSING", { detail: "needs scope trade", extensions: { scope: "trade" } });
 */
export class AuthError extends Error {
  override readonly name = "AuthError";
  readonly code: string;
  readonly status: number;
  readonly title: string;
  readonly detail: string | undefined;
  /** Extra members for the problem document (e.g. `{ scope: "trade" }`); never put secrets here. */
  readonly extensions: Record<string, unknown>;
  /** Seconds, sent as `Retry-After` (429, 503). */
  readonly retryAfter: number | undefined;

  constructor(
    code: string,
    init: {
      status: number;
      title: string;
      detail?: string;
      cause?: unknown;
      extensions?: Record<string, unknown>;
      retryAfter?: number;
    },
  ) {
    super(init.detail ?? init.title, { cause: init.cause });
    this.code = code;
    this.status = init.status;
    this.title = init.title;
    this.detail = init.detail;
    this.extensions = init.extensions ?? {};
    this.retryAfter = init.retryAfter;
  }

  /** Builds a core error from its code; status and title come from {@link coreErrors}. */
  static of(
    code: CoreErrorCode,
    init: { detail?: string; cause?: unknown; extensions?: Record<string, unknown>; retryAfter?: number } = {},
  ): AuthError {
    return new AuthError(code, { ...coreErrors[code], ...init });
  }
}

/**
 * Declares a provider's error codes once: `codes` is the table to give as the provider's `errors`,
 * and `create(code, init?)` builds the `AuthError` to throw (status and title from the table).
 *
 * @example
 * export const badgeErrors = defineErrors({ ERR_BADGE_CODE_INVALID: { status: 401, title: "The badge code is not valid" } });
 * throw badgeErrors.create("ERR_BADGE_CODE_INVALID");
 */
export function defineErrors<const T extends Record<string, { status: number; title: string }>>(codes: T) {
  return {
    codes,
    create(code: keyof T & string, init: { detail?: string; cause?: unknown; extensions?: Record<string, unknown>; retryAfter?: number } = {}) {
      return new AuthError(code, { ...codes[code]!, ...init });
    },
  };
}

/** True for errors the PostgreSQL client raises when the server cannot be reached. */
export function isConnectionError(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code !== "string") return false;
  return (
    code.startsWith("08") || // connection_exception
    code === "57P01" || // admin_shutdown
    code === "57P03" || // cannot_connect_now
    code === "ECONNREFUSED" ||
    code === "ECONNRESET" ||
    code === "ETIMEDOUT" ||
    code === "EPIPE"
  );
}
