// Sync benchmark on a real PostgreSQL server (started here from the installed binaries):
//  1. throughput: events per second through the relay into the cache, against applying the same
//     events straight to the cache (no outbox, no relay) in the same run;
//  2. lag from commit to cache at a steady 1,000 changes per second;
//  3. the same two through Kafka (relay → topic → consumer → cache), on librdkafka's mock cluster
//     started through kcat (or KAFKA_BROKERS), beside the direct Postgres sink.
// Runs are kept short (a few seconds each).
//   npm run bench
import { connectDatabase, createAuth, silentLogger, type Database } from "@erebus/core";
import { applyEvents, createSyncRelay, kafkaCacheConsumer, kafkaSink, migrateCache, postgresCacheSink, syncProvider, type ChangeEnvelope, type SyncRelay } from "@erebus/sync";
import { kcatAvailable, startKafka } from "../test/sync.js";
import { startPostgres } from "../test/postgres-server.js";

const server = await startPostgres();
if (!server) {
  console.log("sync bench: no PostgreSQL binaries found (apt-get install -y postgresql-15); skipped");
  process.exit(0);
}
const admin = await connectDatabase(server.url);
for (const name of ["bench_source", "bench_target", "bench_baseline", "bench_ksource", "bench_kcache"]) await admin.exec(`CREATE DATABASE ${name}`);
await admin.close();
const url = (name: string) => server.url.replace(/\/postgres$/, `/${name}`);
const source = await connectDatabase(url("bench_source"), { max: 20 });
const target = await connectDatabase(url("bench_target"));
const baseline = await connectDatabase(url("bench_baseline"));
const auth = createAuth({ database: source, baseURL: "http://bench.test", providers: [syncProvider()], migrate: true, logger: silentLogger });
await auth.ready;
const sink = postgresCacheSink(target);
await sink.migrate();
await postgresCacheSink(baseline).migrate();

const AGENT = `'{"type":"system_agent","agent_type":"bench","capabilities":[]}'::jsonb`;
const N = 20_000;
try {
  console.log(`Throughput: ${N} changes, batches of 500`);
  await source.query(
    `INSERT INTO user_references (source_identifier, network, user_type, source_type)
     SELECT 'bench-' || g, 'system', 'agent', ${AGENT} FROM generate_series(1, $1) AS g`,
    [N],
  );
  // Capture the events once, to apply them straight to the baseline cache.
  const captured: ChangeEnvelope[] = [];
  const { rows } = await source.query<{ seq: number; reference_id: string; row_data: ChangeEnvelope["row"]; created_at: Date }>(
    "SELECT seq, reference_id, row_data, created_at FROM erebus_outbox ORDER BY seq",
  );
  for (const r of rows) captured.push({ v: 1, id: String(r.seq), op: "insert", reference_id: r.reference_id, version: Number(r.seq), occurred_at: r.created_at.toISOString(), row: r.row_data });
  let start = process.hrtime.bigint();
  for (let i = 0; i < captured.length; i += 500) {
    const batch = captured.slice(i, i + 500);
    await baseline.transaction((tx) => applyEvents(tx, batch));
  }
  const direct = captured.length / (Number(process.hrtime.bigint() - start) / 1e9);
  console.log(`  applying the events straight to a cache (baseline)    ${direct.toFixed(0).padStart(8)} events/s`);
  const relay = createSyncRelay({ source, sink, batchSize: 500, logger: silentLogger });
  start = process.hrtime.bigint();
  const delivered = await relay.drain();
  const relayed = delivered / (Number(process.hrtime.bigint() - start) / 1e9);
  console.log(`  outbox → relay → cache                                ${relayed.toFixed(0).padStart(8)} events/s`);

  console.log("Lag at a steady 1,000 changes/s for 3 s (relay running, woken by NOTIFY)");
  const direct_lag = await measureLag(source, relay, target);
  console.log(`  postgres sink: offered ${direct_lag.rate.toFixed(0)} changes/s; commit → cache lag over ${direct_lag.count} final versions: p50 ${direct_lag.p50} ms, p99 ${direct_lag.p99} ms, max ${direct_lag.max} ms`);

  const kafka = await benchKafka();
  if (kafka) {
    console.log(`  kafka:         offered ${kafka.lag.rate.toFixed(0)} changes/s; commit → cache lag over ${kafka.lag.count} final versions: p50 ${kafka.lag.p50} ms, p99 ${kafka.lag.p99} ms, max ${kafka.lag.max} ms`);
    console.log(`  outbox → relay → Kafka → consumer → cache ${kafka.cluster}: ${kafka.rate.toFixed(0)} events/s (${kafka.n} events)`);
  }
  console.log("\nRatios (same run):");
  console.log(`  relay throughput / direct apply                      ${(relayed / direct).toFixed(2)}×`);
  if (kafka) console.log(`  through Kafka / relay into the cache                 ${(kafka.rate / relayed).toFixed(2)}×`);
} finally {
  await auth.close();
  await target.close();
  await baseline.close();
  await server.stop();
}

