/** A row set returned by {@link Queryable.query}. */
export interface QueryResult<Row> {
  rows: Row[];
  /** Rows returned by a SELECT/RETURNING, or rows touched by INSERT/UPDATE/DELETE. */
  rowCount: number;
}

/** What both engines (and a transaction on either) can do. */
export interface Queryable {
  /** One statement with `$1`-style parameters. Pass JSON values already stringified and cast them (`$1::jsonb`). */
  query<Row = Record<string, unknown>>(sql: string, params?: readonly unknown[]): Promise<QueryResult<Row>>;
  /** Several statements, no parameters (simple query protocol). Used for migrations. */
  exec(sql: string): Promise<void>;
}

/**
 * The small interface Erebus needs from a database. Two implementations ship:
 * PGlite (embedded, in-process) and node-postgres (a PostgreSQL server).
 */
export interface Database extends Queryable {
  readonly engine: "pglite" | "postgres";
  /** Runs `fn` in one transaction on one connection: COMMIT when it resolves, ROLLBACK when it throws. */
  transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T>;
  /**
   * Calls `onNotify` for each NOTIFY on `channel`; resolves to an unsubscribe function. `onLost` is
   * called (once) when the listening connection is lost: notifications stop until the caller listens again.
   */
  listen(channel: string, onNotify: (payload: string) => void, onLost?: () => void): Promise<() => Promise<void>>;
  /** Closes the connection(s). Only closes what Erebus opened itself. */
  close(): Promise<void>;
}
