import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createAuth, silentLogger, type Database } from "@erebus/core";
import { engines } from "../../../test/engines.js";
import { cacheRows, insertAgent, sourceRows } from "../../../test/sync.js";
import { applyEvents, postgresCacheSink } from "./cache-sink.js";
import { parseEnvelope, serializeEnvelope, type ChangeEnvelope, type SyncSink } from "./envelope.js";
import { envelopesOf, kafkaCacheConsumer, kafkaSink, toKafkaMessage } from "./kafka.js";
import { createSyncRelay } from "./relay.js";
import { syncProvider } from "./sync-provider.js";

const engine = engines()[0]!;

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

  it("versions and validates the envelope, carrying the whole row and an ordering key", () => {
    expect(captured).toHaveLength(3);
    const [first] = captured;
    expect(first).toMatchObject({ v: 1, op: "insert", version: Number(first!.id), row: { id: first!.reference_id, source_identifier: "kafka-1", network: "system" } });
    expect(parseEnvelope(serializeEnvelope(first!))).toEqual(first);
    expect(() => parseEnvelope("{")).toThrow(/not JSON/);
    expect(() => parseEnvelope(JSON.stringify({ ...first, v: 2 }))).toThrow(/v/);
    expect(() => parseEnvelope(JSON.stringify({ ...first, row: { ...first!.row, id: "nope" } }))).toThrow(/row\.id/);
    expect(() => serializeEnvelope({ ...first!, op: "upsert" as never })).toThrow();
  });

  it("keys each record by reference id, so one reference stays in one partition, in order", () => {
    const messages = captured.map(toKafkaMessage);
    expect(messages.map((m) => m.key)).toEqual(captured.map((e) => e.reference_id));
    expect(messages[0]!.headers).toEqual({ "erebus-envelope": "1", "erebus-op": "insert" });
    expect(JSON.parse(messages[1]!.value)).toEqual(captured[1]);
  });

  it("a consumer's batch (as Kafka hands it over) applies to a service's own cache", async () => {
    const batch = captured.map((e, i) => ({ offset: String(i), value: Buffer.from(toKafkaMessage(e).value) }));
    await target.transaction((tx) => applyEvents(tx, envelopesOf(batch)));
    await target.transaction((tx) => applyEvents(tx, envelopesOf(batch))); // redelivered: nothing changes
    expect(await cacheRows(target)).toEqual(await sourceRows(source));
    expect(() => envelopesOf([{ offset: "7", value: Buffer.from("garbage") }])).toThrow(/offset 7/);
    expect(() => envelopesOf([{ offset: "8", value: null }])).toThrow(/offset 8 has no value/);
  });
});

const brokers = process.env.KAFKA_BROKERS?.split(",").filter(Boolean);
if (!brokers) {
  console.info("[erebus tests] Kafka integration test skipped: set KAFKA_BROKERS=host:9092 to run it (no Kafka broker can be installed on this machine)");
}
describe.skipIf(!brokers)("Kafka sink → topic → consumer → cache (needs KAFKA_BROKERS)", () => {
  it("carries every change from the outbox through Kafka into a consumer's cache", async () => {
    const source = await engine.create();
    const target = await engine.create();
    const topic = `erebus-test-${Date.now()}`;
    const auth = createAuth({ database: source, baseURL: "http://app.test", providers: [syncProvider()], migrate: true, logger: silentLogger });
    await auth.ready;
    await postgresCacheSink(target).migrate();
    for (let i = 0; i < 10; i++) await insertAgent(source, `kafka-int-${i}`);
    const sink = kafkaSink({ brokers: brokers!, topic });
    await createSyncRelay({ source, sink, logger: silentLogger }).drain();
    const consumer = kafkaCacheConsumer({ brokers: brokers!, topic, groupId: `${topic}-group`, target });
    await consumer.start();
    try {
      await expect.poll(async () => (await cacheRows(target)).length, { timeout: 30_000, interval: 200 }).toBe(10);
      expect(await cacheRows(target)).toEqual(await sourceRows(source));
    } finally {
      await consumer.stop();
      await sink.close?.();
      await source.close();
      await target.close();
    }
  });
});
