import type { Queryable } from "@erebus/core";

const AGENT = JSON.stringify({ type: "system_agent", agent_type: "task_runner", capabilities: ["run"] });

/** The source table, as JSON, in id order. */
export async function sourceRows(db: Queryable) {
  const { rows } = await db.query(
    `SELECT id, source_identifier, network, user_type, source_type, email, metadata, preferences, is_active, created_at, updated_at
     FROM user_references ORDER BY id`,
  );
  return JSON.parse(JSON.stringify(rows));
}
/** The cache table with the source's own timestamps, comparable to sourceRows(). */
export async function cacheRows(db: Queryable) {
  const { rows } = await db.query(
    `SELECT id, source_identifier, network, user_type, source_type, email, metadata, preferences, is_active,
            erebus_created_at AS created_at, erebus_updated_at AS updated_at
     FROM user_references_cache ORDER BY id`,
  );
  return JSON.parse(JSON.stringify(rows));
}
/** Inserts a system agent by hand in SQL (no Erebus API involved). */
export const insertAgent = (db: Queryable, name: string) =>
  db.query<{ id: string }>(
    "INSERT INTO user_references (source_identifier, network, user_type, source_type) VALUES ($1, 'system', 'agent', $2::jsonb) RETURNING id",
    [name, AGENT],
  );

