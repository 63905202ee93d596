import { consoleLogger, type Database, type Logger } from "@erebus/core";
import { Kafka, logLevel, type Consumer, type KafkaConfig, type KafkaMessage, type Producer } from "kafkajs";
import { applyEvents, type ApplyResult } from "./cache-sink.js";
import { parseEnvelope, serializeEnvelope, signEnvelope, verifyEnvelopeSignature, type ChangeEnvelope, type SyncSink } from "./envelope.js";

// kafkajs is the one place this file touches a Kafka client: it has had no release since 2023, so
// everything else (relay, envelope, apply) only knows the SyncSink interface and the consumer's
// start/stop/stats, and a different client can replace it here alone.

/** Header carrying the envelope's HMAC (`sha256=<hex>`), when the sink has a `secret`. */
export const SIGNATURE_HEADER = "erebus-signature";

/** Client options shared by the sink and the consumer: the same connection settings on both sides. */
export interface KafkaClientOptions {
  /**
   * Seed brokers, or a function that returns them: called again for every fresh client (after the
   * cluster went away), so brokers that come back on other addresses are found.
   */
  brokers: string[] | (() => string[] | Promise<string[]>);
  clientId?: string;
  /** TLS: `true`, or node's `tls.connect` options (CA, client certificate). */
  ssl?: KafkaConfig["ssl"];
  /** SASL: `{ mechanism: "plain" | "scram-sha-256" | "scram-sha-512", username, password }`, or kafkajs's others. */
  sasl?: KafkaConfig["sasl"];
  /** Any other kafkajs client option (timeouts, `retry`, …). */
  kafka?: Omit<KafkaConfig, "brokers" | "clientId" | "ssl" | "sasl">;
  logger?: Logger;
}

function checkClientOptions(where: string, options: KafkaClientOptions & { topic: string }): void {
  const { brokers, topic } = options;
  if (typeof brokers !== "function" && (!Array.isArray(brokers) || brokers.length === 0 || brokers.some((b) => typeof b !== "string" || !/^\S+:\d+$/.test(b)))) {
    throw new TypeError(`${where}: option "brokers" must be a non-empty list of "host:port" (or a function returning one)`);
  }
  if (typeof topic !== "string" || !/^[A-Za-z0-9._-]{1,249}$/.test(topic)) throw new TypeError(`${where}: option "topic" must be a Kafka topic name`);
}

/** A kafkajs client whose own log lines go to the Erebus logger (errors as warnings: the sync retries them). */
function createClient(options: KafkaClientOptions, defaultClientId: string, logger: Logger): Kafka {
  return new Kafka({
    logLevel: logLevel.WARN,
    logCreator: () => ({ level, log }) => {
      const fields = { namespace: log.namespace, error: (log as { error?: string }).error };
      if (level <= logLevel.WARN) logger.warn(`kafka: ${log.message}`, fields);
      else logger.debug(`kafka: ${log.message}`, fields);
    },
    ...options.kafka,
    clientId: options.clientId ?? defaultClientId,
    brokers: options.brokers,
    ...(options.ssl !== undefined ? { ssl: options.ssl } : {}),
    ...(options.sasl !== undefined ? { sasl: options.sasl } : {}),
  });
}

/**
 * The Kafka record of an event: key = reference id (so one reference stays in one partition, in
 * order), and with a `secret`, the envelope's HMAC in a header.
 */
export function toKafkaMessage(event: ChangeEnvelope, secret?: string) {
  const value = serializeEnvelope(event);
  const headers: Record<string, string> = { "erebus-envelope": "1", "erebus-op": event.op };
  if (secret !== undefined) headers[SIGNATURE_HEADER] = signEnvelope(value, secret);
  return { key: event.reference_id, value, headers };
}

