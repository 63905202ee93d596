import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import type { Database } from "./db/types.js";
import type { SourceTypeDefinition } from "./source-types.js";

/** One SQL migration. `id` orders migrations within their owner: `0001_create_nonces`. */
export interface Migration {
  id: string;
  sql: string;
}

/** The migrations of one owner (`core` or a provider id), applied in `id` order. */
export interface MigrationSet {
  owner: string;
  migrations: readonly Migration[];
}

const MIGRATION_ID = /^\d{4}_[a-z0-9_]+$/;
// Any constant works; it only has to be the same for every Erebus instance on a database.
const MIGRATION_LOCK = 4_216_801_337;

function coreMigration(file: string): Migration {
  return { id: file.replace(/\.sql$/, ""), sql: readFileSync(new URL(`../migrations/${file}`, import.meta.url), "utf8") };
}

/** Core's own migrations. */
export const coreMigrations: MigrationSet = {
  owner: "core",
  migrations: [coreMigration("0001_user_references.sql"), coreMigration("0002_sessions_and_rate_limits.sql"), coreMigration("0003_session_notify.sql"), coreMigration("0004_verifications.sql"), coreMigration("0005_people.sql"), coreMigration("0006_rate_limits_unlogged.sql")],
};

const checksum = (sql: string) => createHash("sha256").update(sql).digest("hex");

/** Throws a TypeError when a set of migrations is malformed (bad id, duplicate). */
export function checkMigrationSet(set: MigrationSet, where: string): void {
  const seen = new Set<string>();
  for (const [index, migration] of set.migrations.entries()) {
    if (typeof migration?.id !== "string" || !MIGRATION_ID.test(migration.id)) {
      throw new TypeError(`${where}.migrations[${index}].id must look like "0001_create_things" (got ${JSON.stringify(migration?.id)})`);
    }
    if (typeof migration.sql !== "string" || migration.sql.trim() === "") {
      throw new TypeError(`${where}.migrations[${index}].sql must be a non-empty SQL string`);
    }
    if (seen.has(migration.id)) throw new TypeError(`${where}.migrations: "${migration.id}" appears twice`);
    seen.add(migration.id);
  }
}

export interface MigrateResult {
  /** `owner/id` of each migration applied by this call, in order. */
  applied: string[];
}

/**
 * Applies pending migrations in one transaction under a transaction-level advisory lock, so two
 * instances starting together apply each migration once (the second waits, then finds nothing to do).
 * Then writes the database rule of every given source type into `erebus_source_types`.
 * An applied migration whose SQL has since changed is an error: migrations are append-only.
 */
export async function runMigrations(
  db: Database,
  sets: readonly MigrationSet[],
  sourceTypes: readonly { definition: SourceTypeDefinition; owner: string }[] = [],
): Promise<MigrateResult> {
  return db.transaction(async (tx) => {
    await tx.query("SELECT pg_advisory_xact_lock($1)", [MIGRATION_LOCK]);
    await tx.exec(`CREATE TABLE IF NOT EXISTS erebus_migrations (
      owner TEXT NOT NULL,
      id TEXT NOT NULL,
      checksum TEXT NOT NULL,
      applied_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
      PRIMARY KEY (owner, id)
    )`);
    const { rows } = await tx.query<{ owner: string; id: string; checksum: string }>(
      "SELECT owner, id, checksum FROM erebus_migrations",
    );
    const done = new Map(rows.map((row) => [`${row.owner}/${row.id}`, row.checksum]));
    const applied: string[] = [];
    for (const set of sets) {
      const ordered = [...set.migrations].sort((a, b) => a.id.localeCompare(b.id));
      for (const migration of ordered) {
        const key = `${set.owner}/${migration.id}`;
        const sum = checksum(migration.sql);
        const previous = done.get(key);
        if (previous !== undefined) {
          if (previous !== sum) throw new Error(`migration ${key} was changed after it was applied; add a new migration instead`);
          continue;
        }
        try {
          await tx.exec(migration.sql);
        } catch (error) {
          throw new Error(`migration ${key} failed: ${(error as Error).message}`, { cause: error });
        }
        await tx.query("INSERT INTO erebus_migrations (owner, id, checksum) VALUES ($1, $2, $3)", [set.owner, migration.id, sum]);
        applied.push(key);
      }
    }
    for (const { definition, owner } of sourceTypes) {
      await tx.query(
        `INSERT INTO erebus_source_types (type, required, optional, registered_by)
         VALUES ($1, $2::jsonb, $3::jsonb, $4)
         ON CONFLICT (type) DO UPDATE
           SET required = EXCLUDED.required, optional = EXCLUDED.optional,
               registered_by = EXCLUDED.registered_by, updated_at = NOW()
         WHERE (erebus_source_types.required, erebus_source_types.optional, erebus_source_types.registered_by)
               IS DISTINCT FROM (EXCLUDED.required, EXCLUDED.optional, EXCLUDED.registered_by)`,
        [definition.type, JSON.stringify(definition.rule.required), JSON.stringify(definition.rule.optional), owner],
      );
    }
    return { applied };
  });
}
