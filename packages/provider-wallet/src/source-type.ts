import * as z from "zod";

/** What the wallet client says it used; a short token, `unknown` when not given. */
export const walletNameSchema = z.string().regex(/^[a-z0-9][a-z0-9_.-]{0,31}$/, "must be a short lower-case token such as metamask").default("unknown");

/**
 * The `source_type` this provider emits: core's `web3_wallet`, with the network and the chain the
 * message named. (Core validates it again against `web3WalletSourceType`, the database once more.)
 */
export const walletSourceTypeSchema = z.object({
  type: z.literal("web3_wallet"),
  provider: walletNameSchema,
  network: z.enum(["ethereum", "solana"]),
  metadata: z.object({
    chain_id: z.union([z.number().int().positive(), z.string()]),
    /** `account` (EIP-191 recovery) or `contract` (EIP-1271 / ERC-6492), Ethereum only. */
    signer: z.enum(["account", "contract"]).optional(),
  }),
});

export type WalletSourceType = z.infer<typeof walletSourceTypeSchema>;
