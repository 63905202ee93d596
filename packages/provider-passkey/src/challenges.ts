import { createHash } from "node:crypto";
import type { ProviderContext, Queryable } from "@erebus/core";
import type { Request, Response } from "express";

/**
 * Single-use, server-stored WebAuthn challenges, bound to the browser that asked for them.
 *
 * This is the one place that stores challenges, with the shape of core's `ctx.verifications`
 * (issue 11 §1: `issue({ purpose, ttlSeconds, secret: { value }, data, browser })`, `consume({ purpose,
 * secret, browser, q })`), so that moving onto core's store, once it is in `@erebus/core`, is an edit
 * of this file only. Until then: the provider's own table, `erebus_passkey_challenges`.
 */
export interface ChallengeStore {
  issue(input: { purpose: Purpose; ttlSeconds: number; secret: { value: string }; data: Record<string, unknown>; browser: { req: Request; res: Response } }, q?: Queryable): Promise<{ expiresAt: Date }>;
  consume(input: { purpose: Purpose; secret: string; browser: Request; q?: Queryable }): Promise<ConsumeResult>;
}

export type Purpose = "register" | "authenticate";
export type ConsumeResult = { ok: true; data: Record<string, unknown> } | { ok: false; reason: "unknown" | "used" | "expired" | "browser" };

const TABLE = "erebus_passkey_challenges";

export const challengeMigration = {
  id: "0002_challenges",
  sql: `CREATE TABLE ${TABLE} (
    challenge_hash TEXT PRIMARY KEY,
    purpose TEXT NOT NULL CHECK (purpose IN ('register', 'authenticate')),
    browser_hash TEXT NOT NULL,
    data JSONB NOT NULL DEFAULT '{}'::jsonb,
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    consumed_at TIMESTAMPTZ
  );
  CREATE INDEX ${TABLE}_expires_at_idx ON ${TABLE} (expires_at);`,
};

const sha256 = (value: string) => createHash("sha256").update(value).digest("hex");
const BINDING = /^[A-Za-z0-9_-]{43}$/;

/** Reads one cookie from the Cookie header (no dependency for one value). */
function cookieValue(req: Request, name: string): string | undefined {
  for (const part of String(req.headers.cookie ?? "").split(";")) {
    const eq = part.indexOf("=");
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

export function createChallengeStore(ctx: ProviderContext): ChallengeStore {
  const secure = ctx.baseURL.protocol === "https:";
  // __Host-: only this origin can set it (no subdomain can plant a binding of its own), https only.
  const cookieName = secure ? "__Host-erebus_passkey_browser" : "erebus_passkey_browser";

  /**
   * The browser's binding value: the one its cookie already holds (another tab's ceremony, the
   * conditional-UI request waiting on the page, must stay valid), or a new one.
   */
  function binding(req: Request, res: Response, ttlSeconds: number): string {
    const held = cookieValue(req, cookieName);
    const value = held !== undefined && BINDING.test(held) ? held : ctx.random(32).toString("base64url");
    // SameSite=Strict: the verify request is a same-origin fetch; no other site can make the browser send it.
    res.append("Set-Cookie", `${cookieName}=${value}; Path=/; Max-Age=${ttlSeconds}; HttpOnly; SameSite=Strict${secure ? "; Secure" : ""}`);
    return value;
  }

  return {
    async issue(input, q = ctx.db) {
      const now = ctx.clock();
      const expiresAt = new Date(now.getTime() + input.ttlSeconds * 1000);
      const browser = binding(input.browser.req, input.browser.res, input.ttlSeconds);
      // Housekeeping in the same statement, bounded: a few rows that ended a day ago.
      await q.query(
        `WITH housekeeping AS (
           DELETE FROM ${TABLE} WHERE challenge_hash IN (SELECT challenge_hash FROM ${TABLE} WHERE expires_at < $7 LIMIT 20))
         INSERT INTO ${TABLE} (challenge_hash, purpose, browser_hash, data, created_at, expires_at) VALUES ($1, $2, $3, $4::jsonb, $5, $6)`,
        [sha256(input.secret.value), input.purpose, sha256(browser), JSON.stringify(input.data), now, expiresAt, new Date(now.getTime() - 86_400_000)],
      );
      return { expiresAt };
    },

    async consume(input) {
      const q = input.q ?? ctx.db;
      const now = ctx.clock();
      const held = cookieValue(input.browser, cookieName);
      const browserHash = held !== undefined && BINDING.test(held) ? sha256(held) : "";
      // Atomic: of concurrent consumes of one challenge, one updates the row; the others find it used.
      const { rows } = await q.query<{ data: Record<string, unknown> }>(
        `UPDATE ${TABLE} SET consumed_at = $3
         WHERE challenge_hash = $1 AND purpose = $2 AND consumed_at IS NULL AND expires_at > $3 AND browser_hash = $4
         RETURNING data`,
        [sha256(input.secret), input.purpose, now, browserHash],
      );
      if (rows[0]) return { ok: true, data: rows[0].data };
      const { rows: found } = await q.query<{ consumed_at: Date | null; expires_at: Date }>(
        `SELECT consumed_at, expires_at FROM ${TABLE} WHERE challenge_hash = $1 AND purpose = $2`,
        [sha256(input.secret), input.purpose],
      );
      const row = found[0];
      if (!row) return { ok: false, reason: "unknown" };
      if (row.consumed_at) return { ok: false, reason: "used" };
      if (new Date(row.expires_at).getTime() <= now.getTime()) return { ok: false, reason: "expired" };
      // Live, unused, right purpose: so the binding did not match. Another browser's challenge is
      // refused and left unused (the browser that asked may still finish its ceremony).
      return { ok: false, reason: "browser" };
    },
  };
}
