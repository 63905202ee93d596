import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { createServer } from "node:net";
import { fileURLToPath } from "node:url";
import { Kafka, logLevel } from "kafkajs";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { createAuth, silentLogger, type Database, type Logger } from "@erebus/core";
import { engines, serverEngine } from "../../../test/engines.js";
import { cacheRows, insertAgent, kcatAvailable, sourceRows, startKafka, type KafkaCluster } from "../../../test/sync.js";
import { applyEvents, migrateCache, postgresCacheSink } from "./cache-sink.js";
import { parseEnvelope, serializeEnvelope, signEnvelope, type ChangeEnvelope, type SyncSink } from "./envelope.js";
import { envelopesOf, kafkaCacheConsumer, kafkaSink, SIGNATURE_HEADER, toKafkaMessage } from "./kafka.js";
import { createSyncRelay } from "./relay.js";
import { syncProvider } from "./sync-provider.js";

// The server when the suite has one (always under CI=true): cheaper to create than PGlite instances,
// and a consumer in another process can reach it.
const engine = engines().at(-1)!;
const SECRET = "kafka-test-secret-0123456789";

describe("change envelopes and Kafka records (no broker needed)", () => {
  let source: Database;
  let target: Database;
  const captured: ChangeEnvelope[] = [];
  beforeAll(async () => {
    source = await engine.create();
    target = await engine.create();
    const auth = createAuth({ database: source, baseURL: "http://app.test", providers: [syncProvider()], migrate: true, logger: silentLogger });
    await auth.ready;
    await postgresCacheSink(target).migrate();
    const id = (await insertAgent(source, "kafka-1")).rows[0]!.id;
    await source.query("UPDATE user_references SET email = 'k@x.test' WHERE id = $1", [id]);
    await insertAgent(source, "kafka-2");
    const sink: SyncSink = { name: "capture", deliver: async (events) => void captured.push(...events) };
    await createSyncRelay({ source, sink, logger: silentLogger }).drain();
  });
  afterAll(async () => {
    await source?.close();
    await target?.close();
  });

  it("versions and validates the envelope, carrying the whole row, a stable id and an ordering key", () => {
    expect(captured).toHaveLength(3);
    const [first] = captured;
    expect(first).toMatchObject({ v: 1, op: "insert", version: Number(first!.id), row: { id: first!.reference_id, source_identifier: "kafka-1", network: "system" } });
    expect(first!.high_water).toBeGreaterThanOrEqual(captured[2]!.version);
    expect(parseEnvelope(serializeEnvelope(first!))).toEqual(first);
    expect(() => parseEnvelope("{")).toThrow(/not JSON/);
    expect(() => parseEnvelope(JSON.stringify({ ...first, v: 2 }))).toThrow(/v/);
    expect(() => parseEnvelope(JSON.stringify({ ...first, row: { ...first!.row, id: "nope" } }))).toThrow(/row\.id/);
    expect(() => serializeEnvelope({ ...first!, op: "upsert" as never })).toThrow();
  });

  it("keys each record by reference id, so one reference stays in one partition, in order", () => {
    const messages = captured.map((e) => toKafkaMessage(e));
    expect(messages.map((m) => m.key)).toEqual(captured.map((e) => e.reference_id));
    expect(messages[0]!.headers).toEqual({ "erebus-envelope": "1", "erebus-op": "insert" });
    expect(JSON.parse(messages[1]!.value)).toEqual(captured[1]);
    expect(toKafkaMessage(captured[0]!, SECRET).headers[SIGNATURE_HEADER]).toBe(signEnvelope(messages[0]!.value, SECRET));
  });

  it("a consumer's batch (as Kafka hands it over) applies to a service's own cache, idempotently", async () => {
    const batch = captured.map((e, i) => ({ offset: String(i), value: Buffer.from(toKafkaMessage(e).value), headers: {} }));
    await target.transaction((tx) => applyEvents(tx, envelopesOf(batch).envelopes));
    await target.transaction((tx) => applyEvents(tx, envelopesOf(batch).envelopes)); // redelivered: nothing changes
    expect(await cacheRows(target)).toEqual(await sourceRows(source));
    expect(envelopesOf([{ offset: "7", value: Buffer.from("garbage") }]).skipped).toEqual([{ offset: "7", reason: "malformed", detail: "change envelope is not JSON" }]);
    expect(envelopesOf([{ offset: "8", value: null }]).skipped[0]).toMatchObject({ offset: "8", reason: "malformed" });
  });

  it("finding 1: with a secret, an unsigned or mis-signed envelope is refused, a signed one accepted", () => {
    const good = toKafkaMessage(captured[0]!, SECRET);
    const forged = { ...captured[0]!, version: 999_999_999_999, high_water: 999_999_999_999, row: { ...captured[0]!.row, is_active: true } };
    const forgedValue = serializeEnvelope(forged);
    const { envelopes, skipped } = envelopesOf(
      [
        { offset: "1", value: Buffer.from(good.value), headers: good.headers },
        { offset: "2", value: Buffer.from(forgedValue), headers: {} },
        { offset: "3", value: Buffer.from(forgedValue), headers: { [SIGNATURE_HEADER]: signEnvelope(forgedValue, "another-secret-0123456789") } },
        { offset: "4", value: Buffer.from(forgedValue), headers: { [SIGNATURE_HEADER]: good.headers[SIGNATURE_HEADER]! } }, // a real signature, another body
      ],
      [SECRET],
    );
    expect(envelopes).toEqual([captured[0]]);
    expect(skipped.map((s) => [s.offset, s.reason])).toEqual([["2", "unsigned"], ["3", "bad-signature"], ["4", "bad-signature"]]);
    // Rotation: either of two secrets is accepted.
    expect(envelopesOf([{ offset: "5", value: Buffer.from(good.value), headers: good.headers }], ["new-secret-0123456789abc", SECRET]).envelopes).toHaveLength(1);
  });

  it("an envelope with NUL or a lone surrogate in any string, or a bad timestamp, is malformed: skipped, never applied", () => {
    const base = captured[0]!;
    const variants: [string, (bad: string) => unknown][] = [
      ["source_identifier", (bad) => ({ ...base, row: { ...base.row, source_identifier: `a${bad}b` } })],
      ["network", (bad) => ({ ...base, row: { ...base.row, network: bad } })],
      ["user_type", (bad) => ({ ...base, row: { ...base.row, user_type: bad } })],
      ["email", (bad) => ({ ...base, row: { ...base.row, email: `x${bad}@y.z` } })],
      ["source_type value", (bad) => ({ ...base, row: { ...base.row, source_type: { type: bad } } })],
      ["metadata key", (bad) => ({ ...base, row: { ...base.row, metadata: { [`k${bad}`]: 1 } } })],
      ["preferences array", (bad) => ({ ...base, row: { ...base.row, preferences: { list: ["ok", bad] } } })],
      ["an extra row field", (bad) => ({ ...base, row: { ...base.row, extra: bad } })],
      ["created_at", (bad) => ({ ...base, row: { ...base.row, created_at: `2026-01-01T00:00:00Z${bad}` } })],
      ["occurred_at", (bad) => ({ ...base, occurred_at: bad })],
    ];
    for (const [field, make] of variants) {
      for (const bad of ["\u0000", "\ud800", "\udfff"]) {
        const value = JSON.stringify(make(bad));
        const signed = { offset: "1", value: Buffer.from(value), headers: { [SIGNATURE_HEADER]: signEnvelope(value, SECRET) } };
        const { envelopes, skipped } = envelopesOf([signed], [SECRET]);
        expect(envelopes, `${field} with ${JSON.stringify(bad)}`).toEqual([]);
        expect(skipped[0]?.reason, field).toBe("malformed");
      }
    }
    expect(() => parseEnvelope(JSON.stringify({ ...base, row: { ...base.row, updated_at: "yesterday" } }))).toThrow(/row\.updated_at/);
    // A surrogate pair (an emoji) is fine.
    expect(parseEnvelope(JSON.stringify({ ...base, row: { ...base.row, email: "\ud83d\ude00@x.test" } })).row.email).toBe("😀@x.test");
  });

  it("review: a sink or consumer without a secret says so (anyone who can produce to the topic writes every cache)", async () => {
    const warnings: string[] = [];
    const logger: Logger = { ...silentLogger, warn: (message: string) => void warnings.push(message) };
    const brokers = ["127.0.0.1:9"];
    const unsigned = [kafkaSink({ brokers, topic: "t", idempotent: false, logger }), kafkaCacheConsumer({ brokers, topic: "t", groupId: "g", target, logger })];
    expect(warnings).toEqual([expect.stringMatching(/^kafkaSink: no secret/), expect.stringMatching(/^kafkaCacheConsumer: no secret/)]);
    warnings.length = 0;
    const secret = "a-shared-secret-of-32-characters";
    const signed = [kafkaSink({ brokers, topic: "t", idempotent: false, secret, logger }), kafkaCacheConsumer({ brokers, topic: "t", groupId: "g", target, secret, logger })];
    expect(warnings).toEqual([]);
    await Promise.all([unsigned[0]!.close(), signed[0]!.close(), unsigned[1]!.stop(), signed[1]!.stop()]);
  });

  it("finding 1: the consumer takes the producer's client options: with ssl it speaks TLS", async () => {
    // A TCP server that records the first bytes each connection sends: a TLS ClientHello starts with 0x16.
    const first: number[] = [];
    const server = createServer((socket) => socket.once("data", (data) => (first.push(data[0]!), socket.destroy())));
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const brokers = [`127.0.0.1:${(server.address() as { port: number }).port}`];
    const kafka = { retry: { retries: 0 }, connectionTimeout: 500 };
    const sink = kafkaSink({ brokers, topic: "t", idempotent: false, ssl: true, sasl: { mechanism: "plain", username: "u", password: "p" }, kafka, logger: silentLogger });
    const consumer = kafkaCacheConsumer({ brokers, topic: "t", groupId: "g", target, ssl: true, sasl: { mechanism: "plain", username: "u", password: "p" }, kafka, logger: silentLogger });
    try {
      await expect(sink.deliver(captured)).rejects.toThrow(/TLS/);
      await expect(consumer.start()).rejects.toThrow(/TLS/);
    } finally {
      await consumer.stop();
      await sink.close();
      server.close();
    }
    expect(first.length).toBeGreaterThanOrEqual(2);
    expect(first.every((b) => b === 0x16)).toBe(true);
    expect(() => kafkaCacheConsumer({ brokers: ["nohost"], topic: "t", groupId: "g", target })).toThrow(/brokers/);
    expect(() => kafkaCacheConsumer({ brokers, topic: "t", groupId: "g", target, secret: "short" })).toThrow(/secret/);
    expect(() => kafkaSink({ brokers, topic: "bad topic" })).toThrow(/topic/);
    expect(() => kafkaSink({ brokers, topic: "t", kafka: { retry: { retries: 0 } } })).toThrow(/idempotent/);
  });
});

