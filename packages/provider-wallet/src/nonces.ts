import { createHash } from "node:crypto";
import type { ProviderContext, Queryable } from "@erebus/core";

export type NonceFamily = "ethereum" | "solana";
export type ConsumeResult = "ok" | "unknown" | "used" | "expired";

const ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
/** 22 alphanumeric characters ≈ 131 bits; EIP-4361 wants ≥ 8 alphanumerics, the issue ≥ 96 bits. */
const NONCE_LENGTH = 22;

// Nonces are not secrets (they are in the signed text), but they are stored as SHA-256 all the same:
// a copy of the table then holds nothing a client could present, as for every other token here.
const hash = (nonce: string) => createHash("sha256").update(nonce).digest("hex");

/** A CSPRNG nonce over [A-Za-z0-9], by rejection sampling (no modulo bias). */
function newNonce(random: (n: number) => Buffer): string {
  let out = "";
  while (out.length < NONCE_LENGTH) {
    for (const byte of random(32)) {
      if (byte < 248 && out.length < NONCE_LENGTH) out += ALPHABET[byte % 62];
    }
  }
  return out;
}

/** Server-side, single-use, expiring nonces in the provider's own table, shared by every app instance. */
export function createNonceStore(ctx: ProviderContext, ttlSeconds: number) {
  return {
    /** Issues a nonce, on `q` (a transaction of the caller's, e.g. with its rate-limit hit: one commit). */
    async issue(family: NonceFamily, q: Queryable = ctx.db): Promise<{ nonce: string; issuedAt: Date; expiresAt: Date }> {
      const nonce = newNonce(ctx.random);
      const issuedAt = ctx.clock();
      const expiresAt = new Date(issuedAt.getTime() + ttlSeconds * 1000);
      // One statement: the insert, and housekeeping, bounded (a few rows that expired a day ago).
      await q.query(
        `WITH housekeeping AS (
           DELETE FROM erebus_wallet_nonces WHERE nonce_hash IN (
             SELECT nonce_hash FROM erebus_wallet_nonces WHERE expires_at < $5 LIMIT 20))
         INSERT INTO erebus_wallet_nonces (nonce_hash, family, created_at, expires_at) VALUES ($1, $2, $3, $4)`,
        [hash(nonce), family, issuedAt, expiresAt, new Date(issuedAt.getTime() - 86_400_000)],
      );
      return { nonce, issuedAt, expiresAt };
    },

    /**
     * Marks the nonce used, atomically: of any number of concurrent attempts on any instance, one
     * gets "ok". On `q` (the sign-in's transaction, see `ctx.signInOnce`): a failed attempt burns
     * the nonce too, in a commit of its own.
     */
    async consume(family: NonceFamily, nonce: string, q: Queryable = ctx.db): Promise<ConsumeResult> {
      const now = ctx.clock();
      const { rows } = await q.query(
        `UPDATE erebus_wallet_nonces SET consumed_at = $3
         WHERE nonce_hash = $1 AND family = $2 AND consumed_at IS NULL AND expires_at > $3
         RETURNING nonce_hash`,
        [hash(nonce), family, now],
      );
      if (rows.length === 1) return "ok";
      const { rows: found } = await q.query<{ consumed_at: Date | null }>(
        "SELECT consumed_at FROM erebus_wallet_nonces WHERE nonce_hash = $1 AND family = $2",
        [hash(nonce), family],
      );
      if (!found[0]) return "unknown";
      return found[0].consumed_at ? "used" : "expired";
    },
  };
}

export type NonceStore = ReturnType<typeof createNonceStore>;

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