export interface KafkaSinkOptions extends KafkaClientOptions {
  topic: string;
  /**
   * kafkajs's idempotent producer (default `true`): no duplicate from a retried send. Delivery does
   * not depend on it (the consumer applies by event version, so a duplicate changes nothing); turn
   * it off for brokers whose InitProducerId kafkajs cannot reach (librdkafka's mock cluster).
   */
  idempotent?: boolean;
  /** Shared secret: every envelope is signed (HMAC-SHA256) so consumers can refuse forged ones. */
  secret?: string;
}

/**
 * Publishes events to a Kafka topic (kafkajs) with `acks: -1` and one request in flight, so a
 * retry never reorders within a partition. After a failed send the client is dropped and the next
 * delivery builds a fresh one (brokers resolved again), so a cluster that comes back elsewhere is
 * found; the relay's backoff paces the retries.
 */
export function kafkaSink(options: KafkaSinkOptions): SyncSink & { close(): Promise<void> } {
  checkClientOptions("kafkaSink", options);
  if (options.secret !== undefined && (typeof options.secret !== "string" || options.secret.length < 16)) {
    throw new TypeError('kafkaSink: option "secret" must be a string of at least 16 characters');
  }
  const logger = options.logger ?? consoleLogger();
  // Unsigned, anyone who can produce to the topic writes every consumer's cache (and its high_water).
  if (options.secret === undefined) logger.warn("kafkaSink: no secret: envelopes are unsigned, so consumers cannot tell them from forged ones (set secret)", { topic: options.topic });
  const idempotent = options.idempotent ?? true;
  if (idempotent && options.kafka?.retry?.retries === 0) {
    throw new TypeError('kafkaSink: an idempotent producer needs retries (kafka.retry.retries > 0), or set idempotent: false');
  }
  let producer: Producer | undefined;
  let connected: Promise<void> | undefined;
  const drop = async () => {
    const old = producer;
    producer = undefined;
    connected = undefined;
    await old?.disconnect().catch(() => undefined);
  };
  return {
    name: "kafka",
    async deliver(events) {
      if (!producer) {
        producer = createClient(options, "erebus-sync", logger).producer({ idempotent, maxInFlightRequests: 1, allowAutoTopicCreation: true });
        connected = producer.connect();
      }
      try {
        await connected;
        await producer.send({ topic: options.topic, acks: -1, messages: events.map((e) => toKafkaMessage(e, options.secret)) });
      } catch (error) {
        await drop();
        throw error;
      }
    },
    close: drop,
  };
}

/** Why a message was skipped rather than applied. */
export type SkipReason = "unsigned" | "bad-signature" | "malformed";

/**
 * Turns Kafka messages into envelopes. With `secrets`, a message must carry a valid HMAC of its
 * value under one of them; a message that is unsigned, mis-signed or not a valid envelope lands in
 * `skipped` with its reason, never in `envelopes`.
 */
export function envelopesOf(
  messages: readonly Pick<KafkaMessage, "value" | "offset" | "headers">[],
  secrets: readonly string[] = [],
): { envelopes: ChangeEnvelope[]; offsets: string[]; skipped: { offset: string; reason: SkipReason; detail: string }[] } {
  const envelopes: ChangeEnvelope[] = [];
  const offsets: string[] = [];
  const skipped: { offset: string; reason: SkipReason; detail: string }[] = [];
  for (const message of messages) {
    const value = message.value;
    if (secrets.length > 0) {
      const header = message.headers?.[SIGNATURE_HEADER];
      const signature = header === undefined ? undefined : (Array.isArray(header) ? header[0] : header)?.toString();
      if (!signature) {
        skipped.push({ offset: message.offset, reason: "unsigned", detail: `no ${SIGNATURE_HEADER} header` });
        continue;
      }
      if (!value || !verifyEnvelopeSignature(value, signature, secrets)) {
        skipped.push({ offset: message.offset, reason: "bad-signature", detail: "HMAC does not match" });
        continue;
      }
    }
    if (!value) {
      skipped.push({ offset: message.offset, reason: "malformed", detail: "no value" });
      continue;
    }
    try {
      envelopes.push(parseEnvelope(value));
      offsets.push(message.offset);
    } catch (error) {
      skipped.push({ offset: message.offset, reason: "malformed", detail: (error as Error).message });
    }
  }
  return { envelopes, offsets, skipped };
}

