import { createHmac } from "node:crypto";
import { AuthError, findPgUnsafeString, PG_TEXT_MESSAGE, type ProviderContext, type Queryable, type UserReference } from "@erebus/core/provider";
import { apiKeyErrors } from "./errors.js";
import { BASE62, generateKey, ID_LENGTH } from "./key.js";
import type { ResolvedApiKeyOptions } from "./options.js";
import type { ApiKeySourceType } from "./source-type.js";

/**
 * NOTIFY channel for revocations and rotations (the payload is the key id) and creations (`+` and
 * the key id: it clears a remembered miss of that id on every instance, and nothing else).
 */
export const KEY_CHANGED_CHANNEL = "erebus_api_key_changed";
export const CREATED_PREFIX = "+";

export const apiKeyMigration = {
  id: "0001_api_keys",
  sql: `CREATE TABLE erebus_api_keys (
    id TEXT PRIMARY KEY,
    -- The identity the key authenticates as: its own row (network api) or a system agent's.
    user_id UUID NOT NULL REFERENCES user_references (id) ON DELETE CASCADE,
    -- The signed-in user who created it; NULL for keys made from the CLI or the API.
    owner_id UUID REFERENCES user_references (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    prefix TEXT NOT NULL,
    last4 TEXT NOT NULL,
    -- Only hashes of secrets (HMAC-SHA-256 with the server pepper, or SHA-256).
    secret_hash TEXT NOT NULL,
    previous_secret_hash TEXT,
    previous_valid_until TIMESTAMPTZ,
    scopes JSONB NOT NULL DEFAULT '[]'::jsonb CHECK (jsonb_typeof(scopes) = 'array'),
    expires_at TIMESTAMPTZ,
    revoked_at TIMESTAMPTZ,
    last_used_at TIMESTAMPTZ,
    created_at TIMESTAMPTZ NOT NULL,
    created_by TEXT NOT NULL,
    rotated_at TIMESTAMPTZ
  );
  CREATE INDEX erebus_api_keys_owner_id_idx ON erebus_api_keys (owner_id);
  CREATE INDEX erebus_api_keys_user_id_idx ON erebus_api_keys (user_id);`,
};

/** Which pepper hashed each key; NULL for keys made before this column existed (not checked). */
export const pepperFingerprintMigration = {
  id: "0002_pepper_fingerprint",
  sql: "ALTER TABLE erebus_api_keys ADD COLUMN pepper_fingerprint TEXT",
};

/**
 * Names the pepper without revealing it: the first 64 bits of HMAC-SHA-256(pepper, a constant),
 * and the same of the empty key when there is no pepper. Stored with each key so that a process
 * with another pepper (a CLI run without the app's environment, say) is caught instead of minting
 * keys that never verify. It is an oracle for guesses of the pepper, which is why the pepper must
 * be long and random; knowing the pepper still leaves the 131-bit secret to guess.
 */
export function pepperFingerprint(pepper: string | undefined): string {
  return createHmac("sha256", pepper ?? "").update("erebus api key pepper fingerprint v1").digest("hex").slice(0, 16);
}

/**
 * People (issue 13): a key belongs to a person. Its own identity row carries its owner's
 * `person_id`, so every identity of the person sees and manages it, `req.auth.personId` is the
 * owner's for a program acting with it, and a merge moves it with the rest. Existing keys join
 * their owner's person here.
 */
export const keysToPersonMigration = {
  id: "0003_keys_belong_to_a_person",
  sql: `UPDATE user_references k SET person_id = o.person_id
        FROM erebus_api_keys a JOIN user_references o ON o.id = a.owner_id
        WHERE k.id = a.user_id AND k.network = 'api' AND k.person_id IS DISTINCT FROM o.person_id;`,
};

/** Longest grace period a rotation may give the old secret. */
export const MAX_GRACE_SECONDS = 30 * 86_400;
const KEY_ID = new RegExp(`^[0-9A-Za-z]{${ID_LENGTH}}$`);
/** An id that cannot be a key's is "not found" without a query (and never reaches PostgreSQL). */
function checkId(id: string): void {
  if (typeof id !== "string" || !KEY_ID.test(id)) throw apiKeyErrors.create("ERR_APIKEY_NOT_FOUND");
}

