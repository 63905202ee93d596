import { randomBytes } from "node:crypto";
import { AuthError, isConnectionError } from "./errors.js";
import { checkIdentity, type UserType, type VerifiedIdentity } from "./identities.js";
import type { Database, Queryable } from "./db/types.js";
import type { SourceTypeRegistry } from "./source-types.js";

/** One row of `user_references`, as the database returns it. */
export interface UserReference {
  id: string;
  /** The person this identity belongs to (its own id until it is linked to another identity). */
  person_id: string;
  source_identifier: string;
  network: string;
  user_type: UserType;
  source_type: { type: string } & Record<string, unknown>;
  email: string | null;
  metadata: Record<string, unknown> | null;
  preferences: Record<string, unknown> | null;
  is_active: boolean | null;
  created_at: Date;
  updated_at: Date;
}

/** NOTIFY channel core signals on when a user is deactivated through the API; the payload is the user id. */
export const USER_DEACTIVATED_CHANNEL = "erebus_user_deactivated";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Translates database failures into AuthErrors: a refused source_type is 400, an unreachable server 503. */
export function mapDatabaseError(error: unknown): unknown {
  if (error instanceof AuthError) return error;
  const pgError = error as { code?: string; message?: string };
  if (pgError?.code === "23514" && /^(source_type|metadata|preferences)/.test(pgError.message ?? "")) {
    return AuthError.of("ERR_SOURCE_TYPE_INVALID", { detail: pgError.message, cause: error });
  }
  if (isConnectionError(error)) return AuthError.of("ERR_DATABASE_UNAVAILABLE", { cause: error, retryAfter: 5 });
  return error;
}

/** What an identity upsert answers: the row, and whether it was created just now. */
export interface Upserted {
  user: UserReference;
  inserted: boolean;
}

/** A provider's identity upsert (its `emits` checked), as sign-in and linking call it inside their transaction. */
export type UpsertIdentity = (identity: VerifiedIdentity, options: { db: Queryable; personId?: string }) => Promise<Upserted>;

export interface SystemAgentInput {
  /** Stable id of the agent; a new random one when left out. Registering the same id again updates it. */
  agentId?: string;
  agentType: string;
  capabilities: string[];
  /** `agent` (default) or `system`. */
  userType?: "agent" | "system";
  /** Goes into `source_type.metadata` (e.g. `{ version: "1.0.0" }`). */
  metadata?: Record<string, unknown>;
}