// SQLSTATE classes 22 (data exception) and 23 (integrity constraint): the event itself is what the
// database refuses, and it would be refused again on every retry. Anything else (the database is
// away, a deadlock) is retried.
const refusedByDatabase = (error: unknown) => /^2[23]/.test(String((error as { code?: unknown }).code ?? ""));

export interface KafkaCacheConsumerOptions extends KafkaClientOptions {
  topic: string;
  /** One per service: each group gets every event. */
  groupId: string;
  /** The service's own database, where `user_references_cache` lives (`migrateCache`). */
  target: Database;
  /** Shared secret(s) of the sink: when set, unsigned or mis-signed messages are skipped. Several during a rotation. */
  secret?: string | readonly string[];
  /** Milliseconds before a fresh client is tried after the consumer crashed (the cluster went away). Default 1000. */
  restartDelay?: number;
  /** kafkajs consumer options: `sessionTimeout`, `heartbeatInterval`, `rebalanceTimeout`, … */
  consumer?: { sessionTimeout?: number; heartbeatInterval?: number; rebalanceTimeout?: number; maxWaitTimeInMs?: number; maxBytesPerPartition?: number };
  /**
   * Partitions applied at the same time, each still in order (they hold disjoint references), default 4:
   * one at a time, a consumer lagged a second behind 1,000 changes/s in the benchmark.
   */
  partitionsConcurrently?: number;
}

export interface KafkaConsumerStats {
  /** Envelopes applied (an older version than the cache holds still counts: it changed nothing, idempotently). */
  applied: number;
  /** Messages skipped: unsigned, mis-signed (with a secret), or not a valid envelope. */
  skipped: number;
  /** Envelopes refused for a version above their source high-water mark. */
  refused: number;
  /** Fresh clients built after a crash. */
  restarts: number;
  /** Partitions this member holds now. */
  partitions: number[];
}

/**
 * A consumer that keeps a service's own `user_references_cache` from the topic: each batch is
 * applied in one transaction (idempotently, by event version), then its offsets are committed, so a
 * consumer killed between the two re-applies the batch, which changes nothing. A message that is
 * malformed or (with `secret`) unsigned or mis-signed is skipped, logged and counted, never applied
 * and never a reason to stop. If the consumer crashes (the cluster went away), a fresh client is
 * built after `restartDelay` and it resumes from the committed offsets.
 */
