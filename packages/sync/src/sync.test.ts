import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { connectDatabase, createAuth, silentLogger, type Database } from "@erebus/core";
import { engines, serverEngine } from "../../../test/engines.js";
import { applyEvents, postgresCacheSink } from "./cache-sink.js";
import type { ChangeEnvelope, SyncSink } from "./envelope.js";
import { createSyncRelay } from "./relay.js";
import { syncProvider } from "./sync-provider.js";
import { cacheRows, insertAgent, sourceRows } from "../../../test/sync.js";


/** Migrates an Erebus database with the sync outbox, and a cache in the target. */
async function prepare(source: Database, target: Database): Promise<[Database, Database]> {
  const auth = createAuth({ database: source, baseURL: "http://app.test", providers: [syncProvider()], migrate: true, logger: silentLogger });
  await auth.ready;
  await postgresCacheSink(target).migrate();
  return [source, target];
}

/** A sink that applies to the cache and records what it delivered, in delivery order. */
function recording(target: Database) {
  const cache = postgresCacheSink(target);
  const log: { ref: string; version: number }[] = [];
  const sink: SyncSink = {
    name: "recording-cache",
    async deliver(events) {
      await cache.deliver(events);
      for (const e of events) log.push({ ref: e.reference_id, version: e.version });
    },
  };
  return { sink, log, cache };
}

function expectOrderedPerReference(log: { ref: string; version: number }[]) {
  const last = new Map<string, number>();
  for (const { ref, version } of log) {
    expect(version).toBeGreaterThan(last.get(ref) ?? 0);
    last.set(ref, version);
  }
}

