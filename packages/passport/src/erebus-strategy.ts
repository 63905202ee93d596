import { AuthError, type RequestAuth } from "@erebus/core/provider";
import type { Request, Response } from "express";
import { Strategy } from "passport-strategy";

/** What `ErebusStrategy` needs of `createAuth()`'s result. */
export interface ErebusStrategyAuth {
  authenticate(req: Request, res?: Response): Promise<RequestAuth | null>;
}

/** The `info` a successful `ErebusStrategy` hands to Passport (custom callbacks get it). */
export type ErebusStrategyInfo = Omit<RequestAuth, "user">;

/** An RFC 6750 challenge; the Erebus code rides in `error_description`, where Passport's custom callbacks see it. */
const challenge = (realm: string, error?: AuthError) =>
  error ? `Bearer realm="${realm}", error="invalid_token", error_description="${error.code}"` : `Bearer realm="${realm}"`;

/**
 * Erebus as a Passport strategy, for apps that already call `passport.authenticate(...)`: a request
 * with an Erebus session (cookie or `Authorization: Bearer`) or a provider's header credential (an
 * API key) puts its `user_references` row on `req.user` (and `req.auth` as usual).
 *
 * - no credential → `fail` with a `Bearer` challenge, 401: a chain such as `["erebus", "jwt"]` goes on
 *   to the next strategy;
 * - a revoked, expired or unknown session, a deactivated user, a bad API key → `fail` with its
 *   status (401, 403) and its code in the challenge (`error_description="ERR_USER_DEACTIVATED"`),
 *   also on `req.authError`;
 * - the database unreachable (or any 5xx) → `error`: Passport hands it to the app's error handler
 *   (`auth.errorHandler` answers 503 problem+json).
 *
 * @example
 * passport.use("erebus", new ErebusStrategy(auth));
 * app.get("/api/me", passport.authenticate("erebus", { session: false }), (req, res) => res.json(req.user));
 */
export class ErebusStrategy extends Strategy {
  name = "erebus";
  // A plain property, not a #private field: Passport runs `Object.create(strategy)`, and private
  // fields are not found through the prototype.
  private readonly erebus: ErebusStrategyAuth;
  private readonly realm: string;

  constructor(auth: ErebusStrategyAuth, options: { realm?: string } = {}) {
    super();
    if (typeof auth?.authenticate !== "function") throw new TypeError("new ErebusStrategy(auth): pass the result of createAuth()");
    const realm = options.realm ?? "erebus";
    if (!/^[\x20\x21\x23-\x5b\x5d-\x7e]{1,64}$/.test(realm)) throw new TypeError("new ErebusStrategy(auth, { realm }): realm must be printable ASCII without quotes or backslashes");
    this.erebus = auth;
    this.realm = realm;
  }

  override authenticate(req: Request): void {
    // Without an Express response (koa-passport, @fastify/passport) core's cookie writes are dropped; the answer is the same.
    this.erebus.authenticate(req, typeof req.res?.append === "function" ? req.res : undefined).then(
      (auth) => {
        if (auth) {
          const { user, ...info } = auth;
          return this.success(user, info satisfies ErebusStrategyInfo);
        }
        // A session cookie that was not accepted (expired, revoked, deactivated): core noted why.
        if (req.authError) return this.fail(challenge(this.realm, req.authError), req.authError.status);
        this.fail(challenge(this.realm), 401);
      },
      (error: unknown) => {
        if (error instanceof AuthError && error.status < 500) {
          req.authError = error;
          return this.fail(challenge(this.realm, error), error.status);
        }
        this.error(error instanceof Error ? error : new Error(String(error)));
      },
    );
  }
}