/** A key as listed: never the secret, never its hash. */
export interface ApiKeyInfo {
  id: string;
  name: string;
  prefix: string;
  last4: string;
  scopes: string[];
  userId: string;
  ownerId: string | null;
  createdBy: string;
  createdAt: string;
  expiresAt: string | null;
  lastUsedAt: string | null;
  revokedAt: string | null;
  rotatedAt: string | null;
  /** Until when the secret replaced by the last rotation keeps working (null: never rotated). */
  previousValidUntil: string | null;
  /** Which pepper hashed the secret ({@link pepperFingerprint}); null for keys older than the column. */
  pepperFingerprint: string | null;
}

interface KeyRow {
  id: string;
  user_id: string;
  owner_id: string | null;
  name: string;
  prefix: string;
  last4: string;
  scopes: string[];
  created_by: string;
  created_at: Date;
  expires_at: Date | null;
  last_used_at: Date | null;
  revoked_at: Date | null;
  rotated_at: Date | null;
  previous_valid_until: Date | null;
  pepper_fingerprint: string | null;
}

const iso = (date: Date | null) => (date ? date.toISOString() : null);
const toInfo = (row: KeyRow): ApiKeyInfo => ({
  id: row.id,
  name: row.name,
  prefix: row.prefix,
  last4: row.last4,
  scopes: row.scopes,
  userId: row.user_id,
  ownerId: row.owner_id,
  createdBy: row.created_by,
  createdAt: row.created_at.toISOString(),
  expiresAt: iso(row.expires_at),
  lastUsedAt: iso(row.last_used_at),
  revokedAt: iso(row.revoked_at),
  rotatedAt: iso(row.rotated_at),
  previousValidUntil: iso(row.previous_valid_until),
  pepperFingerprint: row.pepper_fingerprint,
});

/** A key whose own identity row belongs to the person `$1` (its owner's person, moved by merges). */
const OF_PERSON = "user_id IN (SELECT id FROM user_references WHERE person_id = $1)";

const INFO_COLUMNS =
  "id, user_id, owner_id, name, prefix, last4, scopes, created_by, created_at, expires_at, last_used_at, revoked_at, rotated_at, previous_valid_until, pepper_fingerprint";

export interface CreateKeyInput {
  name: string;
  scopes: string[];
  /** Days until it expires; never when left out. */
  expiresInDays?: number | undefined;
  /** The signed-in user creating it, or null (CLI, programmatic). The key joins this user's person. */
  ownerId: string | null;
  /** `user:<id>` or `cli`. */
  createdBy: string;
  /** Bind the key to this system agent's row (`registerSystemAgent`) instead of a row of its own. */
  agentId?: string | undefined;
}

