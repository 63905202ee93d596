/** Channel the outbox NOTIFYs on after each statement that added events. */
export const OUTBOX_CHANNEL = "erebus_outbox";

/**
 * The source side, a migration of the `sync` provider: every insert, update and delete of
 * `user_references`, by Erebus or by hand in SQL, writes an event in the same transaction.
 * Events of one reference get increasing `seq` in commit order: the trigger runs after the row
 * lock is taken, so a second change of the row waits for the first to commit before it gets its
 * number. Rows that exist when the migration runs are written as `insert` events (the snapshot).
 */
export const outboxMigration = {
  id: "0001_outbox",
  sql: `CREATE TABLE erebus_outbox (
    seq BIGSERIAL PRIMARY KEY,
    reference_id UUID NOT NULL,
    op TEXT NOT NULL CHECK (op IN ('insert', 'update', 'delete')),
    row_data JSONB NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
    delivered_at TIMESTAMPTZ,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT
  );
  CREATE INDEX erebus_outbox_pending_idx ON erebus_outbox (reference_id, seq) WHERE delivered_at IS NULL;
  CREATE INDEX erebus_outbox_delivered_idx ON erebus_outbox (delivered_at) WHERE delivered_at IS NOT NULL;

  CREATE FUNCTION erebus_outbox_capture() RETURNS TRIGGER LANGUAGE plpgsql AS $$
  BEGIN
    IF TG_OP = 'DELETE' THEN
      INSERT INTO erebus_outbox (reference_id, op, row_data) VALUES (OLD.id, 'delete', to_jsonb(OLD));
      RETURN OLD;
    END IF;
    INSERT INTO erebus_outbox (reference_id, op, row_data) VALUES (NEW.id, lower(TG_OP), to_jsonb(NEW));
    RETURN NEW;
  END
  $$;
  CREATE TRIGGER user_references_outbox
    AFTER INSERT OR UPDATE OR DELETE ON user_references
    FOR EACH ROW EXECUTE FUNCTION erebus_outbox_capture();

  CREATE FUNCTION erebus_outbox_notify() RETURNS TRIGGER LANGUAGE plpgsql AS $$
  BEGIN
    PERFORM pg_notify('${OUTBOX_CHANNEL}', '');
    RETURN NULL;
  END
  $$;
  CREATE TRIGGER erebus_outbox_notify AFTER INSERT ON erebus_outbox
    FOR EACH STATEMENT EXECUTE FUNCTION erebus_outbox_notify();

  INSERT INTO erebus_outbox (reference_id, op, row_data)
    SELECT id, 'insert', to_jsonb(u) FROM user_references u ORDER BY created_at, id;`,
};

/**
 * Claims, so that the relay holds no transaction open while the sink delivers (issue 10, finding
 * 13): a relay claims a reference's pending events in one short transaction (`claimed_by`, a lease
 * until `claim_until`), delivers them with no transaction open, then marks them delivered in a
 * second one. Another relay leaves a reference alone while any of its pending events is under a
 * live claim, which keeps delivery in order per reference; a relay that died leaves its claims to
 * expire, and its events are delivered again (at least once).
 */
export const outboxClaimsMigration = {
  id: "0002_outbox_claims",
  sql: `ALTER TABLE erebus_outbox ADD COLUMN claimed_by TEXT, ADD COLUMN claim_until TIMESTAMPTZ;`,
};
