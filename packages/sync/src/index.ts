export { syncProvider } from "./sync-provider.js";
export { createSyncRelay, type SyncRelay, type SyncRelayOptions, type SyncStatus } from "./relay.js";
export { outboxMigration, OUTBOX_CHANNEL } from "./outbox.js";
export { postgresCacheSink, migrateCache, applyEvents, cacheMigration } from "./cache-sink.js";
export { kafkaSink, kafkaCacheConsumer, toKafkaMessage, envelopesOf } from "./kafka.js";
export { envelopeSchema, parseEnvelope, serializeEnvelope, type ChangeEnvelope, type SyncSink } from "./envelope.js";
