import { createCipheriv, createDecipheriv, createHash, createHmac } from "node:crypto";
import type { ProviderContext } from "@erebus/core";
import type { Request, Response } from "express";
import { passportErrors } from "./errors.js";

/**
 * Redirect sign-ins in flight: the OAuth `state` a strategy sends to its identity provider, what the
 * strategy asked to keep with it (the PKCE verifier, the OpenID Connect nonce context, its own app
 * state) and where to land afterwards. Single use, expiring, and bound to the browser that started
 * it by an HttpOnly cookie, as provider-oauth's attempts are.
 *
 * This is the one module to change when core's `ctx.verifications` (issue with `browser: { req, res }`,
 * consume with `browser: req`) lands: `issue` and `consume` keep their shape, the table and the
 * cookie go.
 */
export const attemptsMigration = {
  id: "0001_attempts",
  // IF NOT EXISTS: every redirect strategy mounted through @erebus/passport shares the table (rows
  // carry the provider id), and each brings this migration under its own provider id.
  sql: `CREATE TABLE IF NOT EXISTS erebus_passport_attempts (
    handle_hash TEXT PRIMARY KEY,
    provider TEXT NOT NULL,
    -- SHA-256 of the browser's binding cookie: a callback only works in the browser that started it.
    binding_hash TEXT NOT NULL,
    -- What the strategy keeps with its state (PKCE verifier, OIDC nonce), AES-256-GCM sealed with a
    -- key derived from the state itself, which the table does not hold (only its SHA-256).
    sealed TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    consumed_at TIMESTAMPTZ
  );
  CREATE INDEX IF NOT EXISTS erebus_passport_attempts_expires_at_idx ON erebus_passport_attempts (expires_at);`,
};

export interface AttemptData {
  /** The second argument of the strategy's `store()`: a PKCE verifier (passport-oauth2) or the OIDC context (passport-openidconnect). */
  kept: unknown;
  /** The strategy's own `state` option, handed back on verify. */
  appState: unknown;
  /** A same-site path to land on. */
  returnTo: string;
}

const BINDING = /^[A-Za-z0-9_-]{43}$/;
const HANDLE = /^[A-Za-z0-9_-]{43}$/;
/** Sign-ins a browser can have under way at once on https (tabs); the oldest binding drops out first. */
const MAX_BINDINGS = 4;
/** One cookie's value from a Cookie header (the package takes no cookie-parser dependency for one name). */
function cookieValue(header: string | undefined, name: string): string | undefined {
  for (const part of (header ?? "").split(";")) {
    const index = part.indexOf("=");
    if (index > 0 && part.slice(0, index).trim() === name) return part.slice(index + 1).trim();
  }
  return undefined;
}
const sha256 = (value: string) => createHash("sha256").update(value).digest("hex");
const sealKey = (handle: string) => createHmac("sha256", handle).update("erebus-passport-attempt").digest();

function seal(handle: string, data: AttemptData): string {
  const iv = createHash("sha256").update(`iv:${handle}`).digest().subarray(0, 12); // one key per handle: a fixed IV is unique
  const cipher = createCipheriv("aes-256-gcm", sealKey(handle), iv);
  const body = Buffer.concat([cipher.update(JSON.stringify(data), "utf8"), cipher.final()]);
  return `${body.toString("base64url")}.${cipher.getAuthTag().toString("base64url")}`;
}
function unseal(handle: string, sealed: string): AttemptData {
  const [body, tag] = sealed.split(".");
  const iv = createHash("sha256").update(`iv:${handle}`).digest().subarray(0, 12);
  const decipher = createDecipheriv("aes-256-gcm", sealKey(handle), iv);
  decipher.setAuthTag(Buffer.from(tag ?? "", "base64url"));
  return JSON.parse(Buffer.concat([decipher.update(Buffer.from(body ?? "", "base64url")), decipher.final()]).toString("utf8")) as AttemptData;
}

