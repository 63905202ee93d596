// Sync benchmark on a real PostgreSQL server (started here from the installed binaries):
//  1. throughput: events per second through the relay into the cache, against applying the same
//     events straight to the cache (no outbox, no relay) in the same run;
//  2. lag from commit to cache at a steady 1,000 changes per second.
//   npm run bench
import { connectDatabase, createAuth, silentLogger, type Database } from "@erebus/core";
import { applyEvents, createSyncRelay, postgresCacheSink, syncProvider, type ChangeEnvelope, type SyncSink } from "@erebus/sync";
import { startPostgres } from "../test/postgres-server.js";

const server = await startPostgres();
if (!server) {
  console.log("sync bench: no PostgreSQL binaries found (apt-get install -y postgresql-15); skipped");
  process.exit(0);
}
const admin = await connectDatabase(server.url);
for (const name of ["bench_source", "bench_target", "bench_baseline"]) await admin.exec(`CREATE DATABASE ${name}`);
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

  console.log("Lag at a steady 1,000 changes/s for 5 s (relay running, woken by NOTIFY)");
  const ids = (await source.query<{ id: string }>("SELECT id FROM user_references ORDER BY id LIMIT 2000")).rows.map((r) => r.id);
  relay.start();
  const lags: number[] = [];
  const commits = new Map<string, number>();
  let changed = 0;
  const t0 = Date.now();
  // 10 writers × 100 changes/s, each change stamped with its commit time.
  await Promise.all(
    Array.from({ length: 10 }, async (_, w) => {
      for (let i = 0; i < 500; i++) {
        const due = t0 + i * 10;
        const wait = due - Date.now();
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
        const id = ids[(w * 500 + i) % ids.length]!;
        const stamp = `${w}-${i}`;
        await source.query("UPDATE user_references SET metadata = jsonb_build_object('stamp', $2::text) WHERE id = $1", [id, stamp]);
        commits.set(stamp, Date.now());
        changed++;
      }
    }),
  );
  const rate = changed / ((Date.now() - t0) / 1000);
  // Where each stamp reached the cache: poll the cache until all have arrived.
  const seen = new Map<string, number>();
  const deadline = Date.now() + 30_000;
  const pollCache = async () => {
    const { rows: cached } = await target.query<{ stamp: string; synced_at: Date }>("SELECT metadata->>'stamp' AS stamp, synced_at FROM user_references_cache WHERE metadata ? 'stamp'");
    for (const row of cached) if (!seen.has(row.stamp)) seen.set(row.stamp, new Date(row.synced_at).getTime());
  };
  while ((await relay.status()).pending > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  await pollCache();
  await relay.stop();
  // A row shows only its latest stamp; lag is measured for those (commit → synced_at).
  for (const [stamp, at] of seen) {
    const committed = commits.get(stamp);
    if (committed !== undefined) lags.push(Math.max(0, at - committed));
  }
  lags.sort((a, b) => a - b);
  const pct = (p: number) => lags[Math.min(lags.length - 1, Math.floor((p / 100) * lags.length))] ?? NaN;
  console.log(`  offered ${rate.toFixed(0)} changes/s; commit → cache lag over ${lags.length} final versions: p50 ${pct(50)} ms, p95 ${pct(95)} ms, max ${pct(100)} ms`);

  console.log("\nRatios (same run):");
  console.log(`  relay throughput / direct apply                      ${(relayed / direct).toFixed(2)}×`);
} finally {
  await auth.close();
  await target.close();
  await baseline.close();
  await server.stop();
}
