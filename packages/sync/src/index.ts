export { syncProvider } from "./sync-provider.js";
export { createSyncRelay, type SyncRelay, type SyncRelayOptions, type SyncStatus } from "./relay.js";
export { outboxMigration, outboxClaimsMigration, OUTBOX_CHANNEL } from "./outbox.js";
export {
  postgresCacheSink,
  migrateCache,
  applyEvents,
  resyncCache,
  grantCacheReader,
  cacheMigration,
  cachePrivilegesMigration,
  type ApplyResult,
  type ResyncResult,
} from "./cache-sink.js";
export {
  kafkaSink,
  kafkaCacheConsumer,
  toKafkaMessage,
  envelopesOf,
  SIGNATURE_HEADER,
  type KafkaClientOptions,
  type KafkaSinkOptions,
  type KafkaCacheConsumerOptions,
  type KafkaCacheConsumer,
  type KafkaConsumerStats,
  type SkipReason,
} from "./kafka.js";
export {
  envelopeSchema,
  parseEnvelope,
  serializeEnvelope,
  signEnvelope,
  verifyEnvelopeSignature,
  type ChangeEnvelope,
  type SyncSink,
} from "./envelope.js";