for (const engine of engines()) {
  describe(`sync: outbox → relay → cache on ${engine.name}`, () => {
    let source: Database;
    let target: Database;

    beforeAll(async () => {
      [source, target] = await prepare(await engine.create({ max: 20 }), await engine.create());
    });
    afterAll(async () => {
      await source?.close();
      await target?.close();
    });

    it("writes an event for every insert, update and delete, also by hand in SQL, in the same transaction", async () => {
      const before = (await source.query<{ n: number }>("SELECT count(*)::int AS n FROM erebus_outbox")).rows[0]!.n;
      const { rows } = await insertAgent(source, "outbox-1");
      const id = rows[0]!.id;
      await source.query("UPDATE user_references SET preferences = '{\"a\":1}' WHERE id = $1", [id]);
      await source.transaction(async (tx) => {
        await tx.query("UPDATE user_references SET is_active = false WHERE id = $1", [id]);
        await tx.query("SELECT 1/0").catch(() => undefined);
      }).catch(() => undefined);
      await source.transaction(async (tx) => {
        await tx.query("UPDATE user_references SET email = 'rolled@back.test' WHERE id = $1", [id]);
        throw new Error("rollback");
      }).catch(() => undefined);
      await source.query("DELETE FROM user_references WHERE id = $1", [id]);
      const { rows: events } = await source.query<{ op: string; row_data: { preferences: unknown; email: string | null }; seq: number }>(
        "SELECT op, row_data, seq FROM erebus_outbox WHERE reference_id = $1 ORDER BY seq",
        [id],
      );
      expect(events.map((e) => e.op)).toEqual(events.length === 4 ? ["insert", "update", "update", "delete"] : ["insert", "update", "delete"]);
      expect(events.some((e) => e.row_data.email === "rolled@back.test")).toBe(false);
      expect(events[1]!.row_data.preferences).toEqual({ a: 1 });
      expect((await source.query<{ n: number }>("SELECT count(*)::int AS n FROM erebus_outbox")).rows[0]!.n).toBeGreaterThan(before);
    });

    it("delivers everything into the cache, row for row, and pruning drops delivered events", async () => {
      for (let i = 0; i < 20; i++) await insertAgent(source, `bulk-${i}`);
      await source.query("UPDATE user_references SET metadata = jsonb_build_object('n', 1) WHERE source_identifier LIKE 'bulk-1%'");
      const relay = createSyncRelay({ source, sink: postgresCacheSink(target), batchSize: 7, logger: silentLogger, retention: 0 });
      await relay.drain();
      expect(await cacheRows(target)).toEqual(await sourceRows(source));
      const status = await relay.status();
      expect(status).toMatchObject({ pending: 0, lagMs: 0, lastError: null });
      expect(await relay.prune()).toBeGreaterThan(0);
      expect((await source.query<{ n: number }>("SELECT count(*)::int AS n FROM erebus_outbox")).rows[0]!.n).toBe(0);
    });

    it("mirrors person_id: a merge of two people (N rows in one transaction) reaches the cache as N events", async () => {
      const a = (await insertAgent(source, "person-a")).rows[0]!.id;
      const b = (await insertAgent(source, "person-b")).rows[0]!.id;
      const c = (await insertAgent(source, "person-c")).rows[0]!.id;
      await source.query("UPDATE user_references SET person_id = $1 WHERE id = $2", [b, c]); // c joined b
      const relay = createSyncRelay({ source, sink: postgresCacheSink(target), logger: silentLogger });
      await relay.drain();
      await source.query("UPDATE user_references SET person_id = $1 WHERE person_id = $2", [a, b]); // merge b into a
      await relay.drain();
      const { rows } = await target.query<{ id: string; person_id: string }>("SELECT id, person_id FROM user_references_cache WHERE id = ANY($1::uuid[]) ORDER BY source_identifier", [[a, b, c]]);
      expect(rows.map((r) => r.person_id)).toEqual([a, a, a]);
      expect(await cacheRows(target)).toEqual(await sourceRows(source));
    });

    it("applies idempotently: a replay or an older event never regresses a row, a delete stays deleted", async () => {
      const { rows } = await insertAgent(source, "idem");
      const id = rows[0]!.id;
      await source.query("UPDATE user_references SET email = 'v2@x.test' WHERE id = $1", [id]);
      const { rows: events } = await source.query<{ seq: number; op: "insert" | "update"; row_data: ChangeEnvelope["row"]; created_at: Date }>(
        "SELECT seq, op, row_data, created_at FROM erebus_outbox WHERE reference_id = $1 ORDER BY seq",
        [id],
      );
      const envelopes: ChangeEnvelope[] = events.map((e) => ({ v: 1, id: String(e.seq), op: e.op, reference_id: id, version: Number(e.seq), occurred_at: e.created_at.toISOString(), row: e.row_data }));
      await target.transaction((tx) => applyEvents(tx, envelopes));
      await target.transaction((tx) => applyEvents(tx, [...envelopes].reverse())); // replay, newest first
      await target.transaction((tx) => applyEvents(tx, [envelopes[0]!])); // the older event arrives late, alone
      const { rows: cached } = await target.query<{ email: string; erebus_version: number }>("SELECT email, erebus_version FROM user_references_cache WHERE id = $1", [id]);
      expect(cached[0]).toEqual({ email: "v2@x.test", erebus_version: envelopes[1]!.version });
      // Deleted at the source; its delete event arrives, then the older events are replayed: it stays gone.
      await source.query("DELETE FROM user_references WHERE id = $1", [id]);
      const { rows: deletes } = await source.query<{ seq: number; row_data: ChangeEnvelope["row"]; created_at: Date }>(
        "SELECT seq, row_data, created_at FROM erebus_outbox WHERE reference_id = $1 AND op = 'delete'",
        [id],
      );
      const deletion: ChangeEnvelope = { v: 1, id: String(deletes[0]!.seq), op: "delete", reference_id: id, version: Number(deletes[0]!.seq), occurred_at: deletes[0]!.created_at.toISOString(), row: deletes[0]!.row_data };
      await target.transaction((tx) => applyEvents(tx, [deletion, ...envelopes]));
      expect((await target.query("SELECT 1 FROM user_references_cache WHERE id = $1", [id])).rows).toHaveLength(0);
    });

    it("finding 1: a version above the source's high-water mark is refused, never applied", async () => {
      const { rows } = await insertAgent(source, "from-the-future");
      const id = rows[0]!.id;
      const captured: ChangeEnvelope[] = [];
      await createSyncRelay({ source, sink: { name: "capture", deliver: async (events) => void captured.push(...events) }, logger: silentLogger }).drain();
      const mine = captured.find((e) => e.reference_id === id)!;
      // The relay stamps every envelope with the highest version the source has issued.
      const { rows: seq } = await source.query<{ last_value: string }>("SELECT last_value FROM erebus_outbox_seq_seq");
      expect(mine.high_water).toBe(Number(seq[0]!.last_value));
      const sink = postgresCacheSink(target, { logger: silentLogger });
      await sink.deliver([mine]);
      const forged: ChangeEnvelope = { ...mine, id: "999999999999", version: 999_999_999_999, row: { ...mine.row, email: "forged@x.test" } };
      await sink.deliver([forged]);
      expect(sink.stats().refused).toBe(1);
      const { rows: cached } = await target.query<{ email: string | null; v: number }>("SELECT email, erebus_version::float8 AS v FROM user_references_cache WHERE id = $1", [id]);
      expect(cached[0]).toEqual({ email: null, v: mine.version });
      // A later real change still applies.
      await source.query("UPDATE user_references SET email = 'real@x.test' WHERE id = $1", [id]);
      await createSyncRelay({ source, sink, logger: silentLogger }).drain();
      expect((await target.query<{ email: string }>("SELECT email FROM user_references_cache WHERE id = $1", [id])).rows[0]!.email).toBe("real@x.test");
    });

    it("finding 1: a forged future-version row (it blocked every real update) is repaired by resync", async () => {
      const relay = createSyncRelay({ source, sink: postgresCacheSink(target), logger: silentLogger });
      const { rows } = await insertAgent(source, "forged-row");
      const id = rows[0]!.id;
      await relay.drain();
      // A forged row written with the owner's rights (a superuser, or before the privileges fix): active, at a huge version.
      await target.query("UPDATE user_references_cache SET email = 'attacker@x.test', erebus_version = 999999999999 WHERE id = $1", [id]);
      // A forged tombstone for a live reference, and a cached row that the source never had.
      const { rows: other } = await insertAgent(source, "forged-tombstone");
      await target.query("INSERT INTO erebus_sync_tombstones (id, erebus_version) VALUES ($1, 999999999999)", [other[0]!.id]);
      await target.query(
        `INSERT INTO user_references_cache (id, source_identifier, network, source_type, erebus_created_at, erebus_updated_at, erebus_version, person_id)
         VALUES (gen_random_uuid(), 'ghost', 'system', '{}', now(), now(), 999999999999, gen_random_uuid())`,
      );
      await source.query("UPDATE user_references SET is_active = false WHERE id = $1", [id]); // deactivated at the source
      await relay.drain();
      const active = async () => (await target.query<{ is_active: boolean }>("SELECT is_active FROM user_references_cache WHERE id = $1", [id])).rows[0]!.is_active;
      expect(await active()).toBe(true); // blocked: the forged version wins against every real event
      const result = await postgresCacheSink(target).resync(source);
      expect(result).toMatchObject({ repaired: 2, removed: 1 });
      expect(await active()).toBe(false);
      expect(await cacheRows(target)).toEqual(await sourceRows(source));
      // Afterwards real changes apply again, and pending or replayed older events change nothing.
      await source.query("UPDATE user_references SET is_active = true, email = 'after@x.test' WHERE id = $1", [id]);
      await relay.drain();
      expect(await cacheRows(target)).toEqual(await sourceRows(source));
    });

    it("finding 13: the relay holds no source transaction while the sink delivers (a sign-in's write does not wait for it)", async () => {
      const { rows } = await insertAgent(source, "slow-sink");
      const id = rows[0]!.id;
      let entered!: () => void;
      const inside = new Promise<void>((r) => (entered = r));
      let release!: () => void;
      const released = new Promise<void>((r) => (release = r));
      const cache = postgresCacheSink(target);
      const slow: SyncSink = {
        name: "slow",
        async deliver(events) {
          entered();
          await released; // the network I/O of a real sink, stalled
          await cache.deliver(events);
        },
      };
      const run = createSyncRelay({ source, sink: slow, logger: silentLogger }).drain();
      await inside;
      try {
        // A write to the very row being delivered, and a new row, finish while the delivery is stalled.
        const writes = Promise.all([
          source.query("UPDATE user_references SET email = 'during@x.test' WHERE id = $1", [id]),
          insertAgent(source, "during-delivery"),
        ]).then(() => "done");
        // Blocked writes would wait for the release below, forever: the bound only turns that hang into a
        // failure, generous enough that a busy machine's slow writes never trip it.
        expect(await Promise.race([writes, new Promise((r) => setTimeout(() => r("waited for the delivery"), 20_000))])).toBe("done");
        if (engine.name === "postgres") {
          const { rows: open } = await source.query<{ n: number }>(
            "SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND state LIKE 'idle in transaction%'",
          );
          expect(open[0]!.n).toBe(0);
        }
      } finally {
        release();
        await run;
      }
      expect(await cacheRows(target)).toEqual(await sourceRows(source));
    });

    it("wakes on NOTIFY instead of waiting for the poll", async () => {
      const relay = createSyncRelay({ source, sink: postgresCacheSink(target), pollInterval: 60_000, logger: silentLogger });
      await relay.drain();
      relay.start();
      try {
        await new Promise((r) => setTimeout(r, 200)); // let it LISTEN and go to sleep
        const { rows } = await insertAgent(source, "notified");
        await expect.poll(async () => (await target.query("SELECT 1 FROM user_references_cache WHERE id = $1", [rows[0]!.id])).rows.length, { timeout: 5000, interval: 50 }).toBe(1);
      } finally {
        await relay.stop();
      }
    });

    it("backs off when the sink throws (no busy loop), then catches up", async () => {
      let calls = 0;
      let failing = true;
      const cache = postgresCacheSink(target);
      const sink: SyncSink = {
        name: "flaky",
        async deliver(events) {
          calls++;
          if (failing) throw new Error("sink down");
          await cache.deliver(events);
        },
      };
      await insertAgent(source, "during-outage");
      const relay = createSyncRelay({ source, sink, pollInterval: 50, backoff: { base: 100, max: 400 }, logger: silentLogger });
      relay.start();
      try {
        await new Promise((r) => setTimeout(r, 1200));
        // 100, 200, 400, 400, … ms apart: a handful of tries, not thousands.
        expect(calls).toBeGreaterThanOrEqual(2);
        expect(calls).toBeLessThanOrEqual(8);
        expect((await relay.status()).lastError).toContain("sink down");
        failing = false;
        await expect.poll(async () => (await relay.status()).pending, { timeout: 5000, interval: 50 }).toBe(0);
      } finally {
        await relay.stop();
      }
      expect(await cacheRows(target)).toEqual(await sourceRows(source));
    });
  });
}

