import type { Queryable } from "@erebus/core/provider";
import { walletErrors } from "./errors.js";

/**
 * Who controls a contract address can differ from chain to chain (a factory or a deployer key
 * can put other code, with another owner, at the same address elsewhere), so an EIP-1271 /
 * ERC-6492 sign-in proves control of the address on one chain only. The first contract sign-in
 * of an address binds its identity to that chain; a contract sign-in on any other chain is
 * refused. Ordinary accounts are not bound: an EIP-191 signature proves the key, which controls
 * the address on every chain.
 */
export const contractChainMigration = {
  id: "0002_wallet_contract_chains",
  sql: `CREATE TABLE erebus_wallet_contract_chains (
    address TEXT PRIMARY KEY,
    chain_id BIGINT NOT NULL CHECK (chain_id > 0),
    bound_at TIMESTAMPTZ NOT NULL
  );
  -- Contract identities from before this table: bound to the chain of their last (contract) sign-in.
  INSERT INTO erebus_wallet_contract_chains (address, chain_id, bound_at)
    SELECT source_identifier, (source_type->'metadata'->>'chain_id')::bigint, now()
    FROM user_references
    WHERE network = 'ethereum'
      AND source_type->'metadata'->>'signer' = 'contract'
      AND source_type->'metadata'->>'chain_id' ~ '^[1-9][0-9]{0,17}$'
    ON CONFLICT (address) DO NOTHING;`,
};

/**
 * Binds `address` to `chainId` when it is not bound yet, and throws 401
 * `ERR_SIWE_CONTRACT_CHAIN_MISMATCH` when it is bound to another chain. Run it in the transaction
 * that resolves the identity: a refused or failed sign-in then binds nothing.
 */
export async function bindContractChain(tx: Queryable, address: string, chainId: number, now: Date): Promise<void> {
  // Two statements, not one: under READ COMMITTED the SELECT after a conflicting INSERT sees the
  // row a concurrent sign-in committed, so of two first sign-ins on two chains exactly one binds.
  await tx.query(
    "INSERT INTO erebus_wallet_contract_chains (address, chain_id, bound_at) VALUES ($1, $2, $3) ON CONFLICT (address) DO NOTHING",
    [address, chainId, now],
  );
  const { rows } = await tx.query<{ chain_id: string }>("SELECT chain_id::text AS chain_id FROM erebus_wallet_contract_chains WHERE address = $1", [address]);
  const bound = Number(rows[0]?.chain_id);
  if (bound !== chainId) {
    throw walletErrors.create("ERR_SIWE_CONTRACT_CHAIN_MISMATCH", { detail: `this contract wallet signs in on chain ${bound} only` });
  }
}
