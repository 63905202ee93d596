import * as z from "zod";

/**
 * The JSON kind a `source_type` key must have, as the database checks it with `jsonb_typeof`.
 * `integer` is a number without a fraction; `array:<kind>` is an array whose every element has that kind.
 */
export type JsonKind = "string" | "number" | "integer" | "boolean" | "object" | "array" | `array:${"string" | "number" | "integer" | "boolean" | "object"}`;

/** The database rule of a source type: the row core writes into `erebus_source_types`. */
export interface SourceTypeRule {
  required: Record<string, JsonKind>;
  optional: Record<string, JsonKind>;
}

/** A source type: its name, the zod schema of its `source_type` object, and the database rule derived from it. */
export interface SourceTypeDefinition<Type extends string = string, Schema extends z.ZodType = z.ZodType> {
  readonly type: Type;
  readonly schema: Schema;
  readonly rule: SourceTypeRule;
}

const NAME = /^[a-z][a-z0-9_]{0,62}$/;

function kindOf(field: z.ZodType, path: string): JsonKind {
  const json = z.toJSONSchema(field, { io: "input", unrepresentable: "any" }) as { type?: unknown; items?: { type?: unknown } };
  const simple = (type: unknown) =>
    type === "string" || type === "number" || type === "integer" || type === "boolean" || type === "object" ? type : undefined;
  if (json.type === "array") {
    const item = simple(json.items?.type);
    return item ? `array:${item}` : "array";
  }
  const kind = simple(json.type);
  if (!kind) {
    throw new TypeError(`source type field "${path}" must have exactly one JSON kind (string, number, integer, boolean, object or array)`);
  }
  return kind;
}

/**
 * Defines a source type once: the zod schema core validates with, and the database rule the
 * `validate_source_type()` trigger enforces, both from the same shape, so they cannot disagree.
 * Keys not in the shape are allowed (and kept) by both.
 *
 * @example
 * export const passkeySourceType = defineSourceType("passkey", {
 *   credential_id: z.string(),
 *   transports: z.array(z.string()).optional(),
 *   metadata: z.record(z.string(), z.unknown()).optional(),
 * });
 */
export function defineSourceType<const Type extends string, Shape extends z.ZodRawShape>(type: Type, shape: Shape) {
  if (!NAME.test(type)) throw new TypeError(`source type name "${type}" must match ${NAME}`);
  if ("type" in shape) throw new TypeError(`source type "${type}": the "type" key is added by defineSourceType; leave it out of the shape`);
  const rule: SourceTypeRule = { required: {}, optional: {} };
  for (const [key, field] of Object.entries(shape)) {
    const optional = (field as z.ZodType).safeParse(undefined).success;
    (optional ? rule.optional : rule.required)[key] = kindOf(field as z.ZodType, `${type}.${key}`);
  }
  const schema = z.looseObject({ type: z.literal(type), ...shape });
  return { type, schema, rule } satisfies SourceTypeDefinition;
}

const jsonObject = z.record(z.string(), z.unknown());

/** `web3_wallet`: an Ethereum or Solana wallet. */
export const web3WalletSourceType = defineSourceType("web3_wallet", {
  provider: z.string(),
  network: z.string().optional(),
  metadata: jsonObject.optional(),
});
/** `api_key`: a program's API key. */
export const apiKeySourceType = defineSourceType("api_key", {
  name: z.string(),
  scope: z.array(z.string()),
  metadata: jsonObject.optional(),
});
/** `email_auth`: a verified email address. */
export const emailAuthSourceType = defineSourceType("email_auth", {
  verified: z.boolean(),
  provider: z.string(),
  metadata: jsonObject.optional(),
});
/** `system_agent`: a non-human principal (task runner, monitor). */
export const systemAgentSourceType = defineSourceType("system_agent", {
  agent_type: z.string(),
  capabilities: z.array(z.string()),
  metadata: jsonObject.optional(),
});
/** `oauth`: an OAuth 2.0 / OpenID Connect account. */
export const oauthSourceType = defineSourceType("oauth", {
  provider: z.string(),
  user_id: z.string(),
  metadata: jsonObject.optional(),
});

export type Web3WalletSourceType = z.infer<typeof web3WalletSourceType.schema>;
export type ApiKeySourceType = z.infer<typeof apiKeySourceType.schema>;
export type EmailAuthSourceType = z.infer<typeof emailAuthSourceType.schema>;
export type SystemAgentSourceType = z.infer<typeof systemAgentSourceType.schema>;
export type OAuthSourceType = z.infer<typeof oauthSourceType.schema>;
export type SeedSourceType = Web3WalletSourceType | ApiKeySourceType | EmailAuthSourceType | SystemAgentSourceType | OAuthSourceType;

/** The five source types of the seed, registered by core's own migration. */
export const coreSourceTypes = [
  web3WalletSourceType,
  apiKeySourceType,
  emailAuthSourceType,
  systemAgentSourceType,
  oauthSourceType,
] as const;

/** A lookup of source types by name: core's five plus what providers register. */
export class SourceTypeRegistry {
  readonly #types = new Map<string, SourceTypeDefinition>();

  constructor(definitions: readonly SourceTypeDefinition[] = coreSourceTypes) {
    for (const definition of definitions) this.add(definition, "core");
  }

  add(definition: SourceTypeDefinition, owner: string): void {
    const existing = this.#types.get(definition.type);
    if (existing && existing !== definition) {
      throw new TypeError(`source type "${definition.type}" (from ${owner}) is already registered`);
    }
    this.#types.set(definition.type, definition);
  }

  get(type: string): SourceTypeDefinition | undefined {
    return this.#types.get(type);
  }

  all(): SourceTypeDefinition[] {
    return [...this.#types.values()];
  }

  /** Validates a `source_type` object against its registered schema. */
  parse(value: unknown): { success: true; data: Record<string, unknown> & { type: string } } | { success: false; issue: string } {
    if (typeof value !== "object" || value === null || Array.isArray(value)) {
      return { success: false, issue: "source_type must be a JSON object" };
    }
    const type = (value as { type?: unknown }).type;
    if (typeof type !== "string") return { success: false, issue: "source_type.type must be a string" };
    const definition = this.#types.get(type);
    if (!definition) return { success: false, issue: `source_type.type "${type}" is not registered` };
    const result = definition.schema.safeParse(value);
    if (!result.success) {
      const first = result.error.issues[0];
      return { success: false, issue: `source_type.${first?.path.join(".") ?? ""}: ${first?.message ?? "invalid"}` };
    }
    return { success: true, data: result.data as Record<string, unknown> & { type: string } };
  }
}