/** The key store: creation, listing, revocation, rotation, and the look-up verification needs. */
export function createKeyStore(ctx: ProviderContext, options: ResolvedApiKeyOptions) {
  const hashSecret = (secret: string) => (options.pepper ? createHmac("sha256", options.pepper).update(secret).digest("hex") : ctx.hash(secret));

  const fingerprint = pepperFingerprint(options.pepper);
  /** Key ids and secrets: core's uniform sampler over the key alphabet. */
  const draw = (length: number) => ctx.randomToken({ alphabet: BASE62, length });
  const notify = (q: Queryable, id: string) => q.query("SELECT pg_notify($1, $2)", [KEY_CHANGED_CHANNEL, id]);

  return {
    hashSecret,
    /** This process's {@link pepperFingerprint}. */
    fingerprint,

    /**
     * The pepper fingerprints of live keys (not revoked; legacy keys without one are left out), with
     * how many keys carry each, the one whose newest key was made or rotated last first.
     */
    async fingerprintsInUse(): Promise<{ fingerprint: string; keys: number }[]> {
      const { rows } = await ctx.db.query<{ fingerprint: string; keys: number }>(
        `SELECT pepper_fingerprint AS fingerprint, count(*)::int AS keys FROM erebus_api_keys
         WHERE pepper_fingerprint IS NOT NULL AND revoked_at IS NULL
         GROUP BY 1 ORDER BY max(COALESCE(rotated_at, created_at)) DESC, 1`,
      );
      return rows;
    },

    /** Creates a key and its identity in one transaction; the only time the secret is returned. */
    async create(input: CreateKeyInput): Promise<{ key: string; info: ApiKeyInfo }> {
      // The routes' schemas check this too; the programmatic API and the CLI come here directly, and
      // PostgreSQL refuses U+0000 and unpaired surrogates (a 500 otherwise).
      const unsafe = findPgUnsafeString(input);
      if (unsafe) {
        const field = unsafe.map(String).join(".");
        throw AuthError.of("ERR_BODY_INVALID", { detail: `${field}: ${PG_TEXT_MESSAGE}`, extensions: { field } });
      }
      const generated = generateKey(options.prefix, draw);
      const now = ctx.clock();
      const expiresAt = input.expiresInDays === undefined ? null : new Date(now.getTime() + input.expiresInDays * 86_400_000);
      // Looked up before the transaction: on PGlite (one connection) a query outside a running
      // transaction waits for it to end.
      const agent = input.agentId === undefined ? undefined : await ctx.findUser("system", input.agentId);
      if (input.agentId !== undefined && !agent) throw apiKeyErrors.create("ERR_APIKEY_NOT_FOUND", { detail: `no system agent "${input.agentId}"` });
      const owner = input.ownerId ? await ctx.getUser(input.ownerId) : null;
      if (input.ownerId && !owner) throw apiKeyErrors.create("ERR_APIKEY_NOT_FOUND", { detail: `no user "${input.ownerId}"` });
      const row = await ctx.db.transaction(async (tx) => {
        if (owner) {
          // Creates of one person take turns, so two of them cannot both count N - 1 and both insert
          // (count-then-insert is a race otherwise). Held until this transaction ends.
          await tx.query("SELECT pg_advisory_xact_lock(hashtext('erebus_api_keys.owner'), hashtext($1::text))", [owner.person_id]);
          const { rows } = await tx.query<{ n: number }>(
            `SELECT count(*)::int AS n FROM erebus_api_keys a JOIN user_references k ON k.id = a.user_id
             WHERE k.person_id = $1 AND a.owner_id IS NOT NULL AND a.revoked_at IS NULL AND (a.expires_at IS NULL OR a.expires_at > $2)`,
            [owner.person_id, now],
          );
          if (rows[0]!.n >= options.maxKeysPerUser) throw apiKeyErrors.create("ERR_APIKEY_LIMIT");
        }
        let identity: UserReference;
        if (agent) {
          identity = agent;
        } else {
          const sourceType: ApiKeySourceType = {
            type: "api_key",
            name: input.name,
            scope: input.scopes,
            metadata: { permissions: input.scopes, owner_reference_id: input.ownerId, key_prefix: options.prefix },
          };
          identity = await ctx.resolveIdentity(
            { network: "api", sourceIdentifier: generated.id, userType: "api", sourceType },
            { db: tx, ...(owner ? { personId: owner.person_id } : {}) },
          );
        }
        const { rows } = await tx.query<KeyRow>(
          `INSERT INTO erebus_api_keys (id, user_id, owner_id, name, prefix, last4, secret_hash, scopes, expires_at, created_at, created_by, pepper_fingerprint)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb, $9, $10, $11, $12) RETURNING ${INFO_COLUMNS}`,
          [generated.id, identity.id, input.ownerId, input.name, options.prefix, generated.key.slice(-4), hashSecret(generated.secret), JSON.stringify(input.scopes), expiresAt, now, input.createdBy, fingerprint],
        );
        // Instances that recently saw this id as unknown forget that now, not after negativeCacheTtl.
        await notify(tx, CREATED_PREFIX + generated.id);
        return rows[0]!;
      });
      ctx.logger.info("api key created", { keyId: row.id, userId: row.user_id, createdBy: input.createdBy });
      return { key: generated.key, info: toInfo(row) };
    },

    /**
     * Keys of a person (made by any of its identities: `personId`), of an owner (or, with `ownerId`
     * null, keys no web user owns), or all, newest first.
     */
    async list(filter: { personId: string } | { ownerId: string | null } | { all: true }): Promise<ApiKeyInfo[]> {
      const { rows } =
        "all" in filter
          ? await ctx.db.query<KeyRow>(`SELECT ${INFO_COLUMNS} FROM erebus_api_keys ORDER BY created_at DESC, id`)
          : "personId" in filter
            ? await ctx.db.query<KeyRow>(
                `SELECT ${INFO_COLUMNS} FROM erebus_api_keys WHERE owner_id IS NOT NULL AND ${OF_PERSON} ORDER BY created_at DESC, id`,
                [filter.personId],
              )
            : await ctx.db.query<KeyRow>(
                `SELECT ${INFO_COLUMNS} FROM erebus_api_keys WHERE owner_id IS NOT DISTINCT FROM $1 ORDER BY created_at DESC, id`,
                [filter.ownerId],
              );
      return rows.map(toInfo);
    },

    /** Revokes a key at once, on every instance. `personId` undefined skips the ownership check (CLI, API). */
    async revoke(id: string, personId: string | undefined): Promise<ApiKeyInfo> {
      checkId(id);
      const row = await ctx.db.transaction(async (tx) => {
        const { rows } = await tx.query<KeyRow>(
          `UPDATE erebus_api_keys SET revoked_at = COALESCE(revoked_at, $3)
           WHERE id = $1 AND ($2::uuid IS NULL OR (owner_id IS NOT NULL AND ${OF_PERSON.replace("$1", "$2::uuid")})) RETURNING ${INFO_COLUMNS}`,
          [id, personId ?? null, ctx.clock()],
        );
        if (!rows[0]) throw apiKeyErrors.create("ERR_APIKEY_NOT_FOUND");
        await notify(tx, id);
        return rows[0];
      });
      ctx.logger.info("api key revoked", { keyId: id });
      return toInfo(row);
    },

    /**
     * Gives a key a new secret (same id, same identity). The old secret keeps working for
     * `graceSeconds` (0: it stops at once, on every instance), then never again; rotating again
     * within the grace ends the older one at once.
     */
    async rotate(id: string, personId: string | undefined, graceSeconds: number): Promise<{ key: string; info: ApiKeyInfo }> {
      if (!Number.isInteger(graceSeconds) || graceSeconds < 0 || graceSeconds > MAX_GRACE_SECONDS) {
        throw new TypeError(`graceSeconds must be a whole number of seconds from 0 (the old secret stops at once) to ${MAX_GRACE_SECONDS}`);
      }
      checkId(id);
      const now = ctx.clock();
      const fresh = generateKey(options.prefix, draw, id);
      const row = await ctx.db.transaction(async (tx) => {
        const { rows } = await tx.query<KeyRow>(
          `UPDATE erebus_api_keys
           SET previous_secret_hash = secret_hash, previous_valid_until = $4,
               secret_hash = $5, last4 = $6, rotated_at = $3, pepper_fingerprint = $7
           WHERE id = $1 AND ($2::uuid IS NULL OR (owner_id IS NOT NULL AND ${OF_PERSON.replace("$1", "$2::uuid")}))
             AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $3)
           RETURNING ${INFO_COLUMNS}`,
          [id, personId ?? null, now, new Date(now.getTime() + graceSeconds * 1000), hashSecret(fresh.secret), fresh.key.slice(-4), fingerprint],
        );
        if (!rows[0]) throw apiKeyErrors.create("ERR_APIKEY_NOT_FOUND", { detail: "no such active key" });
        await notify(tx, id);
        return rows[0];
      });
      ctx.logger.info("api key rotated", { keyId: id, graceSeconds });
      return { key: fresh.key, info: toInfo(row) };
    },
  };
}

export type KeyStore = ReturnType<typeof createKeyStore>;
