import { createHash, timingSafeEqual } from "node:crypto";
import type { ProviderContext } from "@erebus/core";
import { emailErrors } from "./errors.js";

export const emailTokenMigration = {
  id: "0001_email_tokens",
  sql: `CREATE TABLE erebus_email_tokens (
    id UUID PRIMARY KEY,
    email TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('link', 'code')),
    -- SHA-256 of the link token, or of "<id>:<code>" for a code; never the secret itself.
    token_hash TEXT NOT NULL UNIQUE,
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    consumed_at TIMESTAMPTZ,
    -- Set when a newer link or code was requested for the same address.
    invalidated_at TIMESTAMPTZ,
    attempts INTEGER NOT NULL DEFAULT 0
  );
  CREATE INDEX erebus_email_tokens_open_idx ON erebus_email_tokens (email, kind, created_at)
    WHERE consumed_at IS NULL AND invalidated_at IS NULL;
  CREATE INDEX erebus_email_tokens_expires_at_idx ON erebus_email_tokens (expires_at);`,
};

const sha256 = (value: string) => createHash("sha256").update(value).digest("hex");

/** A link token: 32 CSPRNG bytes, base64url (43 characters, 256 bits). */
export const LINK_TOKEN = /^[A-Za-z0-9_-]{43}$/;

function uuidFrom(bytes: Buffer): string {
  const b = Buffer.from(bytes.subarray(0, 16));
  b[6] = (b[6]! & 0x0f) | 0x40; // version 4
  b[8] = (b[8]! & 0x3f) | 0x80; // RFC 4122 variant
  const hex = b.toString("hex");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** Six decimal digits, uniform, by rejection sampling over 32-bit CSPRNG draws. */
function sixDigits(random: (n: number) => Buffer): string {
  const limit = 4_294_000_000; // largest multiple of 1e6 below 2^32
  for (;;) {
    const n = random(4).readUInt32BE(0);
    if (n < limit) return String(n % 1_000_000).padStart(6, "0");
  }
}

/** Single-use link tokens and one-time codes, stored only as hashes, one live at a time per address. */
export function createTokenStore(ctx: ProviderContext, options: { linkTtl: number; codeTtl: number; maxCodeAttempts: number }) {
  async function issue(email: string, kind: "link" | "code"): Promise<{ secret: string; expiresAt: Date }> {
    const now = ctx.clock();
    const id = uuidFrom(ctx.random(16));
    const secret = kind === "link" ? ctx.random(32).toString("base64url") : sixDigits(ctx.random);
    const hash = kind === "link" ? sha256(secret) : sha256(`${id}:${secret}`);
    const expiresAt = new Date(now.getTime() + (kind === "link" ? options.linkTtl : options.codeTtl) * 1000);
    await ctx.db.transaction(async (tx) => {
      // A new link or code ends every earlier one for the address.
      await tx.query(
        "UPDATE erebus_email_tokens SET invalidated_at = $2 WHERE email = $1 AND consumed_at IS NULL AND invalidated_at IS NULL",
        [email, now],
      );
      await tx.query(
        "INSERT INTO erebus_email_tokens (id, email, kind, token_hash, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)",
        [id, email, kind, hash, now, expiresAt],
      );
      // Housekeeping, bounded: rows that ended more than a day ago.
      await tx.query(
        `DELETE FROM erebus_email_tokens WHERE id IN (SELECT id FROM erebus_email_tokens WHERE expires_at < $1 LIMIT 20)`,
        [new Date(now.getTime() - 86_400_000)],
      );
    });
    return { secret, expiresAt };
  }

  return {
    issue,

    /**
     * Consumes a link token atomically and returns its address. With `email`, the token must have
     * been sent to that address (and is left untouched when it was not).
     */
    async consumeLink(token: string, email?: string): Promise<string> {
      if (!LINK_TOKEN.test(token)) throw emailErrors.create("ERR_EMAIL_TOKEN_INVALID");
      const now = ctx.clock();
      const hash = sha256(token);
      const { rows } = await ctx.db.query<{ email: string }>(
        `UPDATE erebus_email_tokens SET consumed_at = $2
         WHERE token_hash = $1 AND kind = 'link' AND consumed_at IS NULL AND invalidated_at IS NULL AND expires_at > $2
           AND ($3::text IS NULL OR email = $3::text)
         RETURNING email`,
        [hash, now, email ?? null],
      );
      if (rows[0]) return rows[0].email;
      const { rows: found } = await ctx.db.query<{ email: string; consumed_at: Date | null; invalidated_at: Date | null; expires_at: Date }>(
        "SELECT email, consumed_at, invalidated_at, expires_at FROM erebus_email_tokens WHERE token_hash = $1 AND kind = 'link'",
        [hash],
      );
      const row = found[0];
      if (!row || (email !== undefined && row.email !== email)) throw emailErrors.create("ERR_EMAIL_TOKEN_INVALID");
      if (row.consumed_at) throw emailErrors.create("ERR_EMAIL_TOKEN_USED");
      if (row.invalidated_at) throw emailErrors.create("ERR_EMAIL_TOKEN_SUPERSEDED");
      throw emailErrors.create("ERR_EMAIL_TOKEN_EXPIRED");
    },

    /**
     * Checks a code for an address: every try counts (atomically, so parallel guesses count too),
     * after `maxCodeAttempts` tries the code is dead, the comparison is constant-time.
     */
    async consumeCode(email: string, code: string): Promise<void> {
      const now = ctx.clock();
      const { rows } = await ctx.db.query<{ id: string; token_hash: string; attempts: number; expires_at: Date }>(
        `UPDATE erebus_email_tokens SET attempts = attempts + 1
         WHERE id = (SELECT id FROM erebus_email_tokens
                     WHERE email = $1 AND kind = 'code' AND consumed_at IS NULL AND invalidated_at IS NULL
                     ORDER BY created_at DESC LIMIT 1)
         RETURNING id, token_hash, attempts, expires_at`,
        [email],
      );
      const row = rows[0];
      if (!row) throw emailErrors.create("ERR_EMAIL_CODE_INVALID");
      if (row.attempts > options.maxCodeAttempts) throw emailErrors.create("ERR_EMAIL_CODE_ATTEMPTS");
      if (row.expires_at <= now) throw emailErrors.create("ERR_EMAIL_CODE_EXPIRED");
      const presented = Buffer.from(sha256(`${row.id}:${code}`), "hex");
      if (!timingSafeEqual(presented, Buffer.from(row.token_hash, "hex"))) throw emailErrors.create("ERR_EMAIL_CODE_INVALID");
      const { rows: consumed } = await ctx.db.query(
        "UPDATE erebus_email_tokens SET consumed_at = $2 WHERE id = $1 AND consumed_at IS NULL AND invalidated_at IS NULL RETURNING id",
        [row.id, now],
      );
      if (!consumed[0]) throw emailErrors.create("ERR_EMAIL_CODE_INVALID");
    },
  };
}

export type TokenStore = ReturnType<typeof createTokenStore>;
