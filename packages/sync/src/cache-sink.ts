import { consoleLogger, runMigrations, type Database, type Logger, type Queryable } from "@erebus/core";
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

/**
 * Read-only by privileges, not by a setting a session can flip. The first migration's triggers let
 * through any transaction that ran `set_config('erebus.sync_writer', 'on', true)`, so every role that
 * could connect could write the cache (issue 10, finding 1). From here on the tables belong to the
 * role that runs the sink (the owner: the login role of the sink's connection), PUBLIC has no
 * privilege on them, readers get SELECT through `grantCacheReader` (`npx erebus sync grant-reader`),
 * and a statement-level trigger refuses writes from any role that is not a member of the owner, in
 * case someone grants more than SELECT by hand. A superuser is a member of every role: on PGlite
 * (one superuser) nothing separates writers from readers, which is why the embedded agents
 * database is for development.
 */
export const cachePrivilegesMigration = {
  id: "0002_cache_privileges",
  sql: `DROP TRIGGER IF EXISTS user_references_cache_read_only ON user_references_cache;
  DROP TRIGGER IF EXISTS user_references_cache_no_truncate ON user_references_cache;
  DROP TRIGGER IF EXISTS erebus_sync_tombstones_read_only ON erebus_sync_tombstones;
  DROP FUNCTION IF EXISTS user_references_cache_read_only();
  REVOKE ALL ON user_references_cache, erebus_sync_tombstones FROM PUBLIC;

  CREATE FUNCTION erebus_sync_cache_owner_only() RETURNS TRIGGER LANGUAGE plpgsql AS $$
  BEGIN
    IF NOT pg_has_role(current_user, (SELECT relowner FROM pg_class WHERE oid = TG_RELID), 'USAGE') THEN
      RAISE EXCEPTION '% is a read-only copy kept by the Erebus sync (only its owner writes it)', TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NULL;
  END
  $$;
  CREATE TRIGGER user_references_cache_owner_only BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON user_references_cache
    FOR EACH STATEMENT EXECUTE FUNCTION erebus_sync_cache_owner_only();
  CREATE TRIGGER erebus_sync_tombstones_owner_only BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON erebus_sync_tombstones
    FOR EACH STATEMENT EXECUTE FUNCTION erebus_sync_cache_owner_only();`,
};

/**
 * The owner-only trigger read `pg_class` and called `pg_has_role` through the writing session's
 * search_path, so a role granted a write by hand could put a temporary `pg_class` (its own
 * temporary schema, which PUBLIC may use) in front of the catalog, name itself the owner and
 * write (second review of finding 1). The function now names the catalog and runs with a fixed
 * search_path, temporary schema last.
 */
export const cacheTriggerSearchPathMigration = {
  id: "0003_cache_trigger_search_path",
  sql: `CREATE OR REPLACE FUNCTION erebus_sync_cache_owner_only() RETURNS TRIGGER LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp AS $$
  BEGIN
    IF NOT pg_catalog.pg_has_role(current_user, (SELECT c.relowner FROM pg_catalog.pg_class c WHERE c.oid = TG_RELID), 'USAGE') THEN
      RAISE EXCEPTION '% is a read-only copy kept by the Erebus sync (only its owner writes it)', TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NULL;
  END
  $$;`,
};

/**
 * The resync floor: the source's high-water mark at the last resync. Every row the resync copied
 * carries that version, so an event at or below it is older than the copy; but a reference deleted
 * before the resync has neither a row nor a tombstone in a cache the resync built, and an old insert
 * replayed from a topic (its HMAC still valid) would bring it back (second review of finding 1).
 * Upserts at or below the floor are ignored.
 */