export function createAttemptStore(ctx: ProviderContext, id: string, ttlSeconds: number) {
  const https = ctx.baseURL.protocol === "https:";
  const secure = https || ctx.production;
  // On https the binding cookie is `__Host-`: only this exact origin can set it (a sibling subdomain
  // cannot plant one, RFC 6265bis §4.1.3.2). On http it is scoped to this strategy's routes.
  const cookie = https
    ? { name: `__Host-erebus_passport_${id}`, path: "/" }
    : { name: `erebus_passport_${id}`, path: `${ctx.basePath === "/" ? "" : ctx.basePath}/passport/${id}` };
  let lastPrune = 0;

  /** The bindings this browser holds, oldest first (several on https, one on http). */
  function bindingsOf(req: Request): string[] {
    const value = cookieValue(req.headers.cookie, cookie.name);
    return (value ?? "").split(".").filter((b) => BINDING.test(b)).slice(-MAX_BINDINGS);
  }

  return {
    /** Stores the attempt for this browser and returns its handle (the `state` the identity provider echoes). */
    async issue(req: Request, res: Response, data: AttemptData): Promise<string> {
      // A fresh binding at every start, never an existing value adopted: nobody who planted or saw one
      // can finish this attempt. On https earlier `__Host-` bindings stay (tabs); on http a cookie may
      // have been planted, so the newest start replaces it.
      const binding = ctx.random(32).toString("base64url");
      const kept = https ? bindingsOf(req).slice(-(MAX_BINDINGS - 1)) : [];
      const handle = ctx.random(32).toString("base64url");
      const now = ctx.clock();
      await ctx.db.query(
        `INSERT INTO erebus_passport_attempts (handle_hash, provider, binding_hash, sealed, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)`,
        [sha256(handle), ctx.providerId, sha256(binding), seal(handle, data), now, new Date(now.getTime() + ttlSeconds * 1000)],
      );
      if (now.getTime() - lastPrune > 60_000) {
        lastPrune = now.getTime();
        await ctx.db.query("DELETE FROM erebus_passport_attempts WHERE expires_at < $1", [new Date(now.getTime() - 86_400_000)]);
      }
      // SameSite=Lax: the callback is a top-level GET navigation back from the identity provider.
      res.append("Set-Cookie", `${cookie.name}=${[...kept, binding].join(".")}; Max-Age=${ttlSeconds}; Path=${cookie.path}; HttpOnly;${secure ? " Secure;" : ""} SameSite=Lax`);
      return handle;
    },

    /** Uses the attempt up: once, unexpired, in the browser that started it. Throws why not. */
    async consume(req: Request, handle: string): Promise<AttemptData> {
      if (!HANDLE.test(handle)) throw passportErrors.create("ERR_PASSPORT_STATE_INVALID");
      const bindings = bindingsOf(req);
      if (bindings.length === 0) throw passportErrors.create("ERR_PASSPORT_BROWSER_MISMATCH");
      const now = ctx.clock();
      const hashes = bindings.map(sha256);
      // One statement: of concurrent callbacks with one state, exactly one gets the row.
      const { rows } = await ctx.db.query<{ sealed: string }>(
        `UPDATE erebus_passport_attempts SET consumed_at = $4
         WHERE handle_hash = $1 AND provider = $2 AND binding_hash = ANY($3::text[]) AND consumed_at IS NULL AND expires_at > $4
         RETURNING sealed`,
        [sha256(handle), ctx.providerId, hashes, now],
      );
      if (rows[0]) return unseal(handle, rows[0].sealed);
      const { rows: found } = await ctx.db.query<{ binding_hash: string; consumed_at: Date | null; provider: string }>(
        "SELECT binding_hash, consumed_at, provider FROM erebus_passport_attempts WHERE handle_hash = $1",
        [sha256(handle)],
      );
      const row = found[0];
      if (!row || row.provider !== ctx.providerId) throw passportErrors.create("ERR_PASSPORT_STATE_INVALID");
      if (!hashes.includes(row.binding_hash)) throw passportErrors.create("ERR_PASSPORT_BROWSER_MISMATCH");
      if (row.consumed_at) throw passportErrors.create("ERR_PASSPORT_STATE_USED");
      throw passportErrors.create("ERR_PASSPORT_STATE_EXPIRED");
    },
  };
}

export type AttemptStore = ReturnType<typeof createAttemptStore>;
