import type { LinkIntent, ProviderContext, Queryable, VerificationResult } from "@erebus/core/provider";
import type { Request, Response } from "express";
import { fail, type PasskeyErrorCode } from "./errors.js";

/**
 * WebAuthn challenges: single use, server-stored (only their hash), expiring, and bound to the
 * browser that asked (core's HttpOnly binding cookie), on core's `ctx.verifications`. A challenge is
 * a value this provider makes (32 CSPRNG bytes, as clientData carries it), stored with `{ value }`.
 */
export type Purpose = "register" | "authenticate";

const refusal: Record<Exclude<VerificationResult, { ok: true }>["reason"], PasskeyErrorCode> = {
  unknown: "ERR_PASSKEY_CHALLENGE_UNKNOWN",
  used: "ERR_PASSKEY_CHALLENGE_USED",
  superseded: "ERR_PASSKEY_CHALLENGE_USED",
  exhausted: "ERR_PASSKEY_CHALLENGE_USED",
  expired: "ERR_PASSKEY_CHALLENGE_EXPIRED",
  browser: "ERR_PASSKEY_CHALLENGE_BROWSER",
};

export function createChallenges(ctx: ProviderContext, ttlSeconds: number) {
  return {
    /** A fresh challenge (WebAuthn §13.4.3: at least 16 random bytes; 32 here), stored for this browser. */
    async issue(purpose: Purpose, browser: { req: Request; res: Response }, data: Record<string, unknown>, q?: Queryable, link?: LinkIntent) {
      const challenge = ctx.randomToken({ bytes: 32 });
      const issued = await ctx.verifications.issue({ purpose, ttlSeconds, secret: { value: challenge }, data, browser, ...(link ? { link } : {}) }, q);
      return { challenge, expiresAt: issued.expiresAt };
    },

    /** Uses the challenge up on `q` (the sign-in's commit), or throws why it cannot be used. */
    async consume(purpose: Purpose, challenge: string, req: Request, q: Queryable): Promise<Extract<VerificationResult, { ok: true }>> {
      const result = await ctx.verifications.consume({ purpose, secret: challenge, browser: req, q });
      if (!result.ok) throw fail(refusal[result.reason]);
      return result;
    },
  };
}
