import type { LinkIntent, ProviderContext, Queryable, VerificationResult } from "@erebus/core/provider";
import { emailErrors } from "./errors.js";

// Released migrations stay as they were (append-only): 0001 and 0002 made the provider's own token
// table, which core's `erebus_verifications` replaces (issue 11); 0003 drops it. Its rows were links
// and codes that live minutes: a link or code sent before the upgrade no longer works (ask again).
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

export const dropEmailTokensMigration = {
  id: "0003_drop_email_tokens",
  sql: `-- Links and codes live in core's erebus_verifications now (provider 'email', purposes 'link' and 'code').
  DROP TABLE IF EXISTS erebus_email_tokens;`,
};

/** A link token: core's default secret, 32 CSPRNG bytes as base64url (43 characters, 256 bits). */
export const LINK_TOKEN = /^[A-Za-z0-9_-]{43}$/;

/** The purposes of this provider's secrets in core's store; the subject of each is the address. */
const LINK = "link";
const CODE = "code";
/** Using a link or a code ends every other link and code of the address. */
const BOTH = [LINK, CODE] as const;

interface TokenStoreOptions {
  linkTtl: number;
  codeTtl: number;
  maxCodeAttempts: number;
  maxCodeFailures: number;
  codeFailureWindow: number;
  maxLiveLinks: number;
}

type Failure = Extract<VerificationResult, { ok: false }>["reason"];

const linkError = (reason: Failure) => {
  if (reason === "used") return emailErrors.create("ERR_EMAIL_TOKEN_USED");
  if (reason === "superseded") return emailErrors.create("ERR_EMAIL_TOKEN_SUPERSEDED");
  if (reason === "expired") return emailErrors.create("ERR_EMAIL_TOKEN_EXPIRED");
  return emailErrors.create("ERR_EMAIL_TOKEN_INVALID");
};

const codeError = (reason: Failure) => {
  if (reason === "exhausted") return emailErrors.create("ERR_EMAIL_CODE_ATTEMPTS");
  if (reason === "expired") return emailErrors.create("ERR_EMAIL_CODE_EXPIRED");
  return emailErrors.create("ERR_EMAIL_CODE_INVALID");
};

/**
 * Magic links and one-time codes on core's single-use store (`ctx.verifications`, only hashes kept),
 * plus the per-address wrong-code budget. Up to `maxLiveLinks` links and one code work at a time per
 * address; using any of them ends the rest.
 *
 * The budget stays in this provider's own table rather than on `ctx.rateLimit`: it is not a plain
 * counter. Using a link clears it, a right code gives its slot back, its window starts at the first
 * wrong code and follows the injectable clock, and it answers its own `ERR_EMAIL_CODE_LOCKED`.
 */
