import type { Request, Response } from "express";
import type { Database } from "./db/types.js";
import { AuthError } from "./errors.js";
import type { VerifiedIdentity } from "./identities.js";
import type { Logger } from "./logger.js";
import type { SignInAttempt, SignInResult } from "./provider.js";
import type { SessionCache } from "./session-cache.js";
import { hashToken } from "./sessions.js";
import type { SessionTransport } from "./session-transport.js";
import type { UpsertIdentity, UserReference } from "./users.js";
import type { People } from "./people.js";


export interface SignInDeps {
  db: Database;
  transport: SessionTransport;
  sessionCache: SessionCache;
  logger: Logger;
  people: People;
}

/** Starting sessions: `signIn` for a user already resolved, `signInOnce` for a whole attempt in one commit. */
export function createSignIn({ db, transport, sessionCache, logger, people }: SignInDeps) {
  async function signIn(req: Request, res: Response, user: UserReference): Promise<SignInResult> {
    const { token, session } = await transport.issueSession(db, req, user);
    return transport.signInResponse(req, res, user, token, session);
  }

  /**
   * A whole sign-in in one commit: the client's limit hit is counted first, the proof is checked
   * (no writes), then the single-use secret, the identity upsert (or the link), the provider's own
   * rows and the session are written in one transaction. A secret's own refusal commits with the try
   * it counted; every other way it can fail after the check still uses the secret up, in a commit of
   * its own, so each nonce, code or state gets exactly one try.
   */
  async function signInOnce(req: Request, res: Response, attempt: SignInAttempt, resolve: UpsertIdentity): Promise<SignInResult> {
    // The shared counter, hit before the costly proof (an RPC, a signature), so every attempt counts
    // on every instance whatever its outcome. A statement of its own on an UNLOGGED table: it waits
    // for no fsync. Inside the sign-in's transaction, its row would stay locked through that commit's
    // fsync, and sign-ins from one address (an office behind one NAT) would run one at a time.
    if (attempt.limit) await attempt.limit.limiter.consume(attempt.limit.key);
    let identity: VerifiedIdentity;
    try {
      identity = await attempt.verify();
    } catch (error) {
      await useUp(attempt);
      throw error;
    }
    // The secret's own refusal (a wrong code, used, expired), committed with the try it counted.
    let refused: AuthError | undefined;
    try {
      const done = await db.transaction(async (tx) => {
        let verification: Awaited<ReturnType<SignInAttempt["consume"]>>;
        try {
          verification = await attempt.consume(tx);
        } catch (error) {
          if (!(error instanceof AuthError)) throw error;
          // Committed here, while this commit still holds the secret's row: rolled back and
          // counted again in a later commit, parallel tries of one short code would each be
          // checked before any of them counted (20 guesses against a code allowing 3).
          refused = error;
          return undefined;
        }
        // A refusal handed back instead of thrown must never become a sign-in.
        if (verification && verification.ok !== true) {
          throw new TypeError("signInOnce: consume() returned a failed verification; throw your provider's AuthError for it instead");
        }
        const link = (verification ? verification.link : null) ?? attempt.link;
        if (link) {
          // A link intent: the proof attaches to the person whose session asked; no new session.
          const linked = await people.attach(tx, req, identity, link, resolve);
          await attempt.bind?.(tx, linked.linked!);
          return { linked };
        }
        const { user } = await resolve(identity, { db: tx });
        await attempt.bind?.(tx, user);
        const issued = await transport.issueSession(tx, req, user);
        return { user, ...issued };
      });
      if (done === undefined) throw refused!;
      if ("linked" in done && done.linked) {
        res.setHeader("Cache-Control", "no-store");
        sessionCache.dropUser(done.linked.user.id);
        return done.linked;
      }
      // Revoked in the commit; dropped here again in case a request cached them in between.
      const { user, token, session, previous } = done as Exclude<typeof done, { linked: SignInResult }>;
      for (const old of previous) sessionCache.dropHash(hashToken(old));
      return transport.signInResponse(req, res, user, token, session);
    } catch (error) {
      // Rolled back with the rest (or refused before it): used up alone, so the attempt still counts
      // (a wrong short code's try, too).
      if (error !== refused && (error instanceof AuthError || !isProgrammingError(error))) await useUp(attempt);
      throw error;
    }
  }

  /**
   * Marks the attempt's secret used, in a commit of its own (the attempt was counted on the shared
   * limit before its proof). The secret's own refusal (used, expired, unknown) wins over the
   * caller's error.
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
      });
    } catch (error) {
      logger.warn("sign-in: a failed attempt's secret could not be marked used", { error: (error as Error).message });
    }
    if (refusal) throw refusal;
  }

  return { signIn, signInOnce };
}

/** A bug in the caller (a TypeError from a provider that emits a type it did not declare): not the client's failure. */
const isProgrammingError = (error: unknown) => error instanceof TypeError || error instanceof RangeError || error instanceof ReferenceError;
