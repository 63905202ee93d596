import { keccak_256 } from "@noble/hashes/sha3.js";
import * as z from "zod";
import { AuthError } from "./errors.js";
import { findPgUnsafeString, PG_TEXT_MESSAGE } from "./pg-text.js";
import type { SourceTypeRegistry } from "./source-types.js";

/** Who a `user_references` row stands for. */
export const userTypes = ["external", "system", "agent", "api"] as const;
export type UserType = (typeof userTypes)[number];

/** What a provider hands to core after it has verified a credential. */
export interface VerifiedIdentity {
  /** `ethereum`, `solana`, `oauth`, `email`, `api`, `system`, or a provider's own network. */
  network: string;
  /** The canonical identifier on that network (see {@link canonicalIdentities}). */
  sourceIdentifier: string;
  /** Defaults to the network's first allowed user type (`external` for people). */
  userType?: UserType;
  /** The `source_type` object; must match a registered source type. */
  sourceType: { type: string } & Record<string, unknown>;
  /** Set only when the provider has verified the address. Lower-cased by core. */
  email?: string | null;
  /** Written only when the row is created; never overwrites the user-owned `metadata` later. */
  metadata?: Record<string, unknown>;
}

interface CanonicalRule {
  sourceType: string;
  userTypes: readonly UserType[];
  /** What a well-formed identifier is, for the error message. */
  describe: string;
  check(identifier: string, sourceType: Record<string, unknown>): boolean;
}

/**
 * Checksums of recent addresses: one sign-in asks for the same address's checksum three or four
 * times (the nonce's message, the recovered signer, the identity's canonical check), and each is a
 * keccak-256 in JavaScript. Keyed by the lower-case hex, bounded (the oldest goes first).
 */
const checksums = new Map<string, string>();
const CHECKSUMS_KEPT = 4096;

/** EIP-55 mixed-case checksum of a 20-byte hex address (https://eips.ethereum.org/EIPS/eip-55). */
export function toChecksumAddress(address: string): string {
  const hex = address.toLowerCase().replace(/^0x/, "");
  const known = checksums.get(hex);
  if (known !== undefined) return known;
  const hash = Buffer.from(keccak_256(new TextEncoder().encode(hex))).toString("hex");
  let out = "0x";
  for (let i = 0; i < hex.length; i++) {
    out += Number.parseInt(hash[i]!, 16) >= 8 ? hex[i]!.toUpperCase() : hex[i]!;
  }
  if (hex.length === 40) {
    if (checksums.size >= CHECKSUMS_KEPT) checksums.delete(checksums.keys().next().value!);
    checksums.set(hex, out);
  }
  return out;
}

const BASE58_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
const BASE58 = /^[1-9A-HJ-NP-Za-km-z]+$/;

/** Number of bytes a base58 string decodes to (leading "1"s are zero bytes). */
function base58DecodedLength(value: string): number {
  let n = 0n;
  for (const char of value) n = n * 58n + BigInt(BASE58_ALPHABET.indexOf(char));
  const zeros = value.length - value.replace(/^1+/, "").length;
  return zeros + (n === 0n ? 0 : Math.ceil(n.toString(16).length / 2));
}

/**
 * The canonical identities of DESIGN.md: per network, the source type, the allowed user types
 * and what a canonical `source_identifier` is. Providers canonicalize; core refuses what isn't.
 */