export function createTokenStore(ctx: ProviderContext, options: TokenStoreOptions) {
  const windowMs = options.codeFailureWindow * 1000;

  /**
   * Reserves one wrong-code slot of the address's budget on `q`, atomically (parallel guesses count
   * too). Throws 429 when the budget is spent; the window starts at the first wrong code.
   */
  async function reserveCodeTry(q: Queryable, email: string, now: Date): Promise<void> {
    const { rows } = await q.query<{ failures: number; window_started_at: Date }>(
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

  /**
   * One use of an address's secrets at a time, taken first by both paths: a code try locks the
   * address's budget row and then core's lock on the address, a link use the other way round, and
   * two such transactions would wait on each other (a deadlock PostgreSQL breaks with a 500).
   */
  const lockAddress = (q: Queryable, email: string) => q.query("SELECT pg_advisory_xact_lock(hashtext($1))", [`erebus_email:${email}`]);

  return {
    /**
     * Issues a link or a code for the address and returns the secret to mail. `limit` counts the
     * send in the same commit (and, by throwing, issues nothing).
     */
    async issue(email: string, kind: "link" | "code", link?: LinkIntent, limit?: (tx: Queryable) => Promise<void>): Promise<{ secret: string; expiresAt: Date }> {
      return ctx.db.transaction(async (tx) => {
        await limit?.(tx);
        const issued = await ctx.verifications.issue(
          kind === "link"
            ? // A new link does not end the ones already sent (anyone can ask for links to any
              // address): only links beyond the newest `maxLiveLinks` end.
              { purpose: LINK, subject: email, ttlSeconds: options.linkTtl, supersede: options.maxLiveLinks, ...(link ? { link } : {}) }
            : // Only the newest code works: every live code would multiply a guesser's odds. The new
              // code goes to the same mailbox, so this locks nobody out.
              { purpose: CODE, subject: email, ttlSeconds: options.codeTtl, secret: { digits: 6 }, maxAttempts: options.maxCodeAttempts, supersede: true, ...(link ? { link } : {}) },
          tx,
        );
        // Housekeeping, bounded: code budgets whose window passed. Rows a code try holds are skipped:
        // that try took the budget row before its code's, this send the other way round (supersede
        // first), and waiting for it would be a deadlock PostgreSQL breaks with a 500.
        await tx.query(
          "DELETE FROM erebus_email_code_failures WHERE email IN (SELECT email FROM erebus_email_code_failures WHERE window_started_at <= $1 LIMIT 20 FOR UPDATE SKIP LOCKED)",
          [new Date(issued.issuedAt.getTime() - windowMs)],
        );
        return { secret: issued.secret, expiresAt: issued.expiresAt };
      });
    },

    /**
     * The address a link signs into (and its link intent, when it adds the address to a person),
     * without using it up (the confirm page, and the check before a switch of account). Throws the
     * reason when the link cannot be used.
     */
    async peekLink(token: string, email?: string): Promise<{ email: string; link: LinkIntent | null }> {
      if (!LINK_TOKEN.test(token)) throw emailErrors.create("ERR_EMAIL_TOKEN_INVALID");
      const found = await ctx.verifications.peek({ purpose: LINK, secret: token, ...(email === undefined ? {} : { subject: email }) });
      if (!found.ok) throw linkError(found.reason);
      return { email: found.subject!, link: found.link };
    },

    /**
     * Uses a link up on `q` and returns what was consumed. `peeked` is the address `peekLink` named;
     * with `expected`, the token must have been sent to that address (and is left untouched when it
     * was not). Using a link ends every other
     * link and code of the address, and clears its wrong-code count (the link proved the mailbox).
     * Links of one address used at once are used one after the other (core locks the subject).
     */
    async consumeLink(q: Queryable, token: string, addresses: { expected?: string; peeked: string }): Promise<Extract<VerificationResult, { ok: true }>> {
      if (!LINK_TOKEN.test(token)) throw emailErrors.create("ERR_EMAIL_TOKEN_INVALID");
      const email = addresses.expected;
      await lockAddress(q, addresses.peeked);
      const used = await ctx.verifications.consume({ purpose: LINK, secret: token, endOthers: BOTH, q, ...(email === undefined ? {} : { subject: email }) });
      if (!used.ok) throw linkError(used.reason);
      await q.query("DELETE FROM erebus_email_code_failures WHERE email = $1", [used.subject]);
      return used;
    },

    /**
     * Checks a code for an address on `q`: the address's wrong-code budget is reserved before the
     * comparison (so a burst cannot outrun it) and handed back when the code was right; every try
     * counts on the code itself too (core), and after `maxCodeAttempts` tries the code is dead. A
     * wrong code throws, and `ctx.signInOnce` then repeats this in a commit of its own, so the try
     * and the budget slot are counted although the sign-in's transaction rolled back.
     */
    async consumeCode(q: Queryable, email: string, code: string): Promise<Extract<VerificationResult, { ok: true }>> {
      await lockAddress(q, email);
      await reserveCodeTry(q, email, ctx.clock());
      const used = await ctx.verifications.consumeCode({ purpose: CODE, subject: email, code, endOthers: BOTH, q });
      if (!used.ok) throw codeError(used.reason);
      // The right code was no failure: give its slot back.
      await q.query("UPDATE erebus_email_code_failures SET failures = GREATEST(failures - 1, 0) WHERE email = $1", [email]);
      return used;
    },
  };
}

export type TokenStore = ReturnType<typeof createTokenStore>;
