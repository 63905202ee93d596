import type { Database, Queryable } from "@erebus/core/provider";

const TABLE = "erebus_passkey_credentials";

/**
 * One row per registered passkey: what verifying its assertions needs (the COSE public key, the
 * signature counter, the user handle) and what the person sees about it. No private material: the
 * private key never leaves the authenticator.
 */
export const credentialMigration = {
  id: "0001_credentials",
  sql: `CREATE TABLE ${TABLE} (
    credential_id TEXT PRIMARY KEY,
    user_id UUID NOT NULL REFERENCES user_references (id) ON DELETE CASCADE,
    user_handle TEXT NOT NULL,
    public_key TEXT NOT NULL,
    algorithm INTEGER NOT NULL,
    counter BIGINT NOT NULL DEFAULT 0 CHECK (counter >= 0),
    transports JSONB NOT NULL DEFAULT '[]'::jsonb,
    aaguid TEXT,
    device_type TEXT NOT NULL CHECK (device_type IN ('singleDevice', 'multiDevice')),
    backed_up BOOLEAN NOT NULL,
    attestation_format TEXT NOT NULL,
    name TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    last_used_at TIMESTAMPTZ
  );
  CREATE INDEX ${TABLE}_user_id_idx ON ${TABLE} (user_id);
  CREATE INDEX ${TABLE}_user_handle_idx ON ${TABLE} (user_handle);`,
};

export interface CredentialRow {
  credential_id: string;
  user_id: string;
  user_handle: string;
  public_key: string;
  algorithm: number;
  counter: number;
  transports: string[];
  aaguid: string | null;
  device_type: "singleDevice" | "multiDevice";
  backed_up: boolean;
  attestation_format: string;
  name: string;
  created_at: Date;
  last_used_at: Date | null;
}

/** What the person (and the app) sees of a passkey: no key material, no user handle. */
export interface PasskeyInfo {
  id: string;
  name: string;
  userId: string;
  deviceType: "singleDevice" | "multiDevice";
  backedUp: boolean;
  transports: string[];
  aaguid: string | null;
  createdAt: string;
  lastUsedAt: string | null;
}

export const toInfo = (row: CredentialRow): PasskeyInfo => ({
  id: row.credential_id,
  name: row.name,
  userId: row.user_id,
  deviceType: row.device_type,
  backedUp: row.backed_up,
  transports: row.transports,
  aaguid: row.aaguid,
  createdAt: new Date(row.created_at).toISOString(),
  lastUsedAt: row.last_used_at === null ? null : new Date(row.last_used_at).toISOString(),
});

// BIGINT comes back as a string from node-postgres; a counter is < 2^32 (WebAuthn §6.1.1).
const normalize = (row: CredentialRow): CredentialRow => ({ ...row, counter: Number(row.counter) });

export function credentialStore(db: Database) {
  return {
    async find(credentialId: string, q: Queryable = db): Promise<CredentialRow | null> {
      const { rows } = await q.query<CredentialRow>(`SELECT * FROM ${TABLE} WHERE credential_id = $1`, [credentialId]);
      return rows[0] ? normalize(rows[0]) : null;
    },

    async ofUsers(userIds: readonly string[], q: Queryable = db): Promise<CredentialRow[]> {
      const { rows } = await q.query<CredentialRow>(`SELECT * FROM ${TABLE} WHERE user_id = ANY($1::uuid[]) ORDER BY created_at, credential_id`, [userIds]);
      return rows.map(normalize);
    },

    /** Inserts a new credential; `false` when its id is already registered (a concurrent registration won). */
    async insert(row: Omit<CredentialRow, "last_used_at">, q: Queryable): Promise<boolean> {
      const { rows } = await q.query(
        `INSERT INTO ${TABLE} (credential_id, user_id, user_handle, public_key, algorithm, counter, transports, aaguid, device_type, backed_up, attestation_format, name, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8, $9, $10, $11, $12, $13)
         ON CONFLICT (credential_id) DO NOTHING RETURNING credential_id`,
        [row.credential_id, row.user_id, row.user_handle, row.public_key, row.algorithm, row.counter, JSON.stringify(row.transports), row.aaguid, row.device_type, row.backed_up, row.attestation_format, row.name, row.created_at],
      );
      return rows.length === 1;
    },

    /**
     * Records a verified use: the new counter (only forward, WebAuthn §7.2 step 21: a concurrent
     * sign-in that already moved it past this one makes this a rollback) and the backup state.
     * `false` when the counter would go backwards.
     */
    async recordUse(credentialId: string, userId: string, counter: number, backedUp: boolean, now: Date, q: Queryable): Promise<boolean> {
      const { rows } = await q.query(
        `UPDATE ${TABLE} SET counter = $3, backed_up = $4, last_used_at = $5
         WHERE credential_id = $1 AND user_id = $2 AND (counter < $3 OR ($3 = 0 AND counter = 0))
         RETURNING credential_id`,
        [credentialId, userId, counter, backedUp, now],
      );
      return rows.length === 1;
    },

    async rename(credentialId: string, userIds: readonly string[], name: string, q: Queryable = db): Promise<CredentialRow | null> {
      const { rows } = await q.query<CredentialRow>(`UPDATE ${TABLE} SET name = $3 WHERE credential_id = $1 AND user_id = ANY($2::uuid[]) RETURNING *`, [credentialId, userIds, name]);
      return rows[0] ? normalize(rows[0]) : null;
    },

    /** How many passkeys the person of this identity has (read in the registration's commit, where core holds the person's lock for a link). */
    async countOfPerson(userId: string, q: Queryable): Promise<number> {
      const { rows } = await q.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM ${TABLE} c JOIN user_references u ON u.id = c.user_id
         WHERE u.person_id = (SELECT person_id FROM user_references WHERE id = $1)`,
        [userId],
      );
      return rows[0]?.n ?? 0;
    },


    async remove(credentialId: string, userIds: readonly string[], q: Queryable = db): Promise<boolean> {
      const { rows } = await q.query(`DELETE FROM ${TABLE} WHERE credential_id = $1 AND user_id = ANY($2::uuid[]) RETURNING credential_id`, [credentialId, userIds]);
      return rows.length === 1;
    },
  };
}

export type CredentialStore = ReturnType<typeof credentialStore>;