export const cacheFloorMigration = {
  id: "0004_cache_resync_floor",
  sql: `CREATE TABLE erebus_sync_floor (
    one BOOLEAN PRIMARY KEY DEFAULT true CHECK (one),
    erebus_version BIGINT NOT NULL
  );
  REVOKE ALL ON erebus_sync_floor FROM PUBLIC;
  CREATE TRIGGER erebus_sync_floor_owner_only BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON erebus_sync_floor
    FOR EACH STATEMENT EXECUTE FUNCTION erebus_sync_cache_owner_only();`,
};

/**
 * People (DESIGN.md): `person_id`, mirrored so other services can key by person too. Rows copied
 * before it existed are persons of their own (as in the source, where existing rows were migrated
 * the same way); the next event or resync brings the real value.
 */
export const cachePersonMigration = {
  id: "0005_cache_person_id",
  sql: `ALTER TABLE user_references_cache ADD COLUMN person_id UUID;
  UPDATE user_references_cache SET person_id = id WHERE person_id IS NULL;
  ALTER TABLE user_references_cache ALTER COLUMN person_id SET NOT NULL;
  CREATE INDEX user_references_cache_person_id_idx ON user_references_cache (person_id);`,
};

/** Creates (or brings up to date) the cache tables in the target database, owned by the role that runs this. */
export function migrateCache(target: Database) {
  return runMigrations(target, [
    { owner: "sync-cache", migrations: [cacheMigration, cachePrivilegesMigration, cacheTriggerSearchPathMigration, cacheFloorMigration, cachePersonMigration] },
  ]);
}

// A PostgreSQL role name as `grant-reader` accepts it: what needs no quoting, and nothing a shell or
// a log would mangle. Quoted through format('%I') anyway.
const ROLE_NAME = /^[A-Za-z_][A-Za-z0-9_$-]{0,62}$/;

/**
 * Lets `role` read the cache and nothing else: USAGE on the schema, SELECT on the cache tables,
 * and any write privilege someone granted by hand taken back. Run it as the cache's owner (the
 * sink's role) or a superuser.
 */
export async function grantCacheReader(target: Queryable, role: string): Promise<void> {
  if (!ROLE_NAME.test(role)) throw new TypeError(`grant-reader: "${role}" is not a role name (letters, digits, _ $ -; at most 63)`);
  const { rows } = await target.query<{ exists: boolean }>("SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = $1) AS exists", [role]);
  if (!rows[0]!.exists) throw new TypeError(`grant-reader: there is no role "${role}" (CREATE ROLE ${role} LOGIN PASSWORD '…' first)`);
  // Every function named with its schema: this runs as the owner or a superuser, and an unqualified
  // unnest(text[]) or format(text, name, text) that a reader created in a schema it may write to
  // (public, on databases from PostgreSQL 14 and older) wins over pg_catalog's polymorphic and
  // variadic ones, and would run with those rights.
  const { rows: statements } = await target.query<{ sql: string }>(
    `SELECT pg_catalog.unnest(ARRAY[
       pg_catalog.format('GRANT USAGE ON SCHEMA %I TO %I', pg_catalog.current_schema(), $1::text),
       pg_catalog.format('REVOKE ALL ON user_references_cache, erebus_sync_tombstones FROM %I', $1::text),
       pg_catalog.format('GRANT SELECT ON user_references_cache, erebus_sync_tombstones TO %I', $1::text)
     ]) AS sql`,
    [role],
  );
  for (const { sql } of statements) await target.query(sql);
}

/**
 * Writes whole rows into the cache at the given versions. Normally only over an older version, never
 * over a newer tombstone, and never at or below the resync floor; `overwrite` (the resync) replaces
 * whatever is there.
 */
