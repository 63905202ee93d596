import { randomUUID } from "node:crypto";
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
  /**
   * Milliseconds a relay's claim on a batch lasts (the longest `sink.deliver` may take before
   * another relay delivers those events again). A relay that died leaves its events to the next one
   * after this.
   */
  claimTimeout?: number;
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

// Gives back this relay's own claims (never another relay's) on events not yet delivered.
const RELEASE_OWN = "UPDATE erebus_outbox SET claimed_by = NULL, claim_until = NULL WHERE seq = ANY($1::bigint[]) AND claimed_by = $2 AND delivered_at IS NULL";

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
 * run at once (in one process or many): a relay claims a batch in a short transaction (a lease on
 * the events of the references it takes; no other relay takes a reference while a live claim is on
 * it), delivers with no source transaction open, then marks the events delivered in a second short
 * transaction. Pending is read as "not delivered", never as "after the last sequence number seen",
 * so an event whose transaction commits after a later-numbered one is still found.
 * LISTEN/NOTIFY wakes the relay; polling is the fallback; failures back off exponentially.
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
  const claimTimeout = options.claimTimeout ?? 60_000;
  for (const [name, value] of Object.entries({ batchSize, pollInterval, claimTimeout })) {
    if (!Number.isInteger(value) || value <= 0) throw new TypeError(`createSyncRelay: option "${name}" must be a positive integer (got ${String(value)})`);
  }
  if (!Number.isFinite(retention) || retention < 0) throw new TypeError(`createSyncRelay: option "retention" must be seconds, 0 or more (got ${String(retention)})`);
  // Who holds a claim: unique per relay instance, so a restarted relay never mistakes a dead one's claims for its own.
  const relayId = randomUUID();

  let running = false;
  let loop: Promise<void> | undefined;
  let wake: (() => void) | undefined;
  // Set by every NOTIFY: one that arrives while a batch is being delivered (nobody asleep to wake)
  // must not be lost until the next poll.
  let notified = false;
  let unlisten: (() => Promise<void>) | undefined;
  let delivered = 0;
  let lastError: string | null = null;
  let lastPrune = 0;
  // Sequence numbers this relay claimed and failed to give back (the source went away mid-batch).
  let stranded: number[] = [];

  const toEnvelope = (row: OutboxRow, highWater: number): ChangeEnvelope =>
    envelopeSchema.parse({
      v: 1,
      id: String(row.seq),
      op: row.op,
      reference_id: row.reference_id,
      version: Number(row.seq),
      high_water: highWater,
      occurred_at: new Date(row.created_at).toISOString(),
      row: row.row_data,
    });

  /**
   * Claims a batch in one short transaction: the references with the oldest pending events that no
   * other relay is claiming (a transaction-level advisory lock per reference serializes the claim
   * itself; the check for live claims runs after the lock is held, so it sees a claim committed
   * just before), and their pending events in sequence order. Also reads the source's high-water
   * mark, the highest version it has issued, which goes into every envelope.
   */
  async function claim(): Promise<{ rows: OutboxRow[]; highWater: number }> {
    return source.transaction(async (tx) => {
      const { rows: refs } = await tx.query<{ reference_id: string }>(
        `SELECT reference_id FROM (
           SELECT reference_id, min(seq) AS first FROM erebus_outbox WHERE delivered_at IS NULL
           GROUP BY reference_id HAVING bool_and(claim_until IS NULL OR claim_until < clock_timestamp())
           ORDER BY first LIMIT $1
         ) AS candidates
         WHERE pg_try_advisory_xact_lock($2, hashtext(reference_id::text))`,
        [batchSize, LOCK_NAMESPACE],
      );
      if (refs.length === 0) return { rows: [], highWater: 0 };
      const { rows } = await tx.query<OutboxRow>(
        `WITH picked AS (
           SELECT seq FROM erebus_outbox
           WHERE delivered_at IS NULL AND reference_id = ANY($1::uuid[])
             AND reference_id NOT IN (SELECT reference_id FROM erebus_outbox
                                      WHERE delivered_at IS NULL AND claim_until >= clock_timestamp() AND reference_id = ANY($1::uuid[]))
           ORDER BY seq LIMIT $2
         )
         UPDATE erebus_outbox o SET claimed_by = $3, claim_until = clock_timestamp() + make_interval(secs => $4::double precision / 1000)
         FROM picked WHERE o.seq = picked.seq
         RETURNING o.seq, o.reference_id, o.op, o.row_data, o.created_at`,
        [refs.map((r) => r.reference_id), batchSize, relayId, claimTimeout],
      );
      if (rows.length === 0) return { rows: [], highWater: 0 };
      const { rows: seq } = await tx.query<{ last_value: string | number }>("SELECT last_value FROM erebus_outbox_seq_seq");
      rows.sort((x, y) => Number(x.seq) - Number(y.seq));
      return { rows, highWater: Number(seq[0]!.last_value) };
    });
  }

  /**
   * One batch: claim (short transaction), deliver (no transaction open on the source: the sink's
   * network I/O never holds a row lock or, on PGlite, the only connection), mark delivered (a second
   * short transaction). If the relay dies between deliver and mark, the claim expires and the
   * events are delivered again: at least once, as before. Returns how many.
   */
  async function runOnce(): Promise<number> {
    let seqs: number[] = [];
    try {
      if (stranded.length > 0) {
        // Claims this relay could not give back (the source was away): given back now, so that their
        // events are not held off for the rest of claimTimeout by a relay that is no longer delivering them.
        await source.query(RELEASE_OWN, [stranded, relayId]);
        stranded = [];
      }
      const { rows, highWater } = await claim();
      if (rows.length === 0) return 0;
      seqs = rows.map((r) => Number(r.seq));
      await sink.deliver(rows.map((row) => toEnvelope(row, highWater)));
      await source.query(
        "UPDATE erebus_outbox SET delivered_at = $2, claimed_by = NULL, claim_until = NULL WHERE seq = ANY($1::bigint[]) AND delivered_at IS NULL",
        [seqs, clock()],
      );
      delivered += rows.length;
      lastError = null;
      return rows.length;
    } catch (error) {
      lastError = `${sink.name}: ${(error as Error).message}`;
      if (seqs.length > 0) {
        // Gives the claim back at once, so the retry (by this relay or another) need not wait for it to expire.
        const failed = seqs;
        await source
          .query(
            "UPDATE erebus_outbox SET attempts = attempts + 1, last_error = $2, claimed_by = NULL, claim_until = NULL WHERE seq = ANY($1::bigint[]) AND claimed_by = $3",
            [failed, lastError.slice(0, 1000), relayId],
          )
          .catch(() => void stranded.push(...failed));
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
      unlisten = await source.listen(OUTBOX_CHANNEL, () => {
        notified = true;
        wake?.();
      });
    } catch (error) {
      logger.warn("sync relay: LISTEN failed, polling", { error: (error as Error).message });
    }
  }

  async function run(): Promise<void> {
    let failures = 0;
    while (running) {
      try {
        await listen();
        notified = false;
        const count = await runOnce();
        failures = 0;
        if (Date.now() - lastPrune > 60_000) {
          lastPrune = Date.now();
          await prune();
        }
        if (count < batchSize && running && !notified) await sleep(pollInterval);
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
