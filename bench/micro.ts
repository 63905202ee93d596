// In-process measurements the HTTP table cannot isolate, each against its baseline in the same run:
// resolve (Erebus's upsert of an identity) against the same INSERT … ON CONFLICT … RETURNING sent raw
// through pg; signature checks against viem and @noble/curves.
//   node --conditions=erebus-source --import tsx bench/micro.ts <database url> <rounds>   → one JSON line
import { generateKeyPairSync, sign as signEd25519 } from "node:crypto";
import pg from "pg";
import { ed25519 } from "@noble/curves/ed25519.js";
import { recoverMessageAddress } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { createAuth, silentLogger, toChecksumAddress } from "@erebus/core";
import { walletProvider } from "@erebus/provider-wallet";
import { formatSiweMessage } from "../packages/provider-wallet/src/siwe-message.js";
import { Ed25519KeyCache, hexToBytes, recoverPersonalSigner, verifyEd25519 } from "../packages/provider-wallet/src/signature.js";

const [databaseUrl, roundsArg] = process.argv.slice(2) as [string, string];
const rounds = Number(roundsArg);

async function rate(seconds: number, concurrency: number, fn: (i: number) => unknown): Promise<number> {
  let n = 0;
  const end = performance.now() + seconds * 1000;
  const start = performance.now();
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (performance.now() < end) await fn(n++);
  }));
  return n / ((performance.now() - start) / 1000);
}

const out: Record<string, number[]> = {};
const push = (k: string, v: number) => (out[k] ??= []).push(v);

const auth = createAuth({ database: databaseUrl, baseURL: "http://127.0.0.1", providers: [walletProvider()], migrate: true, logger: silentLogger, production: false });
await auth.ready;
const pool = new pg.Pool({ connectionString: databaseUrl, max: 10 });
const addresses = Array.from({ length: 100 }, (_, i) => toChecksumAddress(`0x${(i + 1).toString(16).padStart(40, "a")}`));
const identity = (i: number) => ({
  network: "ethereum",
  sourceIdentifier: addresses[i % addresses.length]!,
  sourceType: { type: "web3_wallet", provider: "bench", network: "ethereum", metadata: { chain_id: 1, signer: "eoa" } },
});
const RAW = `INSERT INTO user_references (source_identifier, network, user_type, source_type, email, metadata)
  VALUES ($1, 'ethereum', 'human', $2::jsonb, NULL, '{}'::jsonb)
  ON CONFLICT (network, source_identifier) DO UPDATE SET source_type = EXCLUDED.source_type, email = COALESCE(EXCLUDED.email, user_references.email)
  WHERE user_references.is_active IS DISTINCT FROM false RETURNING *`;
for (const i of addresses.keys()) await auth.api.resolveIdentity(identity(i)); // returning identities from here on

const account = privateKeyToAccount("0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d");
const message = formatSiweMessage({ domain: "app.test", address: account.address, uri: "http://app.test", version: "1", chainId: 1, nonce: "abcdefgh12345678", issuedAt: new Date().toISOString() });
const signature = await account.signMessage({ message });
const sigBytes = hexToBytes(signature)!;
const { publicKey, privateKey } = generateKeyPairSync("ed25519");
const raw = new Uint8Array(publicKey.export({ format: "der", type: "spki" }).subarray(12));
const solMessage = "app.test wants you to sign in with your Solana account:\n...";
const solSig = new Uint8Array(signEd25519(null, Buffer.from(solMessage), privateKey));
const solBytes = new TextEncoder().encode(solMessage);
const keyCache = new Ed25519KeyCache();

for (let r = 0; r < rounds; r++) {
  push("resolve (upsert, returning identity), Erebus `resolveIdentity`, 10 concurrent", await rate(2, 10, (i) => auth.api.resolveIdentity(identity(i))));
  push("the same INSERT … ON CONFLICT … RETURNING, raw through pg (baseline)", await rate(2, 10, (i) => pool.query(RAW, [addresses[i % 100], JSON.stringify(identity(i).sourceType)])));
  push("EIP-191 recovery, viem `recoverMessageAddress` (baseline)", await rate(1, 1, () => recoverMessageAddress({ message, signature })));
  push("EIP-191 recovery, Erebus (native libsecp256k1)", await rate(1, 1, () => recoverPersonalSigner(message, sigBytes)));
  push("Ed25519 verify, @noble/curves (baseline)", await rate(1, 1, () => ed25519.verify(solSig, solBytes, raw)));
  push("Ed25519 verify, Erebus (node:crypto, cached key)", await rate(1, 1, () => verifyEd25519(keyCache, "addr", raw, solMessage, solSig)));
}
await pool.end();
await auth.close();
process.stdout.write(`${JSON.stringify(out)}\n`);
