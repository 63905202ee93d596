import { afterAll, beforeAll, describe, inject, it } from "vitest";
import { engines, testProviderConformance } from "@erebus/core/testing";
import { ethereumWallet } from "../../../test/wallets.js";
import { formatSiweMessage } from "./siwe-message.js";
import { walletProvider } from "./wallet-provider.js";

const ORIGIN = "http://app.test";

// The provider conformance kit of @erebus/core/testing (issue 11), with Sign-In with Ethereum as the
// sign-in step (the SIWS routes get the malformed-input and cross-site checks).
testProviderConformance({
  name: "wallet provider",
  test: { describe, it, beforeAll, afterAll },
  engines: engines({ postgresUrl: inject("postgresUrl") }),
  provider: () => walletProvider({ ethereum: { chains: [1] } }),
  auth: { baseURL: ORIGIN },
  sourceTypes: {
    web3_wallet: {
      valid: [{ type: "web3_wallet", provider: "metamask", network: "ethereum" }],
      invalid: [{ type: "web3_wallet", provider: "metamask", network: 1 }, { type: "web3_wallet", network: "ethereum" }],
    },
  },
  signIn: {
    identity: () => ethereumWallet(),
    async signIn(h, wallet) {
      const { message, signature } = await signedMessage(h, wallet);
      return h.request("/siwe/verify", { json: { message, signature, provider: "metamask" } });
    },
    async replay(h, wallet) {
      const { message, signature } = await signedMessage(h, wallet);
      const first = await h.request("/siwe/verify", { json: { message, signature } });
      if (first.status !== 200) throw new Error(`the sign-in before the replay failed: ${first.status} ${first.text}`);
      return () => h.request("/siwe/verify", { json: { message, signature } });
    },
  },
});

async function signedMessage(h: { request: (path: string, init?: { json?: unknown }) => Promise<{ body: { nonce: string } }> }, wallet: ReturnType<typeof ethereumWallet>) {
  const { body } = await h.request("/siwe/nonce", { json: {} });
  const message = formatSiweMessage({
    domain: "app.test",
    address: wallet.address,
    statement: "Sign in to the example app.",
    uri: `${ORIGIN}/login`,
    version: "1",
    chainId: 1,
    nonce: body.nonce,
    issuedAt: new Date().toISOString(),
  });
  return { message, signature: await wallet.sign(message) };
}