const server = serverEngine();
describe.skipIf(!server)("sync on a PostgreSQL server: concurrency and crashes", () => {
  let source: Database;
  let target: Database;
  beforeAll(async () => {
    [source, target] = await prepare(await server!.create({ max: 30 }), await server!.create({ max: 10 }));
  });
  afterAll(async () => {
    await source?.close();
    await target?.close();
  });

  it("loses no event when two transactions commit out of sequence order", async () => {
    const a = (await insertAgent(source, "ooo-a")).rows[0]!.id;
    const b = (await insertAgent(source, "ooo-b")).rows[0]!.id;
    const relay = createSyncRelay({ source, sink: postgresCacheSink(target), logger: silentLogger });
    await relay.drain();
    let release!: () => void;
    const hold = new Promise<void>((r) => (release = r));
    // T1 takes the lower sequence number and commits last.
    const t1 = source.transaction(async (tx) => {
      await tx.query("UPDATE user_references SET email = 'first@x.test' WHERE id = $1", [a]);
      await hold;
    });
    await new Promise((r) => setTimeout(r, 100));
    await source.query("UPDATE user_references SET email = 'second@x.test' WHERE id = $1", [b]);
    const seqs = (await source.query<{ seq: number; reference_id: string }>("SELECT seq, reference_id FROM erebus_outbox WHERE delivered_at IS NULL ORDER BY seq")).rows;
    expect(seqs.map((s) => s.reference_id)).toEqual([b]); // T1's event is not visible yet
    expect(await relay.drain()).toBe(1);
    release();
    await t1;
    const pending = (await source.query<{ seq: number }>("SELECT seq FROM erebus_outbox WHERE delivered_at IS NULL")).rows;
    expect(pending).toHaveLength(1);
    expect(Number(pending[0]!.seq)).toBeLessThan(Number(seqs[0]!.seq)); // numbered before the one already delivered
    expect(await relay.drain()).toBe(1);
    expect(await cacheRows(target)).toEqual(await sourceRows(source));
  });

  it("runs three relays at once on concurrent writes: everything once, in order per reference", async () => {
    const { sink, log } = recording(target);
    const relays = [0, 1, 2].map(() => createSyncRelay({ source, sink, batchSize: 20, pollInterval: 20, logger: silentLogger }));
    const base = log.length;
    relays.forEach((r) => r.start());
    try {
      const ids: string[] = [];
      for (let i = 0; i < 10; i++) ids.push((await insertAgent(source, `multi-${i}`)).rows[0]!.id);
      await Promise.all(
        Array.from({ length: 8 }, async (_, w) => {
          for (let i = 0; i < 25; i++) {
            const id = ids[(w + i) % ids.length]!;
            await source.query("UPDATE user_references SET metadata = jsonb_build_object('w', $2::int, 'i', $3::int) WHERE id = $1", [id, w, i]);
          }
        }),
      );
      await expect.poll(async () => (await relays[0]!.status()).pending, { timeout: 10_000, interval: 50 }).toBe(0);
    } finally {
      await Promise.all(relays.map((r) => r.stop()));
    }
    const delivered = log.slice(base);
    expectOrderedPerReference(delivered);
    expect(new Set(delivered.map((d) => d.version)).size).toBe(delivered.length); // nothing twice
    expect(delivered.length).toBeGreaterThanOrEqual(210);
    expect(await cacheRows(target)).toEqual(await sourceRows(source));
  });

  it("survives a relay killed mid-batch: its claim expires and the next relay delivers the batch again, nothing out of order", async () => {
    for (let i = 0; i < 30; i++) await insertAgent(source, `crash-${i}`);
    const cache = postgresCacheSink(target);
    const { sink: goodSink, log } = recording(target);
    let entered!: () => void;
    const inside = new Promise<void>((r) => (entered = r));
    const dying: SyncSink = {
      name: "dying",
      async deliver(events) {
        // Applies half the batch to the cache, then the relay "dies": it never returns, never marks anything.
        await cache.deliver(events.slice(0, Math.floor(events.length / 2)));
        entered();
        await new Promise(() => undefined);
      },
    };
    // A claim far longer than the test: it "expires" below by moving claim_until into the past, so no
    // step depends on how fast a busy machine runs (a 500 ms claim could lapse before the first check).
    const doomed = createSyncRelay({ source, sink: dying, batchSize: 100, claimTimeout: 600_000, logger: silentLogger });
    void doomed.runOnce();
    await inside;
    expect((await source.query<{ n: number }>("SELECT count(*)::int AS n FROM erebus_outbox WHERE delivered_at IS NULL AND claimed_by IS NOT NULL")).rows[0]!.n).toBeGreaterThanOrEqual(30);
    const base = log.length;
    const next = createSyncRelay({ source, sink: goodSink, logger: silentLogger });
    expect(await next.drain()).toBe(0); // the claim is live: nobody else delivers those references meanwhile
    await source.query("UPDATE erebus_outbox SET claim_until = clock_timestamp() - interval '1 second' WHERE delivered_at IS NULL AND claimed_by IS NOT NULL");
    expect(await next.drain()).toBeGreaterThanOrEqual(30);
    expectOrderedPerReference(log.slice(base));
    expect(await cacheRows(target)).toEqual(await sourceRows(source));
  });

  it("survives a relay process killed (SIGKILL) mid-batch", async () => {
    for (let i = 0; i < 40; i++) await insertAgent(source, `sigkill-${i}`);
    const script = fileURLToPath(new URL("../../../test/fixtures/dying-relay.ts", import.meta.url));
    const child = spawn(process.execPath, ["--conditions=erebus-source", "--import", "tsx", script], {
      env: { ...process.env, SOURCE_URL: (source as Database & { url: string }).url, TARGET_URL: (target as Database & { url: string }).url },
      stdio: ["ignore", "pipe", "inherit"],
    });
    const exited = new Promise<NodeJS.Signals | null>((resolve) => child.once("exit", (_code, signal) => resolve(signal)));
    await new Promise<void>((resolve, reject) => {
      child.stdout.on("data", (chunk: Buffer) => chunk.toString().includes("applied") && resolve());
      child.once("exit", () => reject(new Error("the relay process ended before applying anything")));
    });
    const pendingBefore = (await source.query<{ n: number }>("SELECT count(*)::int AS n FROM erebus_outbox WHERE delivered_at IS NULL")).rows[0]!.n;
    child.kill("SIGKILL");
    expect(await exited).toBe("SIGKILL");
    // It held no transaction open while delivering, and nothing was marked delivered.
    expect((await source.query<{ n: number }>("SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND state LIKE 'idle in transaction%'")).rows[0]!.n).toBe(0);
    expect((await source.query<{ n: number }>("SELECT count(*)::int AS n FROM erebus_outbox WHERE delivered_at IS NULL")).rows[0]!.n).toBe(pendingBefore);
    const { sink, log } = recording(target);
    // Its claims expire (the fixture's claimTimeout, 1 s), then the next relay delivers everything.
    const next = createSyncRelay({ source, sink, logger: silentLogger });
    await expect.poll(async () => (await next.drain(), (await next.status()).pending), { timeout: 10_000, interval: 200 }).toBe(0);
    expectOrderedPerReference(log);
    expect(await cacheRows(target)).toEqual(await sourceRows(source));
  });
});