// librdkafka's mock cluster through kcat by default (.ci/run installs kcat, so CI never skips), or
// the real cluster in KAFKA_BROKERS.
const realCluster = Boolean(process.env.KAFKA_BROKERS);
const canRun = realCluster || process.env.CI === "true" || kcatAvailable();
if (!canRun) console.info("[erebus tests] Kafka tests skipped: install kcat (apt-get install kcat) or set KAFKA_BROKERS=host:9092");

describe.skipIf(!canRun)(`Kafka: relay → topic → consumers → caches (${realCluster ? "KAFKA_BROKERS" : "librdkafka mock cluster"})`, () => {
  let cluster: KafkaCluster;
  const cleanups: (() => Promise<unknown>)[] = [];
  beforeAll(async () => {
    cluster = await startKafka();
  }, 30_000);
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => undefined);
  });
  afterAll(async () => {
    await cluster?.stop();
  });

  // Short retries, so an outage is noticed in a second rather than half a minute.
  const kafka = { retry: { retries: 3, initialRetryTime: 100, maxRetryTime: 1000 }, connectionTimeout: 1000, requestTimeout: 5000 };
  const client = () => ({ brokers: () => cluster.brokers(), kafka, logger: silentLogger });
  const tuning = { heartbeatInterval: 500, sessionTimeout: 6000, maxWaitTimeInMs: 100 };
  const topicName = (name: string) => `erebus-${name}-${randomBytes(4).toString("hex")}`;

  /** A real cluster may default to one partition; the mock auto-creates four (it cannot create topics through kafkajs's admin). */
  async function ensureTopic(topic: string) {
    if (cluster.mock) return;
    const admin = new Kafka({ brokers: cluster.brokers(), logLevel: logLevel.NOTHING }).admin();
    await admin.connect();
    await admin.createTopics({ topics: [{ topic, numPartitions: 4 }] });
    await admin.disconnect();
  }
  async function newSource() {
    const db = await engine.create({ max: 10 });
    cleanups.push(() => db.close());
    const auth = createAuth({ database: db, baseURL: "http://app.test", providers: [syncProvider()], migrate: true, logger: silentLogger });
    await auth.ready;
    return db;
  }
  async function newCache() {
    const db = await engine.create({ max: 4 });
    cleanups.push(() => db.close());
    await migrateCache(db);
    return db as Database & { url?: string };
  }
  function startRelay(source: Database, topic: string) {
    // The mock's controller id (0) is no broker, so kafkajs cannot init an idempotent producer there.
    const sink = kafkaSink({ ...client(), topic, secret: SECRET, idempotent: !cluster.mock });
    const relay = createSyncRelay({ source, sink, batchSize: 50, pollInterval: 50, backoff: { base: 100, max: 1000 }, logger: silentLogger });
    relay.start();
    cleanups.push(async () => {
      await relay.stop();
      await sink.close();
    });
    return { relay, sink };
  }
  function consumerFor(topic: string, groupId: string, target: Database, logger: Logger = silentLogger) {
    const consumer = kafkaCacheConsumer({ ...client(), logger, topic, groupId, target, secret: SECRET, consumer: tuning, restartDelay: 300 });
    cleanups.push(() => consumer.stop());
    return consumer;
  }
  const sameAsSource = (cache: Database, source: Database, timeout = 20_000) =>
    expect
      .poll(async () => JSON.stringify(await cacheRows(cache)) === JSON.stringify(await sourceRows(source)), { timeout, interval: 200 })
      .toBe(true);
  /** Inserts, updates, deactivations and a delete, by hand in SQL. */
  async function burst(source: Database, prefix: string, n = 20) {
    const ids: string[] = [];
    for (let i = 0; i < n; i++) ids.push((await insertAgent(source, `${prefix}-${i}`)).rows[0]!.id);
    for (let round = 1; round <= 3; round++) {
      await source.query("UPDATE user_references SET metadata = jsonb_build_object('round', $2::int) WHERE id = ANY($1::uuid[])", [ids, round]);
    }
    await source.query("UPDATE user_references SET is_active = false WHERE id = ANY($1::uuid[])", [ids.slice(0, Math.ceil(n / 3))]);
    await source.query("DELETE FROM user_references WHERE id = $1", [ids.at(-1)]);
    return ids;
  }
  /** Each cached row carries the newest version of its reference. */
  async function expectNewestVersions(source: Database, cache: Database) {
    const { rows } = await source.query<{ reference_id: string; v: number }>("SELECT reference_id, max(seq)::float8 AS v FROM erebus_outbox GROUP BY reference_id");
    const newest = new Map(rows.map((r) => [r.reference_id, r.v]));
    const { rows: cached } = await cache.query<{ id: string; v: number }>("SELECT id, erebus_version::float8 AS v FROM user_references_cache");
    for (const row of cached) expect(row.v).toBe(newest.get(row.id));
  }

  it("relay → topic → two consumer groups, each into its own database: both equal the source row for row after a burst", async () => {
    const topic = topicName("groups");
    await ensureTopic(topic);
    const source = await newSource();
    const { sink } = startRelay(source, topic);
    await burst(source, "g1");
    const [a, b] = [await newCache(), await newCache()];
    const [ca, cb] = [consumerFor(topic, `${topic}-agents`, a), consumerFor(topic, `${topic}-billing`, b)];
    await Promise.all([ca.start(), cb.start()]);
    await Promise.all([sameAsSource(a, source), sameAsSource(b, source)]);
    await burst(source, "g2"); // and more while both run
    await Promise.all([sameAsSource(a, source), sameAsSource(b, source)]);
    await expectNewestVersions(source, a);
    await expectNewestVersions(source, b);
    // A relay retry after a lost ack sends events again (same id, same version): nothing changes.
    const { rows } = await source.query<{ seq: number; reference_id: string; op: "insert" | "update" | "delete"; row_data: ChangeEnvelope["row"]; created_at: Date }>(
      "SELECT seq, reference_id, op, row_data, created_at FROM erebus_outbox ORDER BY seq LIMIT 30",
    );
    const again = rows.map((r) => ({ v: 1 as const, id: String(r.seq), op: r.op, reference_id: r.reference_id, version: Number(r.seq), occurred_at: r.created_at.toISOString(), row: r.row_data }));
    const appliedBefore = ca.stats().applied;
    await sink.deliver(again);
    await expect.poll(() => ca.stats().applied, { timeout: 10_000, interval: 100 }).toBeGreaterThanOrEqual(appliedBefore + again.length);
    expect(await cacheRows(a)).toEqual(await sourceRows(source));
    await expectNewestVersions(source, a);
    expect(ca.stats()).toMatchObject({ skipped: 0, refused: 0 });
  });

  it("per-reference order holds on the topic: each reference in one partition, versions increasing (key = reference id)", async () => {
    const topic = topicName("order");
    await ensureTopic(topic);
    const source = await newSource();
    startRelay(source, topic);
    const ids = await burst(source, "o", 12);
    await Promise.all(ids.slice(0, 6).map(async (id, w) => {
      for (let i = 0; i < 5; i++) await source.query("UPDATE user_references SET metadata = jsonb_build_object('w', $2::int, 'i', $3::int) WHERE id = $1", [id, w, i]);
    }));
    const { rows } = await source.query<{ n: number }>("SELECT count(*)::int AS n FROM erebus_outbox");
    const seen: { key: string; partition: number; version: number }[] = [];
    const raw = new Kafka({ brokers: cluster.brokers(), logLevel: logLevel.NOTHING }).consumer({ groupId: `${topic}-raw`, ...tuning });
    cleanups.push(() => raw.disconnect());
    await raw.connect();
    await raw.subscribe({ topic, fromBeginning: true });
    await raw.run({
      eachMessage: async ({ partition, message }) => {
        seen.push({ key: message.key!.toString(), partition, version: parseEnvelope(message.value!).version });
      },
    });
    await expect.poll(() => seen.length, { timeout: 20_000, interval: 100 }).toBeGreaterThanOrEqual(rows[0]!.n);
    const byKey = new Map<string, typeof seen>();
    for (const record of seen) byKey.set(record.key, [...(byKey.get(record.key) ?? []), record]);
    expect(byKey.size).toBe(12);
    expect(new Set(seen.map((s) => s.partition)).size).toBeGreaterThan(1);
    for (const records of byKey.values()) {
      expect(new Set(records.map((r) => r.partition)).size).toBe(1);
      const versions = records.map((r) => r.version);
      expect(versions).toEqual([...versions].sort((x, y) => x - y));
    }
  });

  it.skipIf(!serverEngine())("a consumer killed (SIGKILL) mid-stream and restarted resumes from its committed offsets: nothing lost, nothing rolled back", async () => {
    const topic = topicName("kill");
    await ensureTopic(topic);
    const source = await newSource();
    const { relay } = startRelay(source, topic);
    const ids = await burst(source, "k", 40);
    for (let i = 0; i < 3; i++) await source.query("UPDATE user_references SET preferences = jsonb_build_object('i', $2::int) WHERE id = ANY($1::uuid[])", [ids.slice(0, -1), i]);
    await expect.poll(async () => (await relay.status()).pending, { timeout: 10_000, interval: 100 }).toBe(0);
    const total = (await source.query<{ n: number }>("SELECT count(*)::int AS n FROM erebus_outbox")).rows[0]!.n;
    const cache = await newCache();
    const groupId = `${topic}-agents`;
    const script = fileURLToPath(new URL("../../../test/fixtures/kafka-consumer.ts", import.meta.url));
    const child = spawn(process.execPath, ["--conditions=erebus-source", "--import", "tsx", script], {
      env: { ...process.env, BROKERS: cluster.brokers().join(","), TOPIC: topic, GROUP: groupId, SECRET, TARGET_URL: cache.url! },
      stdio: ["ignore", "pipe", "inherit"],
    });
    const exited = new Promise<NodeJS.Signals | null>((resolve) => child.once("exit", (_code, signal) => resolve(signal)));
    cleanups.push(async () => child.exitCode === null && child.kill("SIGKILL"));
    await new Promise<void>((resolve, reject) => {
      child.stdout.on("data", (chunk: Buffer) => {
        const counts = [...chunk.toString().matchAll(/applied (\d+)/g)].map((m) => Number(m[1]));
        if (counts.some((n) => n >= 20)) resolve();
      });
      child.once("exit", () => reject(new Error("the consumer process ended before applying anything")));
    });
    child.kill("SIGKILL");
    expect(await exited).toBe("SIGKILL");
    const before = new Map((await cache.query<{ id: string; v: number }>("SELECT id, erebus_version::float8 AS v FROM user_references_cache")).rows.map((r) => [r.id, r.v]));
    expect(JSON.stringify(await cacheRows(cache))).not.toBe(JSON.stringify(await sourceRows(source))); // really mid-stream
    const restarted = consumerFor(topic, groupId, cache);
    await restarted.start();
    await sameAsSource(cache, source, 30_000);
    // It resumed from the committed offsets, not from the beginning, and no row went back to an older version.
    expect(restarted.stats().applied).toBeLessThan(total);
    const after = new Map((await cache.query<{ id: string; v: number }>("SELECT id, erebus_version::float8 AS v FROM user_references_cache")).rows.map((r) => [r.id, r.v]));
    for (const [id, v] of before) if (after.has(id)) expect(after.get(id)).toBeGreaterThanOrEqual(v);
    await expectNewestVersions(source, cache);
  });

  it("two consumers in one group split the partitions; when one leaves, the other takes them over without loss", async () => {
    const topic = topicName("split");
    await ensureTopic(topic);
    const source = await newSource();
    const { relay } = startRelay(source, topic);
    await insertAgent(source, "split-first"); // the mock creates the topic on first produce
    await expect.poll(async () => (await relay.status()).pending, { timeout: 10_000, interval: 100 }).toBe(0);
    const cache = await newCache();
    const [c1, c2] = [consumerFor(topic, `${topic}-agents`, cache), consumerFor(topic, `${topic}-agents`, cache)];
    await Promise.all([c1.start(), c2.start()]);
    await expect
      .poll(() => {
        const [p1, p2] = [c1.stats().partitions, c2.stats().partitions];
        return p1.length > 0 && p2.length > 0 && new Set([...p1, ...p2]).size === p1.length + p2.length && p1.length + p2.length === 4;
      }, { timeout: 20_000, interval: 100 })
      .toBe(true);
    await burst(source, "s1");
    await sameAsSource(cache, source);
    expect(c1.stats().applied).toBeGreaterThan(0);
    expect(c2.stats().applied).toBeGreaterThan(0);
    await c2.stop();
    await expect.poll(() => c1.stats().partitions.length, { timeout: 20_000, interval: 100 }).toBe(4);
    await burst(source, "s2");
    await sameAsSource(cache, source);
    await expectNewestVersions(source, cache);
  });

  it.skipIf(realCluster)("the cluster going away mid-stream delays delivery and loses nothing once it is back (on new ports)", async () => {
    const topic = topicName("outage");
    const source = await newSource();
    const { relay } = startRelay(source, topic);
    await burst(source, "before", 10);
    const cache = await newCache();
    const consumer = consumerFor(topic, `${topic}-agents`, cache);
    await consumer.start();
    await sameAsSource(cache, source);
    // The mock keeps its log in memory: a restarted one is empty, so the outage starts once the
    // consumer has caught up (a real cluster keeps the log; this tests the clients, not the broker).
    const old = cluster.brokers();
    await cluster.down();
    await burst(source, "during", 10); // the app keeps writing
    await expect.poll(async () => (await relay.status()).lastError, { timeout: 15_000, interval: 100 }).toMatch(/kafka/);
    expect((await relay.status()).pending).toBeGreaterThan(0);
    await cluster.up();
    expect(cluster.brokers()).not.toEqual(old);
    await burst(source, "after", 5);
    await sameAsSource(cache, source, 40_000);
    await expectNewestVersions(source, cache);
    expect(consumer.stats().restarts).toBeGreaterThanOrEqual(1);
  });

  it("finding 1: a malformed, unsigned or forged message on the topic is skipped, logged and counted, never applied", async () => {
    const topic = topicName("forged");
    await ensureTopic(topic);
    const source = await newSource();
    const { relay } = startRelay(source, topic);
    const victim = (await insertAgent(source, "victim")).rows[0]!.id;
    await expect.poll(async () => (await relay.status()).pending, { timeout: 10_000, interval: 100 }).toBe(0);
    const cache = await newCache();
    const warnings: Record<string, unknown>[] = [];
    const logger: Logger = { ...silentLogger, warn: (message, fields) => void warnings.push({ message, ...fields }) };
    const consumer = consumerFor(topic, `${topic}-agents`, cache, logger);
    await consumer.start();
    await sameAsSource(cache, source);
    const [row] = await sourceRows(source);
    const { rows: hw } = await source.query<{ v: number }>("SELECT last_value::float8 AS v FROM erebus_outbox_seq_seq");
    const forged = { v: 1, id: "999999999999", op: "update", reference_id: victim, version: 999_999_999_999, high_water: 999_999_999_999, occurred_at: new Date().toISOString(), row: { ...row, email: "attacker@x.test" } };
    const forgedValue = JSON.stringify(forged);
    const future = JSON.stringify({ ...forged, version: hw[0]!.v + 1000, high_water: hw[0]!.v, id: String(hw[0]!.v + 1000) });
    // Valid as an envelope, refused by PostgreSQL (there is no year 0): skipped, the partition goes on.
    const yearZero = JSON.stringify({ ...forged, version: hw[0]!.v, high_water: hw[0]!.v, id: String(hw[0]!.v), row: { ...row, created_at: "0000-01-01T00:00:00Z" } });
    const producer = new Kafka({ brokers: cluster.brokers(), logLevel: logLevel.NOTHING }).producer({ idempotent: false });
    cleanups.push(() => producer.disconnect());
    await producer.connect();
    await producer.send({
      topic,
      acks: -1,
      messages: [
        { key: victim, value: "{not json", headers: { [SIGNATURE_HEADER]: signEnvelope("{not json", SECRET) } },
        { key: victim, value: forgedValue },
        { key: victim, value: forgedValue, headers: { [SIGNATURE_HEADER]: signEnvelope(forgedValue, "guessed-secret-0123456789") } },
        { key: victim, value: future, headers: { [SIGNATURE_HEADER]: signEnvelope(future, SECRET) } },
        { key: victim, value: yearZero, headers: { [SIGNATURE_HEADER]: signEnvelope(yearZero, SECRET) } },
      ],
    });
    await source.query("UPDATE user_references SET email = 'real@x.test' WHERE id = $1", [victim]); // a real change after them
    await expect.poll(() => consumer.stats(), { timeout: 15_000, interval: 100 }).toMatchObject({ skipped: 4, refused: 1 });
    await sameAsSource(cache, source);
    expect((await cache.query<{ email: string }>("SELECT email FROM user_references_cache WHERE id = $1", [victim])).rows[0]!.email).toBe("real@x.test");
    expect(warnings.filter((w) => w.message === "sync consumer: skipped a message").map((w) => w.reason)).toEqual(["malformed", "unsigned", "bad-signature", "malformed"]);
    expect(warnings.some((w) => String(w.detail).includes("the database refused it"))).toBe(true);
    expect(warnings.some((w) => String(w.message).includes("high-water"))).toBe(true);
  });
});
