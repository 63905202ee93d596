// Test helpers: real wallets from real wallet libraries (viem accounts, @solana/keys).
import { getAddressFromPublicKey } from "@solana/addresses";
import { generateKeyPair, signBytes } from "@solana/keys";
import { createSignInMessageText } from "@solana/wallet-standard-util";
import bs58 from "bs58";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";

/** An Ethereum account from viem, as a wallet extension would hold it. */
export function ethereumWallet() {
  const account = privateKeyToAccount(generatePrivateKey());
  return {
    address: account.address,
    sign: (message: string) => account.signMessage({ message }),
  };
}

/** A Solana keypair from @solana/keys (WebCrypto Ed25519), signing like a Wallet Standard wallet. */
export async function solanaWallet() {
  const keys = await generateKeyPair();
  const address = await getAddressFromPublicKey(keys.publicKey);
  return {
    address: address as string,
    /** What `solana:signIn` does: fill in the address, render the text, sign its bytes. */
    async signIn(input: Record<string, string | undefined>, overrides: Record<string, string | undefined> = {}) {
      const message = createSignInMessageText({ ...input, address, ...overrides } as never);
      return { message, signature: await this.signText(message) };
    },
    async signText(message: string) {
      return bs58.encode(await signBytes(keys.privateKey, new TextEncoder().encode(message)));
    },
  };
}