/** 10 writers × 100 changes/s for 3 s, each change stamped; lag = commit → the stamp's `synced_at` in the cache. */
async function measureLag(db: Database, relay: SyncRelay, cache: Database) {
  const ids = (await db.query<{ id: string }>("SELECT id FROM user_references ORDER BY id LIMIT 2000")).rows.map((r) => r.id);
  relay.start();
  const commits = new Map<string, number>();
  const finalStamp = new Map<string, string>();
  let changed = 0;
  const t0 = Date.now();
  await Promise.all(
    Array.from({ length: 10 }, async (_, w) => {
      for (let i = 0; i < 300; i++) {
        const due = t0 + i * 10;
        const wait = due - Date.now();
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
        const id = ids[(w * 300 + i) % ids.length]!;
        const stamp = `${w}-${i}`;
        await db.query("UPDATE user_references SET metadata = jsonb_build_object('stamp', $2::text) WHERE id = $1", [id, stamp]);
        commits.set(stamp, Date.now());
        finalStamp.set(id, stamp);
        changed++;
      }
    }),
  );
  const rate = changed / ((Date.now() - t0) / 1000);
  // A row shows only its latest stamp; lag is measured for those. Wait until every one has arrived.
  const seen = new Map<string, number>();
  const wanted = new Set(finalStamp.values());
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    const { rows } = await cache.query<{ stamp: string; synced_at: Date }>("SELECT metadata->>'stamp' AS stamp, synced_at FROM user_references_cache WHERE metadata ? 'stamp'");
    for (const row of rows) if (!seen.has(row.stamp)) seen.set(row.stamp, new Date(row.synced_at).getTime());
    if ([...wanted].every((stamp) => seen.has(stamp))) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  await relay.stop();
  const lags = [...wanted].filter((stamp) => seen.has(stamp)).map((stamp) => Math.max(0, seen.get(stamp)! - commits.get(stamp)!));
  lags.sort((a, b) => a - b);
  const pct = (p: number) => lags[Math.min(lags.length - 1, Math.floor((p / 100) * lags.length))] ?? NaN;
  return { rate, count: lags.length, missing: wanted.size - lags.length, p50: pct(50), p99: pct(99), max: pct(100) };
}

/** Relay → Kafka → consumer → cache, on its own source and cache databases. */
async function benchKafka() {
  if (!process.env.KAFKA_BROKERS && !kcatAvailable()) {
    console.log("  kafka: skipped (install kcat to start librdkafka's mock cluster, or set KAFKA_BROKERS)");
    return undefined;
  }
  const cluster = await startKafka();
  const ksource = await connectDatabase(url("bench_ksource"), { max: 20 });
  const kcache = await connectDatabase(url("bench_kcache"));
  const kauth = createAuth({ database: ksource, baseURL: "http://bench.test", providers: [syncProvider()], migrate: true, logger: silentLogger });
  await kauth.ready;
  await migrateCache(kcache);
  const topic = `erebus-bench-${Date.now()}`;
  const secret = "bench-secret-0123456789abcdef";
  const ksink = kafkaSink({ brokers: () => cluster.brokers(), topic, secret, idempotent: !cluster.mock, logger: silentLogger });
  const consumer = kafkaCacheConsumer({ brokers: () => cluster.brokers(), topic, groupId: `${topic}-bench`, target: kcache, secret, logger: silentLogger, consumer: { maxWaitTimeInMs: 20, heartbeatInterval: 500 } });
  const krelay = createSyncRelay({ source: ksource, sink: ksink, batchSize: 500, logger: silentLogger });
  try {
    const n = 5000;
    await ksource.query("INSERT INTO user_references (source_identifier, network, user_type, source_type) VALUES ('bench-first', 'system', 'agent', " + AGENT + ")");
    await krelay.drain(); // creates the topic
    await consumer.start();
    await waitForCount(kcache, 1);
    await ksource.query(
      `INSERT INTO user_references (source_identifier, network, user_type, source_type)
       SELECT 'kbench-' || g, 'system', 'agent', ${AGENT} FROM generate_series(1, $1) AS g`,
      [n],
    );
    const start = process.hrtime.bigint();
    await krelay.drain();
    await waitForCount(kcache, n + 1);
    const rate = n / (Number(process.hrtime.bigint() - start) / 1e9);
    const lag = await measureLag(ksource, krelay, kcache);
    return { rate, n, lag, cluster: cluster.mock ? "(librdkafka mock cluster, 3 brokers)" : "(KAFKA_BROKERS)" };
  } finally {
    await consumer.stop();
    await ksink.close();
    await kauth.close();
    await kcache.close();
    await cluster.stop();
  }
}

async function waitForCount(db: Database, n: number) {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    const { rows } = await db.query<{ n: number }>("SELECT count(*)::int AS n FROM user_references_cache");
    if (rows[0]!.n >= n) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`cache did not reach ${n} rows`);
}
