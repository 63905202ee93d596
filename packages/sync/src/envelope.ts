import { createHmac, timingSafeEqual } from "node:crypto";
import * as z from "zod";

/** The `user_references` row as the outbox captured it (`to_jsonb`: timestamps are ISO strings). */
export const referenceRowSchema = z.looseObject({
  id: z.uuid(),
  source_identifier: z.string(),
  network: z.string(),
  user_type: z.string(),
  source_type: z.record(z.string(), z.unknown()),
  email: z.string().nullable(),
  metadata: z.record(z.string(), z.unknown()).nullable(),
  preferences: z.record(z.string(), z.unknown()).nullable(),
  is_active: z.boolean().nullable(),
  /** The person (absent in events written before people existed: then the row is its own person). */
  person_id: z.uuid().optional(),
  created_at: z.iso.datetime({ offset: true }),
  updated_at: z.iso.datetime({ offset: true }),
});

/**
 * A change event, version 1. `id` is stable: the same event redelivered carries the same id.
 * `version` orders the events of one reference (it is the outbox sequence number: increasing in
 * commit order per reference); `row` is the whole row after the change (before it, for a delete).
 * `high_water` is the highest version the source had issued when the relay sent the event: a
 * sink refuses an event whose version is above it (a version from the future would block every
 * real update of that reference). Optional, so envelopes written before it still parse.
 */
export const envelopeSchema = z.strictObject({
  v: z.literal(1),
  /** Unique per event: the outbox sequence number, as a string. */
  id: z.string().regex(/^\d+$/),
  op: z.enum(["insert", "update", "delete"]),
  reference_id: z.uuid(),
  version: z.number().int().positive(),
  high_water: z.number().int().positive().optional(),
  occurred_at: z.iso.datetime({ offset: true }),
  row: referenceRowSchema,
});

export type ChangeEnvelope = z.infer<typeof envelopeSchema>;

/** JSON text of an envelope, validated on the way out as on the way in. */
export function serializeEnvelope(envelope: ChangeEnvelope): string {
  return JSON.stringify(envelopeSchema.parse(envelope));
}

/** Parses and validates a serialized envelope; throws a TypeError naming the problem. */
export function parseEnvelope(text: string | Buffer): ChangeEnvelope {
  let json: unknown;
  try {
    json = JSON.parse(text.toString());
  } catch {
    throw new TypeError("change envelope is not JSON");
  }
  const result = envelopeSchema.safeParse(json);
  if (!result.success) {
    const issue = result.error.issues[0]!;
    throw new TypeError(`change envelope ${issue.path.join(".") || "(root)"}: ${issue.message}`);
  }
  const bad = unstorable(result.data, "");
  if (bad) throw new TypeError(`change envelope ${bad}: contains U+0000 or an unpaired surrogate, which PostgreSQL cannot store`);
  return result.data;
}

// What PostgreSQL refuses in text and jsonb: NUL, and UTF-16 surrogates without their pair. An
// envelope carrying one would fail in the cache's transaction on every retry and stop the partition.
const UNSTORABLE = /\u0000|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/** The path of the first string (value or key) PostgreSQL cannot store, or undefined. */
function unstorable(value: unknown, path: string): string | undefined {
  if (typeof value === "string") return UNSTORABLE.test(value) ? path || "(root)" : undefined;
  if (Array.isArray(value)) {
    for (const [i, item] of value.entries()) {
      const found = unstorable(item, `${path}.${i}`);
      if (found) return found;
    }
    return undefined;
  }
  if (value && typeof value === "object") {
    for (const [key, item] of Object.entries(value)) {
      const where = path ? `${path}.${key}` : key;
      if (UNSTORABLE.test(key)) return where;
      const found = unstorable(item, where);
      if (found) return found;
    }
  }
  return undefined;
}

/** Where events go. `deliver` gets them in outbox order (per reference ascending) and resolves once they are durably applied or sent. */
export interface SyncSink {
  readonly name: string;
  deliver(events: readonly ChangeEnvelope[]): Promise<void>;
  close?(): Promise<void>;
}

/**
 * The HMAC of a serialized envelope (`sha256=<hex>` over its exact bytes), for transports where
 * whoever can write can forge (a Kafka topic): the producer signs with a shared secret, the
 * consumer checks before it parses.
 */
export function signEnvelope(value: string | Buffer, secret: string): string {
  return `sha256=${createHmac("sha256", secret).update(value).digest("hex")}`;
}

/** Whether `signature` is the HMAC of `value` under one of `secrets` (several during a rotation). Constant time per secret. */
export function verifyEnvelopeSignature(value: string | Buffer, signature: string | undefined, secrets: readonly string[]): boolean {
  if (!signature) return false;
  const given = Buffer.from(signature);
  return secrets.some((secret) => {
    const expected = Buffer.from(signEnvelope(value, secret));
    return expected.length === given.length && timingSafeEqual(expected, given);
  });
}
