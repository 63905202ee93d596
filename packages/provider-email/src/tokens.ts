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

export const emailCodeBudgetMigration = {
  id: "0002_email_live_links_and_code_budget",
  sql: `-- Insertion order, to tell the newest links apart when several share a timestamp.
  ALTER TABLE erebus_email_tokens ADD COLUMN seq BIGINT GENERATED ALWAYS AS IDENTITY;
  -- Wrong codes per address across all its codes, in a window that starts at the first wrong one.
  CREATE TABLE erebus_email_code_failures (
    email TEXT PRIMARY KEY,
    failures INTEGER NOT NULL,
    window_started_at TIMESTAMPTZ NOT NULL
  );
  CREATE INDEX erebus_email_code_failures_window_idx ON erebus_email_code_failures (window_started_at);`,
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

interface TokenStoreOptions {
  linkTtl: number;
  codeTtl: number;
  maxCodeAttempts: number;
  maxCodeFailures: number;
  codeFailureWindow: number;
  maxLiveLinks: number;
}

type LinkRow = { id: string; email: string; consumed_at: Date | null; invalidated_at: Date | null; expires_at: Date };

/**
 * Single-use link tokens and one-time codes, stored only as hashes. Up to `maxLiveLinks` links and
 * one code work at a time per address; using any of them ends the rest.
 */
export function createTokenStore(ctx: ProviderContext, options: TokenStoreOptions) {
  const windowMs = options.codeFailureWindow * 1000;

  async function issue(email: string, kind: "link" | "code"): Promise<{ secret: string; expiresAt: Date }> {
    const now = ctx.clock();
    const id = uuidFrom(ctx.random(16));
    const secret = kind === "link" ? ctx.random(32).toString("base64url") : sixDigits(ctx.random);
    const hash = kind === "link" ? sha256(secret) : sha256(`${id}:${secret}`);
    const expiresAt = new Date(now.getTime() + (kind === "link" ? options.linkTtl : options.codeTtl) * 1000);
    await ctx.db.transaction(async (tx) => {
      if (kind === "code") {
        // Only the newest code works: every live code would multiply a guesser's odds. The new code
        // goes to the same mailbox, so this locks nobody out.
        await tx.query(
          "UPDATE erebus_email_tokens SET invalidated_at = $2 WHERE email = $1 AND kind = 'code' AND consumed_at IS NULL AND invalidated_at IS NULL",
          [email, now],
        );
      }
      await tx.query(
        "INSERT INTO erebus_email_tokens (id, email, kind, token_hash, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)",
        [id, email, kind, hash, now, expiresAt],
      );
      if (kind === "link") {
        // A new link does not end the ones already sent (anyone can ask for links to any address):
        // only links beyond the newest `maxLiveLinks` end.
        await tx.query(
          `UPDATE erebus_email_tokens SET invalidated_at = $2
           WHERE id IN (SELECT id FROM erebus_email_tokens
                        WHERE email = $1 AND kind = 'link' AND consumed_at IS NULL AND invalidated_at IS NULL AND expires_at > $2
                        ORDER BY seq DESC OFFSET $3)`,
          [email, now, options.maxLiveLinks],
        );
      }
      // Housekeeping, bounded: rows that ended more than a day ago, code budgets whose window passed.
      await tx.query(
        `DELETE FROM erebus_email_tokens WHERE id IN (SELECT id FROM erebus_email_tokens WHERE expires_at < $1 LIMIT 20)`,
        [new Date(now.getTime() - 86_400_000)],
      );
      await tx.query(
        `DELETE FROM erebus_email_code_failures WHERE email IN (SELECT email FROM erebus_email_code_failures WHERE window_started_at <= $1 LIMIT 20)`,
        [new Date(now.getTime() - windowMs)],
      );
    });
    return { secret, expiresAt };
  }

  /** Why a link cannot be used (the token is well-formed and was looked up by its hash). */
  function linkFailure(row: LinkRow | undefined, email: string | undefined, now: Date) {
    if (!row || (email !== undefined && row.email !== email)) return emailErrors.create("ERR_EMAIL_TOKEN_INVALID");
    if (row.consumed_at) return emailErrors.create("ERR_EMAIL_TOKEN_USED");
    if (row.invalidated_at) return emailErrors.create("ERR_EMAIL_TOKEN_SUPERSEDED");
    if (row.expires_at <= now) return emailErrors.create("ERR_EMAIL_TOKEN_EXPIRED");
    return undefined;
  }

  async function findLink(token: string): Promise<LinkRow | undefined> {
    const { rows } = await ctx.db.query<LinkRow>(
      "SELECT id, email, consumed_at, invalidated_at, expires_at FROM erebus_email_tokens WHERE token_hash = $1 AND kind = 'link'",
      [sha256(token)],
    );
    return rows[0];
  }

  /**
   * Reserves one wrong-code slot of the address's budget, atomically (parallel guesses count too).
   * Throws 429 when the budget is spent; the window starts at the first wrong code.
   */
  async function reserveCodeTry(email: string, now: Date): Promise<void> {
    const { rows } = await ctx.db.query<{ failures: number; window_started_at: Date }>(
      `INSERT INTO erebus_email_code_failures AS f (email, failures, window_started_at) VALUES ($1, 1, $2)
       ON CONFLICT (email) DO UPDATE SET
         failures = CASE WHEN f.window_started_at <= $3 THEN 1 ELSE LEAST(f.failures + 1, $4) END,
         window_started_at = CASE WHEN f.window_started_at <= $3 THEN $2 ELSE f.window_started_at END
       RETURNING failures, window_started_at`,
      [email, now, new Date(now.getTime() - windowMs), options.maxCodeFailures + 1],
    );
    const row = rows[0]!;
    if (row.failures > options.maxCodeFailures) {
      const retryAfter = Math.max(1, Math.ceil((row.window_started_at.getTime() + windowMs - now.getTime()) / 1000));
      throw emailErrors.create("ERR_EMAIL_CODE_LOCKED", { retryAfter });
    }
  }

  return {
    issue,

    /**
     * The address a link signs into, without using it up (the confirm page, and the check before a
     * switch of account). Throws the reason when the link cannot be used.
     */
    async peekLink(token: string, email?: string): Promise<string> {
      if (!LINK_TOKEN.test(token)) throw emailErrors.create("ERR_EMAIL_TOKEN_INVALID");
      const row = await findLink(token);
      const failure = linkFailure(row, email, ctx.clock());
      if (failure) throw failure;
      return row!.email;
    },

    /**
     * Consumes a link token atomically and returns its address. With `email`, the token must have
     * been sent to that address (and is left untouched when it was not). Using a link ends every
     * other link and code of the address, and clears its wrong-code count (the link proved the mailbox).
     */
    async consumeLink(token: string, email?: string): Promise<string> {
      if (!LINK_TOKEN.test(token)) throw emailErrors.create("ERR_EMAIL_TOKEN_INVALID");
      const now = ctx.clock();
      const used = await ctx.db.transaction(async (tx) => {
        // One use of an address's links at a time: two links of one address used at once would each
        // lock their own row, then wait for the other's in the "end the others" update below, a
        // deadlock PostgreSQL breaks with an error (a 500). Found by the conformance kit's concurrent sign-ins.
        const { rows: target } = await tx.query<{ email: string }>("SELECT email FROM erebus_email_tokens WHERE token_hash = $1", [sha256(token)]);
        if (target[0]) await tx.query("SELECT pg_advisory_xact_lock(hashtext($1))", [`erebus_email_link:${target[0].email}`]);
        const { rows } = await tx.query<{ id: string; email: string }>(
          `UPDATE erebus_email_tokens SET consumed_at = $2
           WHERE token_hash = $1 AND kind = 'link' AND consumed_at IS NULL AND invalidated_at IS NULL AND expires_at > $2
             AND ($3::text IS NULL OR email = $3::text)
           RETURNING id, email`,
          [sha256(token), now, email ?? null],
        );
        const row = rows[0];
        if (!row) return undefined;
        await tx.query(
          "UPDATE erebus_email_tokens SET invalidated_at = $3 WHERE email = $1 AND id <> $2 AND consumed_at IS NULL AND invalidated_at IS NULL",
          [row.email, row.id, now],
        );
        await tx.query("DELETE FROM erebus_email_code_failures WHERE email = $1", [row.email]);
        return row.email;
      });
      if (used !== undefined) return used;
      throw linkFailure(await findLink(token), email, now) ?? emailErrors.create("ERR_EMAIL_TOKEN_INVALID");
    },

    /**
     * Checks a code for an address: every try counts (atomically, so parallel guesses count too),
     * after `maxCodeAttempts` tries the code is dead, after `maxCodeFailures` wrong codes across all
     * of the address's codes no code works until a link is used or the window ends; the comparison
     * is constant-time.
     */
    async consumeCode(email: string, code: string): Promise<void> {
      const now = ctx.clock();
      const { rows } = await ctx.db.query<{ id: string; token_hash: string; attempts: number; expires_at: Date }>(
        `UPDATE erebus_email_tokens SET attempts = attempts + 1
         WHERE id = (SELECT id FROM erebus_email_tokens
                     WHERE email = $1 AND kind = 'code' AND consumed_at IS NULL AND invalidated_at IS NULL
                     ORDER BY seq DESC LIMIT 1)
         RETURNING id, token_hash, attempts, expires_at`,
        [email],
      );
      const row = rows[0];
      if (!row) throw emailErrors.create("ERR_EMAIL_CODE_INVALID");
      if (row.attempts > options.maxCodeAttempts) throw emailErrors.create("ERR_EMAIL_CODE_ATTEMPTS");
      if (row.expires_at <= now) throw emailErrors.create("ERR_EMAIL_CODE_EXPIRED");
      // Counted before the comparison and handed back on success, so a burst cannot outrun the budget.
      await reserveCodeTry(email, now);
      const presented = Buffer.from(sha256(`${row.id}:${code}`), "hex");
      if (!timingSafeEqual(presented, Buffer.from(row.token_hash, "hex"))) throw emailErrors.create("ERR_EMAIL_CODE_INVALID");
      const consumed = await ctx.db.transaction(async (tx) => {
        const { rows: done } = await tx.query(
          "UPDATE erebus_email_tokens SET consumed_at = $2 WHERE id = $1 AND consumed_at IS NULL AND invalidated_at IS NULL RETURNING id",
          [row.id, now],
        );
        if (!done[0]) return false;
        await tx.query(
          "UPDATE erebus_email_tokens SET invalidated_at = $3 WHERE email = $1 AND id <> $2 AND consumed_at IS NULL AND invalidated_at IS NULL",
          [email, row.id, now],
        );
        // The right code was no failure: give its slot back.
        await tx.query("UPDATE erebus_email_code_failures SET failures = GREATEST(failures - 1, 0) WHERE email = $1", [email]);
        return true;
      });
      if (!consumed) throw emailErrors.create("ERR_EMAIL_CODE_INVALID");
    },
  };
}

export type TokenStore = ReturnType<typeof createTokenStore>;
