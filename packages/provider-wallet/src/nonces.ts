import type { LinkIntent, ProviderContext, Queryable, VerificationResult } from "@erebus/core/provider";
import { fail, type Family } from "./errors.js";

export type NonceFamily = "ethereum" | "solana";

/** EIP-4361 §"Message syntax": a nonce is at least 8 alphanumeric characters. */
const ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
/** 22 alphanumeric characters ≈ 131 bits; EIP-4361 wants ≥ 8 alphanumerics, the issue ≥ 96 bits. */
const NONCE_LENGTH = 22;
const PURPOSE = "nonce";

/**
 * Server-side, single-use, expiring nonces on core's single-use secret store (`ctx.verifications`),
 * shared by every app instance. A nonce is not secret (it is in the signed text), but the store
 * keeps only its SHA-256 all the same: a copy of the table holds nothing a client could present.
 */
export function createNonceStore(ctx: ProviderContext, ttlSeconds: number) {
  return {
    /**
     * Issues a nonce, on `q` (one statement: autocommitted on the database, or in a caller's transaction).
     * With `link` (from `ctx.linkIntent`), the sign-in it is used for attaches the wallet to the asking
     * person instead of starting a session, and only that session can use it.
     */
    async issue(family: NonceFamily, q: Queryable = ctx.db, link?: LinkIntent): Promise<{ nonce: string; issuedAt: Date; expiresAt: Date }> {
      const issued = await ctx.verifications.issue(
        {
          purpose: PURPOSE,
          ttlSeconds,
          secret: { alphabet: ALPHABET, length: NONCE_LENGTH },
          // The family is the subject too: a SIWE nonce in a SIWS message is "unknown" and stays unused.
          subject: family,
          data: { family },
          ...(link ? { link } : {}),
        },
        q,
      );
      return { nonce: issued.secret, issuedAt: issued.issuedAt, expiresAt: issued.expiresAt };
    },

    /**
     * Marks the nonce used, atomically: of any number of concurrent attempts on any instance, one
     * succeeds. On `q` (the sign-in's transaction, see `ctx.signInOnce`): a failed attempt burns the
     * nonce too, in a commit of its own. Throws the family's `ERR_*_NONCE_*` when it cannot be used;
     * returns the consumed verification (it carries the link intent, if any, to core).
     */
    async consume(family: Family, nonceFamily: NonceFamily, nonce: string, q: Queryable): Promise<VerificationResult> {
      const result = await ctx.verifications.consume({ purpose: PURPOSE, secret: nonce, subject: nonceFamily, q });
      if (result.ok) return result;
      if (result.reason === "used") throw fail(family, "NONCE_USED");
      if (result.reason === "expired") throw fail(family, "NONCE_EXPIRED");
      // unknown (never issued here, or another family's); superseded and browser are not used for nonces.
      throw fail(family, "NONCE_UNKNOWN");
    },
  };
}

export type NonceStore = ReturnType<typeof createNonceStore>;

/**
 * The provider's own nonce table, from before core's `ctx.verifications` (kept as released:
 * migrations are append-only; `0003` drops it).
 */
export const nonceMigration = {
  id: "0001_wallet_nonces",
  sql: `CREATE TABLE erebus_wallet_nonces (
    nonce_hash TEXT PRIMARY KEY,
    family TEXT NOT NULL CHECK (family IN ('ethereum', 'solana')),
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    consumed_at TIMESTAMPTZ
  );
  CREATE INDEX erebus_wallet_nonces_expires_at_idx ON erebus_wallet_nonces (expires_at);`,
};

/**
 * Nonces live on `erebus_verifications` now. Nonces live minutes (`nonceTtl`, at most an hour), so
 * the old table is dropped with whatever it holds: a nonce issued before the upgrade and not yet
 * used answers `ERR_SIW*_NONCE_UNKNOWN`, and the client asks for a new one.
 */
export const dropNonceTableMigration = {
  id: "0003_drop_wallet_nonces",
  sql: "DROP TABLE IF EXISTS erebus_wallet_nonces;",
};