describe.skipIf(!server)("finding 1: the cache is read-only by privileges, on a PostgreSQL server", () => {
  it("finding 1: a reader role cannot write the cache, not with set_config('erebus.sync_writer') either (SQLSTATE 42501)", async () => {
    const suffix = randomBytes(4).toString("hex");
    const writerRole = `erebus_sync_${suffix}`;
    const readerRole = `agents_${suffix}`;
    const source = await server!.create();
    const admin = (await server!.create()) as Database & { url: string }; // the agents database, as a superuser
    const as = (role: string) => {
      const url = new URL(admin.url);
      url.username = role;
      return connectDatabase(url.toString(), { max: 2 });
    };
    let writer: Database | undefined;
    let reader: Database | undefined;
    try {
      await admin.query(`CREATE ROLE ${writerRole} LOGIN`);
      await admin.query(`CREATE ROLE ${readerRole} LOGIN`);
      await admin.query(`GRANT CREATE ON SCHEMA public TO ${writerRole}`);
      writer = await as(writerRole);
      // The sink runs as a role of its own, which owns the cache tables it creates.
      const sink = postgresCacheSink(writer);
      await prepare(source, writer);
      for (let i = 0; i < 3; i++) await insertAgent(source, `priv-${i}`);
      const relay = createSyncRelay({ source, sink, logger: silentLogger });
      await relay.drain();
      await expect(sink.grantReader("nobody_here")).rejects.toThrow(/no role/);
      await expect(sink.grantReader("x; DROP TABLE y")).rejects.toThrow(/not a role name/);
      await sink.grantReader(readerRole);
      reader = await as(readerRole);
      const r = reader;
      expect(await cacheRows(r)).toEqual(await sourceRows(source)); // it reads

      const attacks = [
        "UPDATE user_references_cache SET is_active = true, erebus_version = 999999999999",
        "INSERT INTO user_references_cache (id, source_identifier, network, source_type, erebus_created_at, erebus_updated_at, erebus_version) VALUES (gen_random_uuid(), 'x', 'y', '{}', now(), now(), 999999999999)",
        "DELETE FROM user_references_cache",
        "TRUNCATE user_references_cache",
        "INSERT INTO erebus_sync_tombstones (id, erebus_version) SELECT id, 999999999999 FROM user_references_cache",
        "DELETE FROM erebus_sync_tombstones",
      ];
      const bypass = (sql: string) =>
        r.transaction(async (tx) => {
          await tx.query("SELECT set_config('erebus.sync_writer', 'on', true)");
          await tx.query(sql);
        });
      for (const sql of attacks) {
        await expect(bypass(sql), sql).rejects.toMatchObject({ code: "42501" });
        await expect(r.query(sql), sql).rejects.toMatchObject({ code: "42501" });
      }
      // Someone grants too much by hand: writes are still refused, only the owner's role writes.
      await admin.query(`GRANT ALL ON ALL TABLES IN SCHEMA public TO ${readerRole}`);
      for (const sql of attacks) await expect(bypass(sql), sql).rejects.toMatchObject({ code: "42501" });
      expect(await cacheRows(r)).toEqual(await sourceRows(source));

      // The sink's own role keeps writing.
      await source.query("UPDATE user_references SET is_active = false WHERE source_identifier = 'priv-0'");
      await relay.drain();
      expect(await cacheRows(r)).toEqual(await sourceRows(source));
    } finally {
      await reader?.close();
      await writer?.close();
      await source.close();
      await admin.close();
      const cluster = await connectDatabase(inject("postgresUrl")!, { max: 1 });
      await cluster.query(`DROP ROLE IF EXISTS ${readerRole}`);
      await cluster.query(`DROP ROLE IF EXISTS ${writerRole}`);
      await cluster.close();
    }
  });
});
