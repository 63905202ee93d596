// Wallet sign-in benchmark. Every number is a ratio against a baseline measured in the same run,
// on the same machine: absolute numbers depend on the machine, ratios much less.
//   npm run bench
import { generateKeyPairSync, sign as signEd25519 } from "node:crypto";
import express from "express";
import { ed25519 } from "@noble/curves/ed25519.js";
import { recoverMessageAddress } from "viem";
import { createAuth, silentLogger } from "@erebus/core";
import { walletProvider } from "@erebus/provider-wallet";
import { formatSiweMessage } from "../packages/provider-wallet/src/siwe-message.js";
import { Ed25519KeyCache, hexToBytes, recoverPersonalSigner, verifyEd25519 } from "../packages/provider-wallet/src/signature.js";
import { ethereumWallet } from "../test/wallets.js";
import { listen } from "../test/http.js";

async function perSecond(label: string, iterations: number, fn: (i: number) => unknown): Promise<number> {
  for (let i = 0; i < Math.min(50, iterations); i++) await fn(i); // warm-up
  const start = process.hrtime.bigint();
  for (let i = 0; i < iterations; i++) await fn(i);
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  const rate = iterations / seconds;
  console.log(`  ${label.padEnd(58)} ${rate.toFixed(0).padStart(8)} /s`);
  return rate;
}

async function concurrent(label: string, total: number, concurrency: number, fn: (i: number) => Promise<unknown>): Promise<number> {
  let next = 0;
  const start = process.hrtime.bigint();
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < total) await fn(next++);
  }));
  const rate = total / (Number(process.hrtime.bigint() - start) / 1e9);
  console.log(`  ${label.padEnd(58)} ${rate.toFixed(0).padStart(8)} /s`);
  return rate;
}

const results: [string, number][] = [];

console.log("Ethereum EIP-191 signer recovery");
{
  const wallet = ethereumWallet();
  const message = formatSiweMessage({ domain: "app.test", address: wallet.address, uri: "http://app.test", version: "1", chainId: 1, nonce: "abcdefgh12345678", issuedAt: new Date().toISOString() });
  const signature = await wallet.sign(message);
  const bytes = hexToBytes(signature)!;
  if (recoverPersonalSigner(message, bytes) !== wallet.address) throw new Error("recovery broken");
  const viem = await perSecond("viem recoverMessageAddress (baseline)", 2000, () => recoverMessageAddress({ message, signature }));
  const ours = await perSecond("Erebus recoverPersonalSigner (libsecp256k1)", 2000, () => recoverPersonalSigner(message, bytes));
  results.push(["EIP-191 recovery, Erebus / viem", ours / viem]);
}

console.log("Solana Ed25519 verification");
{
  const { publicKey, privateKey } = generateKeyPairSync("ed25519");
  const raw = new Uint8Array(publicKey.export({ format: "der", type: "spki" }).subarray(12));
  const message = "app.test wants you to sign in with your Solana account:\n...";
  const signature = new Uint8Array(signEd25519(null, Buffer.from(message), privateKey));
  const cache = new Ed25519KeyCache();
  const bytes = new TextEncoder().encode(message);
  const noble = await perSecond("@noble/curves ed25519.verify (baseline)", 2000, () => ed25519.verify(signature, bytes, raw));
  const ours = await perSecond("Erebus verifyEd25519 (node:crypto, cached key)", 2000, () => verifyEd25519(cache, "addr", raw, message, signature));
  results.push(["Ed25519 verify, Erebus / @noble/curves", ours / noble]);
}

console.log("HTTP on 127.0.0.1 (embedded PGlite, 8 concurrent clients)");
{
  const auth = createAuth({
    database: "pglite://memory",
    baseURL: "http://app.test",
    providers: [walletProvider({ rateLimit: { nonce: 1_000_000, verify: 1_000_000 } })],
    migrate: true,
    logger: silentLogger,
  });
  await auth.ready;
  const app = express();
  app.get("/ping", (_req, res) => res.json({ ok: true }));
  app.use("/auth", auth.router);
  const server = await listen(app);
  const post = (path: string, body: unknown) =>
    fetch(`${server.url}/auth${path}`, { method: "POST", headers: { "content-type": "application/json", origin: "http://app.test" }, body: JSON.stringify(body) });

  const N = 300;
  const wallet = ethereumWallet();
  const signed: { message: string; signature: string }[] = [];
  for (let i = 0; i < N; i++) {
    const { message } = await (await post("/siwe/nonce", { address: wallet.address, chainId: 1 })).json();
    signed.push({ message, signature: await wallet.sign(message) });
  }
  const bare = await concurrent("bare Express GET /ping (baseline)", 3000, 8, async () => (await fetch(`${server.url}/ping`)).text());
  const verify = await concurrent("POST /auth/siwe/verify (full sign-in, session issued)", N, 8, async (i) => {
    const res = await post("/siwe/verify", signed[i]!);
    if (res.status !== 200) throw new Error(`verify ${res.status}`);
    await res.text();
  });
  const nonce = await concurrent("POST /auth/siwe/nonce", N, 8, async () => (await post("/siwe/nonce", {})).text());
  results.push(["SIWE verify requests / bare Express requests", verify / bare], ["SIWE nonce requests / bare Express requests", nonce / bare]);
  await server.close();
  await auth.close();
}

console.log("\nRatios (same run):");
for (const [label, ratio] of results) console.log(`  ${label.padEnd(50)} ${ratio.toFixed(2)}×`);
