import { runMigrations, type Database, type Queryable } from "@erebus/core";
import type { ChangeEnvelope, SyncSink } from "./envelope.js";

/**
 * The agents database's copy of `user_references`: the seed's sync-cache table (the same columns,
 * plus `synced_at`, `erebus_created_at`, `erebus_updated_at`) and `erebus_version`, the version of
 * the event the row reflects, which keeps replays and late events from rolling a row back.
 * Writes that do not come from the sync are refused by the database.
 */
export const cacheMigration = {
  id: "0001_user_references_cache",
  sql: `CREATE TABLE user_references_cache (
    id UUID PRIMARY KEY,
    source_identifier VARCHAR NOT NULL,
    network VARCHAR NOT NULL,
    user_type VARCHAR NOT NULL DEFAULT 'external',
    source_type JSONB NOT NULL,
    email VARCHAR,
    metadata JSONB DEFAULT '{}'::jsonb,
    preferences JSONB DEFAULT '{}'::jsonb,
    is_active BOOLEAN DEFAULT true,
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    synced_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    erebus_created_at TIMESTAMPTZ NOT NULL,
    erebus_updated_at TIMESTAMPTZ NOT NULL,
    erebus_version BIGINT NOT NULL
  );
  CREATE INDEX user_references_cache_identity_idx ON user_references_cache (network, source_identifier);
  CREATE INDEX user_references_cache_email_idx ON user_references_cache (email);
  CREATE INDEX user_references_cache_source_type_gin ON user_references_cache USING GIN (source_type);

  -- Deleted references, so that a late or replayed older event cannot bring a row back.
  CREATE TABLE erebus_sync_tombstones (id UUID PRIMARY KEY, erebus_version BIGINT NOT NULL);

  -- Read-only for everyone but the sync, which sets erebus.sync_writer for its own transactions.
  CREATE FUNCTION user_references_cache_read_only() RETURNS TRIGGER LANGUAGE plpgsql AS $$
  BEGIN
    IF coalesce(current_setting('erebus.sync_writer', true), '') <> 'on' THEN
      RAISE EXCEPTION '% is a read-only copy kept by the Erebus sync', TG_TABLE_NAME USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
  END
  $$;
  CREATE TRIGGER user_references_cache_read_only BEFORE INSERT OR UPDATE OR DELETE ON user_references_cache
    FOR EACH ROW EXECUTE FUNCTION user_references_cache_read_only();
  CREATE TRIGGER user_references_cache_no_truncate BEFORE TRUNCATE ON user_references_cache
    FOR EACH STATEMENT EXECUTE FUNCTION user_references_cache_read_only();
  CREATE TRIGGER erebus_sync_tombstones_read_only BEFORE INSERT OR UPDATE OR DELETE ON erebus_sync_tombstones
    FOR EACH ROW EXECUTE FUNCTION user_references_cache_read_only();`,
};

/** Creates (or brings up to date) the cache tables in the target database. */
export function migrateCache(target: Database) {
  return runMigrations(target, [{ owner: "sync-cache", migrations: [cacheMigration] }]);
}

/**
 * Applies events to the cache, idempotently: an event older than (or as old as) what a row already
 * reflects changes nothing, so replays and at-least-once delivery never regress a row. A batch is
 * applied set-wise (three statements at most): per reference only its newest event in the batch
 * matters, since each event carries the whole row.
 */
export async function applyEvents(q: Queryable, events: readonly ChangeEnvelope[]): Promise<void> {
  const newest = new Map<string, ChangeEnvelope>();
  for (const event of events) {
    const seen = newest.get(event.reference_id);
    if (!seen || event.version > seen.version) newest.set(event.reference_id, event);
  }
  const deletes = [...newest.values()].filter((e) => e.op === "delete");
  const upserts = [...newest.values()].filter((e) => e.op !== "delete");
  await q.query("SELECT set_config('erebus.sync_writer', 'on', true)");
  if (deletes.length > 0) {
    const ids = deletes.map((e) => e.reference_id);
    const versions = deletes.map((e) => e.version);
    await q.query(
      `INSERT INTO erebus_sync_tombstones (id, erebus_version) SELECT * FROM unnest($1::uuid[], $2::bigint[])
       ON CONFLICT (id) DO UPDATE SET erebus_version = GREATEST(erebus_sync_tombstones.erebus_version, EXCLUDED.erebus_version)`,
      [ids, versions],
    );
    await q.query(
      `DELETE FROM user_references_cache c USING unnest($1::uuid[], $2::bigint[]) AS d(id, v)
       WHERE c.id = d.id AND c.erebus_version < d.v`,
      [ids, versions],
    );
  }
  if (upserts.length > 0) {
    await q.query(
      `INSERT INTO user_references_cache (id, source_identifier, network, user_type, source_type, email, metadata, preferences,
                                          is_active, erebus_created_at, erebus_updated_at, erebus_version, synced_at)
       SELECT (r->>'id')::uuid, r->>'source_identifier', r->>'network', r->>'user_type', r->'source_type', r->>'email',
              NULLIF(r->'metadata', 'null'::jsonb), NULLIF(r->'preferences', 'null'::jsonb), (r->>'is_active')::boolean,
              (r->>'created_at')::timestamptz, (r->>'updated_at')::timestamptz, v, clock_timestamp()
       FROM (SELECT e->'row' AS r, (e->>'version')::bigint AS v FROM jsonb_array_elements($1::jsonb) AS x(e)) AS events
       WHERE NOT EXISTS (SELECT 1 FROM erebus_sync_tombstones t WHERE t.id = (r->>'id')::uuid AND t.erebus_version >= v)
       ON CONFLICT (id) DO UPDATE SET
         source_identifier = EXCLUDED.source_identifier, network = EXCLUDED.network, user_type = EXCLUDED.user_type,
         source_type = EXCLUDED.source_type, email = EXCLUDED.email, metadata = EXCLUDED.metadata,
         preferences = EXCLUDED.preferences, is_active = EXCLUDED.is_active,
         erebus_created_at = EXCLUDED.erebus_created_at, erebus_updated_at = EXCLUDED.erebus_updated_at,
         erebus_version = EXCLUDED.erebus_version, updated_at = clock_timestamp(), synced_at = clock_timestamp()
       WHERE user_references_cache.erebus_version < EXCLUDED.erebus_version`,
      [JSON.stringify(upserts.map((e) => ({ row: e.row, version: e.version })))],
    );
  }
}

/**
 * The Postgres cache sink: applies each batch to `user_references_cache` in the target database
 * in one transaction. The target must be another database than the source.
 *
 * @example
 * const sink = postgresCacheSink(await connectDatabase(process.env.AGENTS_DATABASE_URL!));
 */
export function postgresCacheSink(target: Database): SyncSink & { migrate(): ReturnType<typeof migrateCache> } {
  return {
    name: "postgres-cache",
    migrate: () => migrateCache(target),
    deliver: (events) => target.transaction((tx) => applyEvents(tx, events)),
    close: () => target.close(),
  };
}
