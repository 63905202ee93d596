import type { Database } from "@erebus/core";
import { Kafka, type KafkaConfig, type KafkaMessage } from "kafkajs";
import { applyEvents } from "./cache-sink.js";
import { parseEnvelope, serializeEnvelope, type ChangeEnvelope, type SyncSink } from "./envelope.js";

/** The Kafka record of an event: key = reference id (so one reference stays in one partition, in order). */
export function toKafkaMessage(event: ChangeEnvelope) {
  return { key: event.reference_id, value: serializeEnvelope(event), headers: { "erebus-envelope": "1", "erebus-op": event.op } };
}

/**
 * Publishes events to a Kafka topic (kafkajs), with an idempotent producer and one request in
 * flight, so a retry neither duplicates nor reorders within a partition.
 */
export function kafkaSink(options: { brokers: string[]; topic: string; clientId?: string; kafka?: Omit<KafkaConfig, "brokers"> }): SyncSink {
  const kafka = new Kafka({ clientId: options.clientId ?? "erebus-sync", ...options.kafka, brokers: options.brokers });
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
  let connected: Promise<void> | undefined;
  return {
    name: "kafka",
    async deliver(events) {
      connected ??= producer.connect().catch((error: unknown) => {
        connected = undefined;
        throw error;
      });
      await connected;
      await producer.send({ topic: options.topic, acks: -1, messages: events.map(toKafkaMessage) });
    },
    close: () => producer.disconnect(),
  };
}

/** Turns Kafka messages into envelopes; a message that is not a valid envelope is a TypeError naming its offset. */
export function envelopesOf(messages: readonly Pick<KafkaMessage, "value" | "offset">[]): ChangeEnvelope[] {
  return messages.map((message) => {
    if (!message.value) throw new TypeError(`kafka message at offset ${message.offset} has no value`);
    try {
      return parseEnvelope(message.value);
    } catch (error) {
      throw new TypeError(`kafka message at offset ${message.offset}: ${(error as Error).message}`);
    }
  });
}

/**
 * A consumer that keeps a service's own `user_references_cache` from the topic: each batch is
 * applied in one transaction (idempotently), then its offsets are committed. Run one per service
 * (its own `groupId`).
 */
export function kafkaCacheConsumer(options: { brokers: string[]; topic: string; groupId: string; target: Database; clientId?: string }) {
  const kafka = new Kafka({ clientId: options.clientId ?? "erebus-sync-consumer", brokers: options.brokers });
  const consumer = kafka.consumer({ groupId: options.groupId });
  return {
    async start(): Promise<void> {
      await consumer.connect();
      await consumer.subscribe({ topic: options.topic, fromBeginning: true });
      await consumer.run({
        autoCommit: false,
        eachBatch: async ({ batch, resolveOffset, commitOffsetsIfNecessary }) => {
          await options.target.transaction((tx) => applyEvents(tx, envelopesOf(batch.messages)));
          const last = batch.messages.at(-1);
          if (last) resolveOffset(last.offset);
          await commitOffsetsIfNecessary();
        },
      });
    },
    stop: () => consumer.disconnect(),
  };
}
