import { consoleLogger, type Database, type Logger } from "@erebus/core";
import { envelopeSchema, type ChangeEnvelope, type SyncSink } from "./envelope.js";
import { OUTBOX_CHANNEL } from "./outbox.js";

export interface SyncRelayOptions {
  /** The Erebus database (where `user_references` and the outbox live). */
  source: Database;
  sink: SyncSink;
  /** Most events per batch. */
  batchSize?: number;
  /** Milliseconds between polls when no NOTIFY arrives (the fallback). */
  pollInterval?: number;
  /** Backoff after a failure: `base * 2^n` ms with jitter, at most `max`. */
  backoff?: { base?: number; max?: number };
  /** Delivered events are deleted after this many seconds. */
  retention?: number;
  logger?: Logger;
  clock?: () => Date;
}

export interface SyncStatus {
  pending: number;
  /** Age of the oldest undelivered event: how far the sink is behind. */
  lagMs: number;
  oldestPendingSeq: number | null;
  lastDeliveredAt: string | null;
  lastError: string | null;
  /** Events this relay delivered since it started. */
  delivered: number;
  running: boolean;
}

// Namespace of the advisory locks that give one relay at a time a reference's events.
const LOCK_NAMESPACE = 0x45524253; // "ERBS"

interface OutboxRow {
  seq: number;
  reference_id: string;
  op: "insert" | "update" | "delete";
  row_data: Record<string, unknown>;
  created_at: Date;
}

/**
 * Delivers outbox events to a sink, at least once and in order per reference. Several relays may
 * run at once (in one process or many): each batch takes transaction-level advisory locks on the
 * references it handles, so two relays never deliver events of one reference concurrently, and an
 * event stays pending until the transaction that delivered it commits. Pending is read as
 * "not delivered", never as "after the last sequence number seen", so an event whose transaction
 * commits after a later-numbered one is still found. LISTEN/NOTIFY wakes the relay; polling is the
 * fallback; failures back off exponentially.
 *
 * @example
 * const relay = createSyncRelay({ source: auth.db, sink: postgresCacheSink(agentsDb) });
 * relay.start();
 */
