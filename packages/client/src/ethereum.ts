import type { EthereumSigner } from "./signers.js";

/** The one method of EIP-1193 this adapter calls. `window.ethereum`, WalletConnect, ganache's provider… */
export interface Eip1193Provider {
  request(args: { method: string; params?: unknown[] }): Promise<unknown>;
}

const toHex = (text: string) => `0x${Array.from(new TextEncoder().encode(text), (byte) => byte.toString(16).padStart(2, "0")).join("")}`;

/**
 * An `EthereumSigner` over an EIP-1193 provider: asks for the account (`eth_requestAccounts`, or the
 * one you name) and signs with `personal_sign` (EIP-191).
 *
 * @example
 * import { eip1193Signer } from "@erebus/client/ethereum";
 * await client.signInWithEthereum(await eip1193Signer(window.ethereum), { chainId: await chainIdOf(window.ethereum) });
 */
export async function eip1193Signer(provider: Eip1193Provider, options: { address?: string } = {}): Promise<EthereumSigner> {
  let address = options.address;
  if (address === undefined) {
    // EIP-1102 first (a browser wallet asks the person); nodes and test chains only know eth_accounts.
    const accounts = (await provider.request({ method: "eth_requestAccounts" }).catch(() => provider.request({ method: "eth_accounts" }))) as unknown;
    if (!Array.isArray(accounts) || typeof accounts[0] !== "string") throw new TypeError("eip1193Signer: the wallet returned no account");
    address = accounts[0];
  }
  const account = address;
  return {
    address: account,
    async signMessage({ message }) {
      const signature = await provider.request({ method: "personal_sign", params: [toHex(message), account] });
      if (typeof signature !== "string") throw new TypeError("eip1193Signer: personal_sign returned no signature");
      return signature;
    },
  };
}

/** The chain the wallet is on (`eth_chainId`), as a number. */
export async function chainIdOf(provider: Eip1193Provider): Promise<number> {
  const value = await provider.request({ method: "eth_chainId" });
  const id = typeof value === "string" ? Number.parseInt(value, 16) : Number(value);
  if (!Number.isSafeInteger(id) || id <= 0) throw new TypeError(`chainIdOf: the wallet answered ${String(value)}`);
  return id;
}

export type { EthereumSigner } from "./signers.js";
