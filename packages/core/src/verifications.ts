import { createHash, timingSafeEqual } from "node:crypto";
import type { Request, Response } from "express";
import { parse as parseCookies, serialize as serializeCookie } from "cookie";
import type { Database, Queryable } from "./db/types.js";

/** SHA-256, hex: how every secret Erebus keeps is stored. */
export const sha256 = (value: string): string => createHash("sha256").update(value).digest("hex");

const BASE64URL = /^[A-Za-z0-9_-]+$/;

/** What makes a secret: a random token, a string of an alphabet, a code of digits, or a value made elsewhere. */
export type SecretKind = "token" | { alphabet: string; length: number } | { digits: number } | { value: string };

/** Random text of `alphabet`, uniform (rejection sampling: no modulo bias). */
export function randomOf(random: (bytes: number) => Buffer, alphabet: string, length: number): string {
  if (alphabet.length < 2 || alphabet.length > 256 || new Set(alphabet).size !== alphabet.length) {
    throw new TypeError("randomToken: alphabet must have 2 to 256 distinct characters");
  }
  if (!Number.isInteger(length) || length < 1 || length > 1024) throw new TypeError("randomToken: length must be an integer from 1 to 1024");
  const limit = 256 - (256 % alphabet.length);
  let out = "";
  while (out.length < length) {
    for (const byte of random(Math.max(16, length * 2))) {
      if (byte < limit && out.length < length) out += alphabet[byte % alphabet.length];
    }
  }
  return out;
}

/** `n` decimal digits, uniform over 32-bit draws. */
function digitsOf(random: (bytes: number) => Buffer, n: number): string {
  if (!Number.isInteger(n) || n < 4 || n > 9) throw new TypeError("verifications.issue: secret.digits must be from 4 to 9");
  const range = 10 ** n;
  const limit = Math.floor(2 ** 32 / range) * range;
  for (;;) {
    const draw = random(4).readUInt32BE(0);
    if (draw < limit) return String(draw % range).padStart(n, "0");
  }
}

