import { base58Encode } from "./base58.js";
import { isLinkResult, type ErebusClient } from "./client.js";
import { ErebusError } from "./errors.js";
import { checkSignInMessage, type SolanaSignInInput } from "./messages.js";
import type { IntentOption, LinkIntentOption, LinkResult, SignInResult } from "./types.js";

/** The part of a Wallet Standard wallet (https://github.com/wallet-standard/wallet-standard) used here. */
export interface StandardWallet {
  readonly name: string;
  readonly features: Readonly<Record<string, unknown>>;
}

interface SolanaSignInFeature {
  signIn(...inputs: (SolanaSignInInput & { address?: string })[]): Promise<readonly { account: { address: string }; signedMessage: Uint8Array; signature: Uint8Array }[]>;
}

/**
 * Wallets that can Sign In With Solana (`solana:signIn`), as they register on the page; `onChange`
 * runs when another one arrives. Implements the Wallet Standard's two window events, so no
 * `@wallet-standard/app` is needed.
 */
export function watchSolanaWallets(onChange?: (wallets: readonly StandardWallet[]) => void): { wallets: () => readonly StandardWallet[]; stop(): void } {
  const wallets: StandardWallet[] = [];
  const register = (...candidates: StandardWallet[]) => {
    let added = false;
    for (const wallet of candidates) {
      if (wallet?.features?.["solana:signIn"] && !wallets.includes(wallet)) {
        wallets.push(wallet);
        added = true;
      }
    }
    if (added) onChange?.(wallets.slice());
    return () => {};
  };
  const listener = (event: Event) => (event as CustomEvent<((api: { register: typeof register }) => void) | undefined>).detail?.({ register });
  window.addEventListener("wallet-standard:register-wallet", listener);
  window.dispatchEvent(new CustomEvent("wallet-standard:app-ready", { detail: { register } }));
  return { wallets: () => wallets.slice(), stop: () => window.removeEventListener("wallet-standard:register-wallet", listener) };
}

/**
 * Sign In With Solana with a Wallet Standard wallet: the wallet signs the server's input as is
 * (it adds the address), the client checks the signed text names this site, then verifies.
 * With `{ intent: "link" }` the wallet's key joins the signed-in person instead (a `LinkResult`).
 */
export async function signInWithStandardWallet(client: ErebusClient, wallet: StandardWallet, input: { provider?: string } & LinkIntentOption): Promise<LinkResult>;
export async function signInWithStandardWallet(client: ErebusClient, wallet: StandardWallet, input?: { provider?: string } & IntentOption): Promise<SignInResult>;
export async function signInWithStandardWallet(client: ErebusClient, wallet: StandardWallet, input: { provider?: string } & IntentOption = {}): Promise<SignInResult> {
  const feature = wallet.features["solana:signIn"] as SolanaSignInFeature | undefined;
  if (!feature) throw new TypeError(`signInWithStandardWallet: ${wallet.name} has no solana:signIn`);
  const issued = await client.siws.nonce(
    input.intent === undefined
      ? undefined
      : input.intent === "link"
        ? { intent: "link", ...(input.merge === undefined ? {} : { merge: input.merge }) }
        : input.intent === "reauthenticate"
          ? { intent: "reauthenticate" }
          : { intent: "sign-in" },
  );
  const [output] = await feature.signIn(issued.input);
  if (!output) throw new ErebusError({ code: "ERR_CLIENT_WALLET_REFUSED", title: "The wallet returned nothing", status: 0 });
  const message = new TextDecoder().decode(output.signedMessage);
  checkSignInMessage(message, { host: client.baseURL.host, origin: client.baseURL.origin, nonce: issued.nonce, family: "Solana", address: output.account.address });
  const provider = input.provider ?? (wallet.name.toLowerCase().replace(/[^a-z0-9_.-]/g, "").slice(0, 32) || "unknown");
  const result = await client.siws.verify({ message, signature: base58Encode(output.signature), address: output.account.address, provider });
  if ((input.intent === "link" || input.intent === "reauthenticate") && !isLinkResult(result)) {
    throw new ErebusError({ code: "ERR_CLIENT_UNEXPECTED_RESPONSE", title: "Unexpected response", status: 200, detail: "asked to link, but the server answered with a sign-in" });
  }
  return result;
}