export function kafkaCacheConsumer(options: KafkaCacheConsumerOptions) {
  checkClientOptions("kafkaCacheConsumer", options);
  if (typeof options.groupId !== "string" || options.groupId === "") throw new TypeError('kafkaCacheConsumer: option "groupId" must be a non-empty string');
  if (!options.target || typeof options.target.transaction !== "function") throw new TypeError('kafkaCacheConsumer: option "target" must be a Database');
  const secrets = options.secret === undefined ? [] : typeof options.secret === "string" ? [options.secret] : [...options.secret];
  if (secrets.some((s) => typeof s !== "string" || s.length < 16)) throw new TypeError('kafkaCacheConsumer: option "secret" must be strings of at least 16 characters');
  const logger = options.logger ?? consoleLogger();
  if (secrets.length === 0) logger.warn("kafkaCacheConsumer: no secret: every well-formed message on the topic is applied, forged ones too (set secret)", { topic: options.topic });
  const restartDelay = options.restartDelay ?? 1000;
  const stats: KafkaConsumerStats = { applied: 0, skipped: 0, refused: 0, restarts: 0, partitions: [] };
  let consumer: Consumer | undefined;
  let running = false;
  let restartTimer: NodeJS.Timeout | undefined;

  /** After a crash: a fresh client (brokers resolved again) after `restartDelay`, and again until one runs or `stop()`. */
  function scheduleRestart(error: Error): void {
    if (!running || restartTimer) return;
    logger.warn("sync consumer: crashed, starting a fresh client", { groupId: options.groupId, error: error.message, delayMs: restartDelay });
    restartTimer = setTimeout(() => {
      restartTimer = undefined;
      if (!running) return;
      stats.restarts++;
      launch().catch((failure: unknown) => scheduleRestart(failure as Error));
    }, restartDelay);
  }

  async function launch(): Promise<void> {
    const current = createClient(options, "erebus-sync-consumer", logger).consumer({
      groupId: options.groupId,
      ...options.consumer,
      // A crash is handled here (a fresh client, brokers resolved again), not by kafkajs restarting the old one.
      retry: { ...options.kafka?.retry, restartOnFailure: async () => false },
    });
    consumer = current;
    current.on(current.events.GROUP_JOIN, ({ payload }) => {
      stats.partitions = [...(payload.memberAssignment[options.topic] ?? [])].sort((a, b) => a - b);
    });
    current.on(current.events.CRASH, ({ payload }) => {
      if (consumer !== current) return;
      consumer = undefined;
      stats.partitions = [];
      void current.disconnect().catch(() => undefined);
      scheduleRestart(payload.error);
    });
    try {
      await current.connect();
      await current.subscribe({ topic: options.topic, fromBeginning: true });
      await current.run({
        autoCommit: false,
        partitionsConsumedConcurrently: options.partitionsConcurrently ?? 4,
        eachBatchAutoResolve: false,
        eachBatch: async ({ batch, resolveOffset, heartbeat }) => {
          const last = batch.messages.at(-1);
          if (!last) return;
          const { envelopes, offsets, skipped } = envelopesOf(batch.messages, secrets);
          let result: ApplyResult;
          try {
            result = await options.target.transaction((tx) => applyEvents(tx, envelopes));
          } catch (error) {
            if (!refusedByDatabase(error)) throw error;
            // One event the database refuses must not stop the partition: apply one at a time, skip what it refuses.
            result = { accepted: 0, refused: [] };
            for (const [i, envelope] of envelopes.entries()) {
              try {
                const one = await options.target.transaction((tx) => applyEvents(tx, [envelope]));
                result.accepted += one.accepted;
                result.refused.push(...one.refused);
              } catch (failure) {
                if (!refusedByDatabase(failure)) throw failure;
                skipped.push({ offset: offsets[i]!, reason: "malformed", detail: `the database refused it: ${(failure as Error).message}` });
              }
            }
          }
          for (const skip of skipped) {
            logger.warn("sync consumer: skipped a message", { topic: batch.topic, partition: batch.partition, offset: skip.offset, reason: skip.reason, detail: skip.detail });
          }
          for (const event of result.refused) {
            logger.warn("sync consumer: refused an event with a version above its source high-water mark", { partition: batch.partition, id: event.id, version: event.version });
          }
          stats.skipped += skipped.length;
          stats.refused += result.refused.length;
          stats.applied += result.accepted;
          resolveOffset(last.offset);
          await current.commitOffsets([{ topic: batch.topic, partition: batch.partition, offset: (BigInt(last.offset) + 1n).toString() }]);
          await heartbeat();
        },
      });
    } catch (error) {
      if (consumer === current) consumer = undefined;
      await current.disconnect().catch(() => undefined);
      throw error;
    }
  }

  return {
    /** Connects, joins the group and starts applying; resolves once it runs (retries after a crash on its own). */
    async start(): Promise<void> {
      if (running) return;
      running = true;
      try {
        await launch();
      } catch (error) {
        running = false;
        throw error;
      }
    },
    /** Leaves the group (its partitions go to the other members) and disconnects. */
    async stop(): Promise<void> {
      running = false;
      clearTimeout(restartTimer);
      restartTimer = undefined;
      const current = consumer;
      consumer = undefined;
      stats.partitions = [];
      await current?.disconnect();
    },
    stats: (): KafkaConsumerStats => ({ ...stats, partitions: [...stats.partitions] }),
  };
}

export type KafkaCacheConsumer = ReturnType<typeof kafkaCacheConsumer>;