async function upsertRows(q: Queryable, rows: readonly { row: unknown; version: number }[], overwrite: boolean): Promise<void> {
  await q.query(
    `INSERT INTO user_references_cache (id, source_identifier, network, user_type, source_type, email, metadata, preferences,
                                        is_active, erebus_created_at, erebus_updated_at, erebus_version, synced_at, person_id)
     SELECT (r->>'id')::uuid, r->>'source_identifier', r->>'network', r->>'user_type', r->'source_type', r->>'email',
            NULLIF(r->'metadata', 'null'::jsonb), NULLIF(r->'preferences', 'null'::jsonb), (r->>'is_active')::boolean,
            (r->>'created_at')::timestamptz, (r->>'updated_at')::timestamptz, v, clock_timestamp(),
            coalesce((r->>'person_id')::uuid, (r->>'id')::uuid)
     FROM (SELECT e->'row' AS r, (e->>'version')::bigint AS v FROM jsonb_array_elements($1::jsonb) AS x(e)) AS events
     WHERE $2::boolean OR (NOT EXISTS (SELECT 1 FROM erebus_sync_tombstones t WHERE t.id = (r->>'id')::uuid AND t.erebus_version >= v)
                           AND v > coalesce((SELECT f.erebus_version FROM erebus_sync_floor f), 0))
     ON CONFLICT (id) DO UPDATE SET
       source_identifier = EXCLUDED.source_identifier, network = EXCLUDED.network, user_type = EXCLUDED.user_type,
       source_type = EXCLUDED.source_type, email = EXCLUDED.email, metadata = EXCLUDED.metadata,
       preferences = EXCLUDED.preferences, is_active = EXCLUDED.is_active, person_id = EXCLUDED.person_id,
       erebus_created_at = EXCLUDED.erebus_created_at, erebus_updated_at = EXCLUDED.erebus_updated_at,
       erebus_version = EXCLUDED.erebus_version, updated_at = clock_timestamp(), synced_at = clock_timestamp()
     WHERE $2::boolean OR user_references_cache.erebus_version < EXCLUDED.erebus_version`,
    [JSON.stringify(rows), overwrite],
  );
}

/** What `applyEvents` did with a batch. */
export interface ApplyResult {
  /** Events that passed the checks (an older or equal version still changes nothing). */
  accepted: number;
  /** Events refused as coming from the future: a `version` above the source's `high_water`. */
  refused: ChangeEnvelope[];
}

/**
 * Applies events to the cache, idempotently: an event older than (or as old as) what a row already
 * reflects changes nothing, so replays and at-least-once delivery never regress a row. A batch is
 * applied set-wise (three statements at most): per reference only its newest event in the batch
 * matters, since each event carries the whole row. An event whose `version` is above the
 * `high_water` the relay stamped on it (the highest version the source had issued) is refused and
 * returned, never applied: a version from the future would block every real update after it.
 */
export async function applyEvents(q: Queryable, events: readonly ChangeEnvelope[]): Promise<ApplyResult> {
  const refused: ChangeEnvelope[] = [];
  const newest = new Map<string, ChangeEnvelope>();
  for (const event of events) {
    if (event.high_water !== undefined && event.version > event.high_water) {
      refused.push(event);
      continue;
    }
    const seen = newest.get(event.reference_id);
    if (!seen || event.version > seen.version) newest.set(event.reference_id, event);
  }
  const deletes = [...newest.values()].filter((e) => e.op === "delete");
  const upserts = [...newest.values()].filter((e) => e.op !== "delete");
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
  if (upserts.length > 0) await upsertRows(q, upserts.map((e) => ({ row: e.row, version: e.version })), false);
  return { accepted: events.length - refused.length, refused };
}

export interface ResyncResult {
  /** Rows copied from the source. */
  rows: number;
  /** Cache rows that were ahead of the source (a version it never issued): forged, now repaired. */
  repaired: number;
  /** Cache rows whose reference no longer exists at the source, now removed. */
  removed: number;
  /** The source's high-water mark every copied row now carries as its version. */
  highWater: number;
}

/**
 * Re-copies every row of `user_references` from the source into the cache and overwrites what is
 * there, whatever its version: the repair for a forged row (one with a version from the future
 * blocks every real update) and for a source restored from a backup. It locks `user_references`
 * against writes (SHARE) while it reads and copies, so that the snapshot holds every change up to
 * the high-water mark it stamps on the rows: later events are newer and apply, pending or
 * replayed ones are older and change nothing. Sign-ins that write wait for the copy meanwhile.
 */