export function createSyncRelay(options: SyncRelayOptions) {
  const { source, sink } = options;
  const batchSize = options.batchSize ?? 500;
  const pollInterval = options.pollInterval ?? 1000;
  const backoffBase = options.backoff?.base ?? 100;
  const backoffMax = options.backoff?.max ?? 30_000;
  const retention = options.retention ?? 7 * 86_400;
  const logger = options.logger ?? consoleLogger();
  const clock = options.clock ?? (() => new Date());

  let running = false;
  let loop: Promise<void> | undefined;
  let wake: (() => void) | undefined;
  let unlisten: (() => Promise<void>) | undefined;
  let delivered = 0;
  let lastError: string | null = null;
  let lastPrune = 0;

  const toEnvelope = (row: OutboxRow): ChangeEnvelope =>
    envelopeSchema.parse({
      v: 1,
      id: String(row.seq),
      op: row.op,
      reference_id: row.reference_id,
      version: Number(row.seq),
      occurred_at: new Date(row.created_at).toISOString(),
      row: row.row_data,
    });

  /** One batch: lock references, read their pending events in order, deliver, mark delivered, commit. Returns how many. */
  async function runOnce(): Promise<number> {
    let seqs: number[] = [];
    try {
      const count = await source.transaction(async (tx) => {
        const { rows: refs } = await tx.query<{ reference_id: string }>(
          `SELECT reference_id FROM (
             SELECT reference_id, min(seq) AS first FROM erebus_outbox WHERE delivered_at IS NULL
             GROUP BY reference_id ORDER BY first LIMIT $1
           ) AS candidates
           WHERE pg_try_advisory_xact_lock($2, hashtext(reference_id::text))`,
          [batchSize, LOCK_NAMESPACE],
        );
        if (refs.length === 0) return 0;
        const { rows } = await tx.query<OutboxRow>(
          `SELECT seq, reference_id, op, row_data, created_at FROM erebus_outbox
           WHERE delivered_at IS NULL AND reference_id = ANY($1::uuid[])
           ORDER BY seq LIMIT $2 FOR UPDATE`,
          [refs.map((r) => r.reference_id), batchSize],
        );
        if (rows.length === 0) return 0;
        seqs = rows.map((r) => Number(r.seq));
        await sink.deliver(rows.map(toEnvelope));
        await tx.query("UPDATE erebus_outbox SET delivered_at = $2 WHERE seq = ANY($1::bigint[])", [seqs, clock()]);
        return rows.length;
      });
      delivered += count;
      if (count > 0) lastError = null;
      return count;
    } catch (error) {
      lastError = `${sink.name}: ${(error as Error).message}`;
      if (seqs.length > 0) {
        await source
          .query("UPDATE erebus_outbox SET attempts = attempts + 1, last_error = $2 WHERE seq = ANY($1::bigint[])", [seqs, lastError.slice(0, 1000)])
          .catch(() => undefined);
      }
      throw error;
    }
  }

  async function prune(): Promise<number> {
    const cutoff = new Date(clock().getTime() - retention * 1000);
    const { rowCount } = await source.query(
      "DELETE FROM erebus_outbox WHERE seq IN (SELECT seq FROM erebus_outbox WHERE delivered_at < $1 LIMIT 5000)",
      [cutoff],
    );
    return rowCount;
  }

  const sleep = (ms: number) =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        wake = undefined;
        resolve();
      }
      wake = done;
    });

  async function listen(): Promise<void> {
    if (unlisten) return;
    try {
      unlisten = await source.listen(OUTBOX_CHANNEL, () => wake?.());
    } catch (error) {
      logger.warn("sync relay: LISTEN failed, polling", { error: (error as Error).message });
    }
  }

  async function run(): Promise<void> {
    let failures = 0;
    while (running) {
      try {
        await listen();
        const count = await runOnce();
        failures = 0;
        if (Date.now() - lastPrune > 60_000) {
          lastPrune = Date.now();
          await prune();
        }
        if (count < batchSize && running) await sleep(pollInterval);
      } catch (error) {
        failures++;
        // A dead LISTEN connection is re-opened on the next round.
        const stale = unlisten;
        unlisten = undefined;
        await stale?.().catch(() => undefined);
        const delay = Math.min(backoffMax, backoffBase * 2 ** Math.min(failures - 1, 16)) * (0.75 + Math.random() * 0.5);
        logger.warn("sync relay: batch failed, backing off", { sink: sink.name, failures, delayMs: Math.round(delay), error: (error as Error).message });
        if (running) await sleep(delay);
      }
    }
  }

  return {
    runOnce,
    prune,
    /** Starts the loop in the background; `stop()` ends it. */
    start(): void {
      if (running) return;
      running = true;
      loop = run();
    },
    /** Stops after the batch in flight; resolves when the loop has ended. */
    async stop(): Promise<void> {
      running = false;
      wake?.();
      await loop;
      loop = undefined;
      await unlisten?.().catch(() => undefined);
      unlisten = undefined;
    },
    /** Delivers everything pending now (tests, scripts): runs batches until one comes back empty. */
    async drain(): Promise<number> {
      let total = 0;
      for (;;) {
        const count = await runOnce();
        total += count;
        if (count === 0) return total;
      }
    },
    async status(): Promise<SyncStatus> {
      const { rows } = await source.query<{ pending: number; oldest: Date | null; oldest_seq: number | null; last_delivered: Date | null; last_error: string | null }>(
        `SELECT count(*)::int AS pending, min(created_at) AS oldest, min(seq) AS oldest_seq,
                (SELECT max(delivered_at) FROM erebus_outbox) AS last_delivered,
                (SELECT last_error FROM erebus_outbox WHERE delivered_at IS NULL AND last_error IS NOT NULL ORDER BY seq LIMIT 1) AS last_error
         FROM erebus_outbox WHERE delivered_at IS NULL`,
      );
      const row = rows[0]!;
      return {
        pending: row.pending,
        lagMs: row.oldest ? Math.max(0, clock().getTime() - new Date(row.oldest).getTime()) : 0,
        oldestPendingSeq: row.oldest_seq === null ? null : Number(row.oldest_seq),
        lastDeliveredAt: row.last_delivered ? new Date(row.last_delivered).toISOString() : null,
        lastError: lastError ?? row.last_error,
        delivered,
        running,
      };
    },
  };
}

export type SyncRelay = ReturnType<typeof createSyncRelay>;