/** The `user_references` operations: resolution, look-up, system agents, soft delete. */
export function createUserStore(db: Database, registry: SourceTypeRegistry, random: (bytes: number) => Buffer = randomBytes) {
  /**
   * Upserts an identity and returns its row. `personId` names the person a new row joins (an
   * existing row keeps its person: moving one is a link or merge, never a side effect of sign-in).
   */
  async function resolveIdentity(verified: VerifiedIdentity, options: { db?: Queryable; personId?: string } = {}): Promise<UserReference> {
    return (await upsertIdentity(verified, options)).user;
  }

  /** {@link resolveIdentity}, also saying whether the row was created just now. */
  async function upsertIdentity(verified: VerifiedIdentity, options: { db?: Queryable; personId?: string } = {}): Promise<Upserted> {
    const identity = checkIdentity(verified, registry);
    const q = options.db ?? db;
    if (options.personId !== undefined && !UUID.test(options.personId)) throw new TypeError("resolveIdentity: personId must be a UUID");
    let rows: (UserReference & { __inserted?: boolean })[];
    try {
      // Most sign-ins are of a returning identity that changed nothing: one small statement reads
      // the row, locked as the update would lock it (a deactivation or merge running now waits for
      // this commit; a share lock would deadlock two such sign-ins that then both update), and
      // writes nothing: no validation trigger, no new row version, no updated_at or sync event.
      // (Planned in ~30 µs where the statement below takes ~100-250 µs.)
      const { rows: found } = await q.query<UserReference & { __same: boolean }>(
        `SELECT *, (source_type = $3::jsonb AND ($4::varchar IS NULL OR email IS NOT DISTINCT FROM $4::varchar)) AS __same
           FROM user_references WHERE network = $1 AND source_identifier = $2 FOR NO KEY UPDATE`,
        [identity.network, identity.sourceIdentifier, JSON.stringify(identity.sourceType), identity.email],
      );
      if (found[0] && found[0].is_active !== false && found[0].__same) {
        const { __same: _same, ...user } = found[0];
        return { user, inserted: false };
      }
      // Otherwise one statement: N concurrent first sign-ins of one identity meet at the unique
      // constraint and yield one row. A repeat sign-in refreshes source_type and a newly verified
      // email, never the user-owned metadata and preferences; it reads the row again itself (the
      // same lock) and writes nothing if, by then, there is nothing to change. A deactivated row is
      // neither written nor returned.
      ({ rows } = await q.query<UserReference>(
        `WITH found AS (
           SELECT u AS r,
                  (u.source_type = $4::jsonb AND ($5::varchar IS NULL OR u.email IS NOT DISTINCT FROM $5::varchar)) AS same,
                  u.is_active IS DISTINCT FROM false AS active
             FROM user_references u WHERE u.network = $2::varchar AND u.source_identifier = $1::varchar
             FOR NO KEY UPDATE
         ), written AS (
           INSERT INTO user_references (source_identifier, network, user_type, source_type, email, metadata, person_id)
           SELECT $1::varchar, $2::varchar, $3::varchar, $4::jsonb, $5::varchar, COALESCE($6::jsonb, '{}'::jsonb), $7::uuid
            WHERE NOT EXISTS (SELECT 1 FROM found WHERE same OR NOT active)
           ON CONFLICT (network, source_identifier) DO UPDATE
             SET source_type = EXCLUDED.source_type,
                 email = COALESCE(EXCLUDED.email, user_references.email)
             WHERE user_references.is_active IS DISTINCT FROM false
           RETURNING *, (xmax = 0) AS __inserted
         )
         SELECT * FROM written
         UNION ALL
         SELECT (r).*, false AS __inserted FROM found WHERE same AND active`,
        [
          identity.sourceIdentifier,
          identity.network,
          identity.userType,
          JSON.stringify(identity.sourceType),
          identity.email,
          identity.metadata === undefined ? null : JSON.stringify(identity.metadata),
          options.personId ?? null,
        ],
      ));
    } catch (error) {
      throw mapDatabaseError(error);
    }
    const row = rows[0];
    if (!row) throw AuthError.of("ERR_USER_DEACTIVATED");
    const { __inserted: inserted, ...user } = row;
    return { user, inserted: inserted === true };
  }

  async function getUser(id: string): Promise<UserReference | null> {
    if (!UUID.test(id)) return null;
    const { rows } = await db.query<UserReference>("SELECT * FROM user_references WHERE id = $1", [id]);
    return rows[0] ?? null;
  }

  async function findUser(network: string, sourceIdentifier: string): Promise<UserReference | null> {
    const { rows } = await db.query<UserReference>(
      "SELECT * FROM user_references WHERE network = $1 AND source_identifier = $2",
      [network, sourceIdentifier],
    );
    return rows[0] ?? null;
  }

  async function setActive(q: Queryable, id: string, active: boolean): Promise<UserReference> {
    if (!UUID.test(id)) throw AuthError.of("ERR_USER_NOT_FOUND", { detail: "user ids are UUIDs" });
    const { rows } = await q.query<UserReference>("UPDATE user_references SET is_active = $2 WHERE id = $1 RETURNING *", [id, active]);
    if (!rows[0]) throw AuthError.of("ERR_USER_NOT_FOUND");
    return rows[0];
  }

  return {
    resolveIdentity,
    upsertIdentity,
    getUser,
    findUser,

    /**
     * Soft-deletes a user: `is_active = false` and every session revoked, in one transaction.
     * Sign-in is refused from then on (403 `ERR_USER_DEACTIVATED`); credentials checked against
     * the row (sessions, API keys) stop working at once.
     */
    deactivateUser(id: string, now: Date = new Date()): Promise<UserReference> {
      return db.transaction(async (tx) => {
        const row = await setActive(tx, id, false);
        await tx.query("UPDATE erebus_sessions SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL", [id, now]);
        // Delivered at commit: lets every instance drop what it cached about this user at once.
        await tx.query("SELECT pg_notify($1, $2)", [USER_DEACTIVATED_CHANNEL, id]);
        return row;
      });
    },

    /**
     * Lets a deactivated user sign in again. Sessions revoked at deactivation stay revoked (the user
     * signs in anew); credentials that providers check against `is_active`, such as API keys, work
     * again at once: revoke those first if they should not.
     */
    reactivateUser(id: string): Promise<UserReference> {
      return setActive(db, id, true);
    },

    /** Registers (or updates) a non-human principal: network `system`, user type `agent` by default. */
    registerSystemAgent(input: SystemAgentInput, options: { db?: Queryable } = {}): Promise<UserReference> {
      return resolveIdentity({
        network: "system",
        sourceIdentifier: input.agentId ?? `agent_${random(12).toString("base64url")}`,
        userType: input.userType ?? "agent",
        sourceType: {
          type: "system_agent",
          agent_type: input.agentType,
          capabilities: input.capabilities,
          metadata: input.metadata ?? {},
        },
      }, options);
    },
  };
}

export type UserStore = ReturnType<typeof createUserStore>;