export const canonicalIdentities: Record<string, CanonicalRule> = {
  ethereum: {
    sourceType: "web3_wallet",
    userTypes: ["external"],
    describe: "an EIP-55 checksummed 0x address",
    check: (id, st) => /^0x[0-9a-fA-F]{40}$/.test(id) && toChecksumAddress(id) === id && (st.network ?? "ethereum") === "ethereum",
  },
  solana: {
    sourceType: "web3_wallet",
    userTypes: ["external"],
    describe: "a base58 address of 32 bytes",
    check: (id, st) => BASE58.test(id) && id.length <= 44 && base58DecodedLength(id) === 32 && (st.network ?? "solana") === "solana",
  },
  oauth: {
    sourceType: "oauth",
    userTypes: ["external"],
    describe: '"<provider id>:<subject>", equal to source_type.provider + ":" + source_type.user_id',
    check: (id, st) => id === `${String(st.provider)}:${String(st.user_id)}` && /^[a-z0-9][a-z0-9_-]*:./.test(id),
  },
  email: {
    sourceType: "email_auth",
    userTypes: ["external"],
    describe: "a trimmed, lower-cased email address",
    check: (id) => id === id.trim().toLowerCase() && z.email().safeParse(id).success,
  },
  api: {
    sourceType: "api_key",
    userTypes: ["api"],
    describe: "the key's public id",
    check: (id) => /^[A-Za-z0-9_-]{1,64}$/.test(id),
  },
  system: {
    sourceType: "system_agent",
    userTypes: ["agent", "system"],
    describe: "the agent's id (letters, digits, . _ : -)",
    check: (id) => /^[A-Za-z0-9._:-]{1,128}$/.test(id),
  },
};

const verifiedIdentitySchema = z.object({
  network: z.string().regex(/^[a-z][a-z0-9_-]{0,31}$/, "network must be a short lower-case token"),
  sourceIdentifier: z
    .string()
    .min(1)
    .max(512)
    // Control characters in an identifier would forge lines in logs and terminal output.
    .refine((value) => !/[\u0000-\u001f\u007f]/.test(value), "sourceIdentifier must not contain control characters"),
  userType: z.enum(userTypes).optional(),
  sourceType: z.looseObject({ type: z.string() }),
  email: z.email().max(320).nullish(),
  metadata: z.record(z.string(), z.unknown()).optional(),
});

export interface CheckedIdentity {
  network: string;
  sourceIdentifier: string;
  userType: UserType;
  sourceType: Record<string, unknown> & { type: string };
  email: string | null;
  metadata: Record<string, unknown> | undefined;
}

/**
 * Validates what a provider returned: shape, registered source type (zod), and for the canonical
 * networks the identifier's canonical form, the source type and the user type.
 */
export function checkIdentity(input: VerifiedIdentity, registry: SourceTypeRegistry): CheckedIdentity {
  const parsed = verifiedIdentitySchema.safeParse(input);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw AuthError.of("ERR_IDENTITY_INVALID", { detail: `${issue?.path.join(".")}: ${issue?.message}` });
  }
  const identity = parsed.data;
  // Everything here is written to text and jsonb columns; what PostgreSQL refuses is a 400, not a 500.
  const unsafe = findPgUnsafeString({ sourceIdentifier: identity.sourceIdentifier, sourceType: identity.sourceType, metadata: identity.metadata });
  if (unsafe) throw AuthError.of("ERR_IDENTITY_INVALID", { detail: `${unsafe.map(String).join(".")}: ${PG_TEXT_MESSAGE}` });
  const sourceType = registry.parse(identity.sourceType);
  if (!sourceType.success) throw AuthError.of("ERR_SOURCE_TYPE_INVALID", { detail: sourceType.issue });
  const rule = canonicalIdentities[identity.network];
  const userType = identity.userType ?? rule?.userTypes[0] ?? "external";
  if (rule) {
    if (sourceType.data.type !== rule.sourceType) {
      throw AuthError.of("ERR_IDENTITY_INVALID", {
        detail: `network "${identity.network}" takes source_type "${rule.sourceType}", not "${sourceType.data.type}"`,
      });
    }
    if (!rule.userTypes.includes(userType)) {
      throw AuthError.of("ERR_IDENTITY_INVALID", { detail: `network "${identity.network}" takes user types ${rule.userTypes.join(", ")}` });
    }
    if (!rule.check(identity.sourceIdentifier, sourceType.data)) {
      throw AuthError.of("ERR_IDENTITY_INVALID", { detail: `source identifier on "${identity.network}" must be ${rule.describe}` });
    }
  }
  return {
    network: identity.network,
    sourceIdentifier: identity.sourceIdentifier,
    userType,
    sourceType: sourceType.data,
    email: identity.email ? identity.email.trim().toLowerCase() : null,
    metadata: identity.metadata,
  };
}
