import * as z from "zod";

export const scopeSchema = z.string().regex(/^[a-z][a-z0-9_.:-]{0,63}$/, "scopes are short lower-case tokens like trade or read:orders");

/**
 * The `source_type` this provider emits for a key's own identity row: core's `api_key`, with the
 * scopes and the user that owns the key (`null` for keys created from the CLI).
 */
export const apiKeySourceTypeSchema = z.object({
  type: z.literal("api_key"),
  name: z.string(),
  scope: z.array(scopeSchema),
  metadata: z.object({
    permissions: z.array(scopeSchema),
    owner_reference_id: z.string().nullable(),
    key_prefix: z.string(),
  }),
});

export type ApiKeySourceType = z.infer<typeof apiKeySourceTypeSchema>;