function uuidFrom(bytes: Buffer): string {
  const b = Buffer.from(bytes.subarray(0, 16));
  b[6] = (b[6]! & 0x0f) | 0x40; // version 4
  b[8] = (b[8]! & 0x3f) | 0x80; // RFC 4122 variant
  const hex = b.toString("hex");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** A link intent, as stored with a verification (see `ctx.linkIntent`). */
export interface LinkIntent {
  /** The hash of the session token that asked (the proof must come from that session). */
  sessionHash: string;
  sessionId: string;
  personId: string;
  merge: boolean;
  /** Step-up: the proof must be of an identity the person already has; it refreshes the session and attaches nothing. */
  reauthenticate?: boolean;
}

export interface IssueInput {
  /** Your word for what it is (`nonce`, `link`, `code`, `state`, `challenge`); rows are also keyed by provider. */
  purpose: string;
  ttlSeconds: number;
  /** Default `"token"`: 32 CSPRNG bytes, base64url (256 bits). */
  secret?: SecretKind;
  /** What it is for (an address, a user id): `consumeCode` and `supersede` look by it. */
  subject?: string;
  /** JSON handed back on consume. Stored as is: never put a secret here. */
  data?: Record<string, unknown>;
  /** `true`: end the subject's other live ones of this purpose; a number n: keep only the newest n live. */
  supersede?: boolean | number;
  /** Tries `consumeCode` allows (every try counts, right or wrong). */
  maxAttempts?: number;
  /** Binds it to this browser: an HttpOnly cookie is set on `res`; consume must present it. */
  browser?: { req: Request; res: Response };
  /** From `ctx.linkIntent`: the proof then attaches an identity to the asking person instead of signing in. */
  link?: LinkIntent;
}

export interface Issued {
  id: string;
  secret: string;
  issuedAt: Date;
  expiresAt: Date;
  /** With `browser`: the binding value now in the browser's cookie (a secret only that browser holds), as `consume` hands it back. */
  binding?: string;
}

/** Why a consume failed. `browser`: the secret exists but another browser asked for it (it is left unused). */
export type VerificationFailureReason = "unknown" | "used" | "expired" | "superseded" | "exhausted" | "browser";

export type VerificationResult =
  | {
      ok: true;
      id: string;
      subject: string | null;
      data: Record<string, unknown>;
      createdAt: Date;
      expiresAt: Date;
      link: LinkIntent | null;
      /** The browser-binding value that matched (bound verifications only): a secret only that browser holds. */
      binding: string | null;
    }
  | { ok: false; reason: VerificationFailureReason };

export interface ConsumeInput {
  purpose: string;
  secret: string;
  /** When given, the secret must have been issued for this subject (else `unknown`, and it stays unused). */
  subject?: string;
  /** For a bound secret: the request, whose cookie must hold the binding. */
  browser?: Request;
  /** End the subject's other live secrets of these purposes in the same commit ("using one link ends the rest"). */
  endOthers?: readonly string[];
  /** Run on this transaction (one commit with the caller's writes). */
  q?: Queryable;
}

/** The single-use secret store a provider gets as `ctx.verifications`. */
export interface Verifications {
  /** Issues a secret: stores its hash, returns it once. */
  issue(input: IssueInput, q?: Queryable): Promise<Issued>;
  /** Uses a secret up, atomically: of any number of concurrent consumes exactly one gets `ok: true`. */
  consume(input: ConsumeInput): Promise<VerificationResult>;
  /**
   * Checks a short code against the subject's newest live one of `purpose`: every try counts (atomically,
   * also in parallel), the comparison is constant-time, and after `maxAttempts` tries the code is dead.
   * A wrong code answers `unknown`.
   */
  consumeCode(input: { purpose: string; subject: string; code: string; endOthers?: readonly string[]; q?: Queryable }): Promise<VerificationResult>;
  /** The same answer as `consume`, using nothing up (a confirm page before the real use). */
  peek(input: { purpose: string; secret: string; subject?: string; q?: Queryable }): Promise<VerificationResult>;
  /**
   * A value made elsewhere (a signed payload's hash), accepted once until `until`: the first call
   * answers `ok`, every later one `used`. Refuse values older than `until` yourself: rows are pruned
   * a day after `until`.
   */
  remember(input: { purpose: string; value: string; until: Date; q?: Queryable }): Promise<{ ok: true } | { ok: false; reason: "used" }>;
  /** Ends the subject's live secrets of these purposes (e.g. when the subject changes). Returns how many. */
  supersede(input: { purposes: readonly string[]; subject: string; exceptId?: string; q?: Queryable }): Promise<number>;
}

type Row = {
  id: string;
  subject: string | null;
  data: Record<string, unknown>;
  link: LinkIntent | null;
  created_at: Date;
  expires_at: Date;
  consumed_at: Date | null;
  superseded_at: Date | null;
  browser_hash: string | null;
  secret_hash: string;
  attempts: number;
  max_attempts: number | null;
};

const PURPOSE = /^[a-z][a-z0-9_-]{0,31}$/;
const MAX_BINDINGS = 5;

export interface VerificationDeps {
  db: Database;
  provider: string;
  clock: () => Date;
  random: (bytes: number) => Buffer;
  browserCookie: BrowserCookie;
}

/**
 * The browser-binding cookie: one per app, holding up to five random values (several sign-ins under
 * way in tabs); a fresh value at each issue, never adopting one the browser came with (a planted or
 * seen value must not finish someone else's attempt). On https it is `__Host-` (only this exact
 * origin can set it); on plain http only the newest value is kept.
 */
export interface BrowserCookie {
  values(req: Request): string[];
  add(req: Request, res: Response, value: string, maxAgeSeconds: number): void;
}

export function createBrowserCookie(baseURL: URL, basePath: string, production = false): BrowserCookie {
  const https = baseURL.protocol === "https:";
  const name = https ? "__Host-erebus_bind" : "erebus_bind";
  const path = https ? "/" : basePath;
  const values = (req: Request): string[] => {
    let raw: string | undefined;
    try {
      raw = req.headers.cookie ? parseCookies(req.headers.cookie)[name] : undefined;
    } catch {
      return [];
    }
    return (raw ?? "").split(".").filter((v) => v.length === 43 && BASE64URL.test(v)).slice(-MAX_BINDINGS);
  };
  return {
    values,
    add(req, res, value, maxAgeSeconds) {
      const kept = https ? values(req).slice(-(MAX_BINDINGS - 1)) : [];
      res.append("Set-Cookie", serializeCookie(name, [...kept, value].join("."), { httpOnly: true, sameSite: "lax", secure: https || production, path, maxAge: Math.max(maxAgeSeconds, 900) }));
    },
  };
}

const failure = (reason: VerificationFailureReason): VerificationResult => ({ ok: false, reason });

function success(row: Row, binding: string | null): VerificationResult {
  return { ok: true, id: row.id, subject: row.subject, data: row.data ?? {}, createdAt: row.created_at, expiresAt: row.expires_at, link: row.link, binding };
}

/** Why a looked-up row cannot be used now (or undefined: it can). */
function reasonOf(row: Row | undefined, input: { subject?: string }, browserHashes: readonly string[] | undefined, now: Date): VerificationFailureReason | undefined {
  if (!row || (input.subject !== undefined && row.subject !== input.subject)) return "unknown";
  if (row.browser_hash !== null && !(browserHashes ?? []).includes(row.browser_hash)) return "browser";
  if (row.consumed_at) return "used";
  if (row.superseded_at) return "superseded";
  if (row.max_attempts !== null && row.attempts > row.max_attempts) return "exhausted";
  if (row.expires_at <= now) return "expired";
  return undefined;
}

const COLUMNS = "id, subject, data, link, created_at, expires_at, consumed_at, superseded_at, browser_hash, secret_hash, attempts, max_attempts";

/** Deletes up to 160 rows (any provider's) that ended more than a day before `now`. */
const housekeeping = (q: Queryable, now: Date) =>
  // SKIP LOCKED: a row another transaction holds (a consume ending a subject's others) is left for
  // the next sweep; waiting on it, with the locks this one holds, could deadlock (a 500).
  q.query("DELETE FROM erebus_verifications WHERE id IN (SELECT id FROM erebus_verifications WHERE expires_at < $1 LIMIT 160 FOR UPDATE SKIP LOCKED)", [new Date(now.getTime() - 86_400_000)]);

/** The store for one provider (rows keyed by its id). */
export function createVerifications(deps: VerificationDeps): Verifications {
  const { db, provider, clock, random, browserCookie } = deps;

  const checkPurpose = (purpose: unknown, where: string) => {
    if (typeof purpose !== "string" || !PURPOSE.test(purpose)) throw new TypeError(`${where}: purpose must be a short lower-case token, e.g. "nonce"`);
  };
  /** Runs `fn` on the caller's transaction, or in one of its own. */
  const inTransaction = <T>(q: Queryable | undefined, fn: (tx: Queryable) => Promise<T>): Promise<T> => (q && q !== db ? fn(q) : db.transaction(fn));

  /** Serialises the uses of one subject's secrets: two used at once would each wait on the other's "end the rest". */
  const lockSubject = (tx: Queryable, subject: string) => tx.query("SELECT pg_advisory_xact_lock(hashtext($1))", [`erebus_verification:${provider}:${subject}`]);

  async function endOthers(tx: Queryable, purposes: readonly string[] | undefined, row: Row, now: Date): Promise<void> {
    if (!purposes?.length || row.subject === null) return;
    await tx.query(
      `UPDATE erebus_verifications SET superseded_at = $4
       WHERE provider = $1 AND purpose = ANY($2::text[]) AND subject = $3 AND id <> $5 AND consumed_at IS NULL AND superseded_at IS NULL`,
      [provider, purposes, row.subject, now, row.id],
    );
  }

  async function find(q: Queryable, purpose: string, secretHash: string): Promise<Row | undefined> {
    const { rows } = await q.query<Row>(`SELECT ${COLUMNS} FROM erebus_verifications WHERE provider = $1 AND purpose = $2 AND secret_hash = $3`, [provider, purpose, secretHash]);
    return rows[0];
  }

  return {
    async issue(input, q = db) {
      checkPurpose(input.purpose, "verifications.issue");
      if (!Number.isInteger(input.ttlSeconds) || input.ttlSeconds < 1 || input.ttlSeconds > 30 * 86_400) {
        throw new TypeError("verifications.issue: ttlSeconds must be an integer from 1 to 2592000 (30 days)");
      }
      if (input.maxAttempts !== undefined && (!Number.isInteger(input.maxAttempts) || input.maxAttempts < 1)) throw new TypeError("verifications.issue: maxAttempts must be a positive integer");
      const kind = input.secret ?? "token";
      const id = uuidFrom(random(16));
      let secret: string;
      if (kind === "token") secret = random(32).toString("base64url");
      else if ("value" in kind) {
        if (typeof kind.value !== "string" || kind.value.length < 16) throw new TypeError("verifications.issue: secret.value must be a string of at least 16 characters");
        secret = kind.value;
      } else if ("digits" in kind) secret = digitsOf(random, kind.digits);
      else secret = randomOf(random, kind.alphabet, kind.length);
      // A short code is hashed with its row id: equal codes of two subjects never collide, and a
      // table copy cannot be matched against one precomputed list of all codes.
      const secretHash = typeof kind === "object" && "digits" in kind ? sha256(`${id}:${secret}`) : sha256(secret);
      const issuedAt = clock();
      const expiresAt = new Date(issuedAt.getTime() + input.ttlSeconds * 1000);
      let binding: string | undefined;
      if (input.browser) binding = random(32).toString("base64url");
      const insert = `INSERT INTO erebus_verifications (id, provider, purpose, secret_hash, subject, data, browser_hash, link, max_attempts, created_at, expires_at)
           VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7, $8::jsonb, $9, $10, $11)`;
      const params: unknown[] = [id, provider, input.purpose, secretHash, input.subject ?? null, JSON.stringify(input.data ?? {}), binding ? sha256(binding) : null, input.link ? JSON.stringify(input.link) : null, input.maxAttempts ?? null, issuedAt, expiresAt];
      // Housekeeping, bounded and on about one issue in eight: a few rows (any provider's) that ended
      // more than a day ago. Far more are pruned than issued on average.
      const sweep = random(1)[0]! < 32;
      if (input.subject !== undefined && typeof input.supersede === "number") {
        // Keep the newest n: the count must see the new row, so it is a statement after the insert.
        await inTransaction(q, async (tx) => {
          await tx.query(insert, params);
          await tx.query(
            `UPDATE erebus_verifications SET superseded_at = $4
             WHERE id IN (SELECT id FROM erebus_verifications
                          WHERE provider = $1 AND purpose = $2 AND subject = $3 AND consumed_at IS NULL AND superseded_at IS NULL AND expires_at > $4
                          ORDER BY seq DESC OFFSET $5)`,
            [provider, input.purpose, input.subject, issuedAt, Math.max(1, input.supersede as number)],
          );
          if (sweep) await housekeeping(tx, issuedAt);
        });
      } else {
        // One statement (one round trip, one commit when `q` is not a transaction): the subject's
        // other secrets superseded, the sweep and the insert together.
        const ctes: string[] = [];
        if (input.subject !== undefined && input.supersede === true) {
          ctes.push(`ended AS (UPDATE erebus_verifications SET superseded_at = $10
             WHERE provider = $2 AND purpose = $3 AND subject = $5 AND consumed_at IS NULL AND superseded_at IS NULL)`);
        }
        if (sweep) {
          // SKIP LOCKED: see housekeeping.
          ctes.push(`swept AS (DELETE FROM erebus_verifications WHERE id IN (SELECT id FROM erebus_verifications WHERE expires_at < $${params.length + 1} LIMIT 160 FOR UPDATE SKIP LOCKED))`);
          params.push(new Date(issuedAt.getTime() - 86_400_000));
        }
        await q.query(ctes.length ? `WITH ${ctes.join(",\n")}\n${insert}` : insert, params);
      }
      if (binding && input.browser) browserCookie.add(input.browser.req, input.browser.res, binding, input.ttlSeconds);
      return { id, secret, issuedAt, expiresAt, ...(binding ? { binding } : {}) };
    },

    async consume(input) {
      checkPurpose(input.purpose, "verifications.consume");
      if (typeof input.secret !== "string" || input.secret.length === 0 || input.secret.length > 1024) return failure("unknown");
      const secretHash = sha256(input.secret);
      const bindings = input.browser ? browserCookie.values(input.browser) : [];
      const browserHashes = new Map(bindings.map((b) => [sha256(b), b]));
      const now = clock();
      const consumeOn = async (tx: Queryable) => {
        if (input.endOthers?.length) {
          const found = await find(tx, input.purpose, secretHash);
          if (found?.subject != null) await lockSubject(tx, found.subject);
        }
        const { rows } = await tx.query<Row>(
          `UPDATE erebus_verifications SET consumed_at = $4
           WHERE provider = $1 AND purpose = $2 AND secret_hash = $3 AND consumed_at IS NULL AND superseded_at IS NULL AND expires_at > $4
             AND ($5::text IS NULL OR subject = $5::text)
             AND (browser_hash IS NULL OR browser_hash = ANY($6::text[]))
           RETURNING ${COLUMNS}`,
          [provider, input.purpose, secretHash, now, input.subject ?? null, [...browserHashes.keys()]],
        );
        const row = rows[0];
        if (!row) return failure(reasonOf(await find(tx, input.purpose, secretHash), input, [...browserHashes.keys()], now) ?? "unknown");
        await endOthers(tx, input.endOthers, row, now);
        return success(row, row.browser_hash ? (browserHashes.get(row.browser_hash) ?? null) : null);
      };
      // Without others to end, one UPDATE is the whole use (the failure's reason is read after it).
      return input.endOthers?.length ? inTransaction(input.q, consumeOn) : consumeOn(input.q ?? db);
    },

    async consumeCode(input) {
      checkPurpose(input.purpose, "verifications.consumeCode");
      if (typeof input.code !== "string" || input.code.length === 0 || input.code.length > 64) return failure("unknown");
      const now = clock();
      // One transaction, and a wrong code is an answer, not a throw: on its own the try commits; on the
      // caller's transaction the caller commits it (ctx.signInOnce uses a refused secret up in a commit of its own).
      return inTransaction(input.q, async (tx) => {
        if (input.endOthers?.length) await lockSubject(tx, input.subject);
        // Every try counts, before the comparison, so a burst of parallel guesses all count.
        const { rows } = await tx.query<Row>(
          `UPDATE erebus_verifications SET attempts = attempts + 1
           WHERE id = (SELECT id FROM erebus_verifications
                       WHERE provider = $1 AND purpose = $2 AND subject = $3 AND consumed_at IS NULL AND superseded_at IS NULL
                       ORDER BY seq DESC LIMIT 1)
           RETURNING ${COLUMNS}`,
          [provider, input.purpose, input.subject],
        );
        const row = rows[0];
        if (!row) return failure("unknown");
        if (row.max_attempts !== null && row.attempts > row.max_attempts) return failure("exhausted");
        if (row.expires_at <= now) return failure("expired");
        // A `{ digits }` code is stored hashed with its row id; any other kind (`{ alphabet, length }`)
        // as itself. Both are compared, in constant time, so consumeCode works for either.
        const stored = Buffer.from(row.secret_hash, "hex");
        const matches = [sha256(`${row.id}:${input.code}`), sha256(input.code)].map((hash) => timingSafeEqual(Buffer.from(hash, "hex"), stored));
        if (!matches.includes(true)) return failure("unknown");
        const { rows: done } = await tx.query<Row>(
          `UPDATE erebus_verifications SET consumed_at = $2 WHERE id = $1 AND consumed_at IS NULL AND superseded_at IS NULL RETURNING ${COLUMNS}`,
          [row.id, now],
        );
        if (!done[0]) return failure("used");
        await endOthers(tx, input.endOthers, done[0], now);
        return success(done[0], null);
      });
    },

    async peek(input) {
      checkPurpose(input.purpose, "verifications.peek");
      if (typeof input.secret !== "string" || input.secret.length === 0 || input.secret.length > 1024) return failure("unknown");
      // On the caller's transaction when given: a look-up on another connection would wait for it (forever, on PGlite's one connection).
      const row = await find(input.q ?? db, input.purpose, sha256(input.secret));
      const reason = reasonOf(row, input, row?.browser_hash ? [row.browser_hash] : [], clock());
      return reason ? failure(reason) : success(row!, null);
    },

    async remember(input) {
      checkPurpose(input.purpose, "verifications.remember");
      if (typeof input.value !== "string" || input.value.length === 0) throw new TypeError("verifications.remember: value must be a non-empty string");
      const now = clock();
      const q = input.q ?? db;
      const { rows } = await q.query(
        `INSERT INTO erebus_verifications (id, provider, purpose, secret_hash, created_at, expires_at, consumed_at)
         VALUES ($1, $2, $3, $4, $5, $6, $5)
         ON CONFLICT ON CONSTRAINT erebus_verifications_secret_key DO NOTHING RETURNING id`,
        [uuidFrom(random(16)), provider, input.purpose, sha256(input.value), now, input.until],
      );
      // The same bounded housekeeping as issue: a provider that only remembers keeps the table small too.
      if (random(1)[0]! < 32) await housekeeping(q, now);
      return rows.length === 1 ? { ok: true } : { ok: false, reason: "used" };
    },

    async supersede(input) {
      for (const purpose of input.purposes) checkPurpose(purpose, "verifications.supersede");
      const { rowCount } = await (input.q ?? db).query(
        `UPDATE erebus_verifications SET superseded_at = $4
         WHERE provider = $1 AND purpose = ANY($2::text[]) AND subject = $3 AND ($5::uuid IS NULL OR id <> $5::uuid) AND consumed_at IS NULL AND superseded_at IS NULL`,
        [provider, input.purposes, input.subject, clock(), input.exceptId ?? null],
      );
      return rowCount;
    },
  };
}

/** Deletes verifications that ended more than `olderThanSeconds` ago; returns how many. */
export async function pruneVerifications(db: Queryable, now: Date, olderThanSeconds = 86_400): Promise<number> {
  const { rowCount } = await db.query("DELETE FROM erebus_verifications WHERE expires_at < $1", [new Date(now.getTime() - olderThanSeconds * 1000)]);
  return rowCount;
}