export async function resyncCache(source: Database, target: Database): Promise<ResyncResult> {
  return source.transaction(async (stx) => {
    await stx.query("LOCK TABLE user_references IN SHARE MODE");
    const { rows: seq } = await stx.query<{ last_value: string | number; is_called: boolean }>("SELECT last_value, is_called FROM erebus_outbox_seq_seq");
    const highWater = Math.max(1, seq[0]!.is_called ? Number(seq[0]!.last_value) : 0);
    const { rows } = await stx.query<{ r: { id: string } }>("SELECT to_jsonb(u) AS r FROM user_references u ORDER BY id");
    const ids = rows.map(({ r }) => r.id);
    return target.transaction(async (tx) => {
      const { rows: ahead } = await tx.query<{ n: number }>("SELECT count(*)::int AS n FROM user_references_cache WHERE erebus_version > $1", [highWater]);
      // The copy is the state up to highWater: older events (a reference deleted before it has no
      // row and no tombstone here) must not apply afterwards. Set, not raised: a source restored
      // from a backup issues lower versions again.
      await tx.query(
        "INSERT INTO erebus_sync_floor (one, erebus_version) VALUES (true, $1) ON CONFLICT (one) DO UPDATE SET erebus_version = EXCLUDED.erebus_version",
        [highWater],
      );
      await tx.query("DELETE FROM erebus_sync_tombstones WHERE erebus_version > $1 OR id = ANY($2::uuid[])", [highWater, ids]);
      for (let i = 0; i < rows.length; i += 1000) {
        await upsertRows(tx, rows.slice(i, i + 1000).map(({ r }) => ({ row: r, version: highWater })), true);
      }
      const { rowCount: removed } = await tx.query(
        `WITH gone AS (DELETE FROM user_references_cache WHERE NOT (id = ANY($1::uuid[])) RETURNING id)
         INSERT INTO erebus_sync_tombstones (id, erebus_version) SELECT id, $2 FROM gone
         ON CONFLICT (id) DO UPDATE SET erebus_version = EXCLUDED.erebus_version`,
        [ids, highWater],
      );
      return { rows: rows.length, repaired: ahead[0]!.n, removed, highWater };
    });
  });
}

/**
 * The Postgres cache sink: applies each batch to `user_references_cache` in the target database
 * in one transaction. The target must be another database than the source. Connect it as the
 * cache's own role (the owner of the tables, which `migrate()` creates); readers connect as roles
 * that `grantReader(role)` allowed SELECT and nothing else.
 *
 * @example
 * const sink = postgresCacheSink(await connectDatabase(process.env.AGENTS_DATABASE_URL!));
 */
export function postgresCacheSink(target: Database, options: { logger?: Logger } = {}) {
  const logger = options.logger ?? consoleLogger();
  let refused = 0;
  return {
    name: "postgres-cache",
    migrate: () => migrateCache(target),
    async deliver(events: readonly ChangeEnvelope[]): Promise<void> {
      const result = await target.transaction((tx) => applyEvents(tx, events));
      if (result.refused.length > 0) {
        refused += result.refused.length;
        logger.warn("sync cache: refused events with a version above the source's high-water mark", {
          events: result.refused.slice(0, 10).map((e) => ({ id: e.id, version: e.version, high_water: e.high_water })),
        });
      }
    },
    /** Counters since this sink was created. */
    stats: () => ({ refused }),
    /** `resyncCache(source, target)`: re-copies every row and overwrites the cache. */
    resync: (source: Database) => resyncCache(source, target),
    /** `grantCacheReader(target, role)`: SELECT on the cache for `role`, nothing more. */
    grantReader: (role: string) => grantCacheReader(target, role),
    close: () => target.close(),
  } satisfies SyncSink & Record<string, unknown>;
}
