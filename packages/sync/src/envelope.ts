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
  created_at: z.string(),
  updated_at: z.string(),
});

/**
 * A change event, version 1. `version` orders the events of one reference (it is the outbox
 * sequence number: increasing in commit order per reference); `row` is the whole row after the
 * change (before it, for a delete).
 */
export const envelopeSchema = z.strictObject({
  v: z.literal(1),
  /** Unique per event: the outbox sequence number, as a string. */
  id: z.string().regex(/^\d+$/),
  op: z.enum(["insert", "update", "delete"]),
  reference_id: z.uuid(),
  version: z.number().int().positive(),
  occurred_at: z.string(),
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
  return result.data;
}

/** Where events go. `deliver` gets them in outbox order (per reference ascending) and resolves once they are durably applied or sent. */
export interface SyncSink {
  readonly name: string;
  deliver(events: readonly ChangeEnvelope[]): Promise<void>;
  close?(): Promise<void>;
}
