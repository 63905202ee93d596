import { createErebusClient, ErebusError, type ErebusClient } from "@erebus/client";
import { Keypair } from "@solana/web3.js";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";

export interface AgentReport {
  solana: { address: string; userId: string };
  ethereum: { address: string; userId: string };
  trade: unknown;
}

/**
 * What a trading bot does with Erebus: sign in with the keys it already holds (a Solana Keypair, a
 * viem account), call the app's API with the bearer session, mint itself a key scoped to `trade`,
 * and trade with that key. Nothing here builds a SIWE/SIWS message by hand.
 */
export async function runAgent(options: { baseURL: string; solanaKeypair?: Keypair; ethereumKey?: `0x${string}`; log?: (line: string) => void }): Promise<AgentReport> {
  const log = options.log ?? (() => {});

  // 1. Solana: a @solana/web3.js Keypair, in one call.
  const keypair = options.solanaKeypair ?? Keypair.generate();
  const solanaBot: ErebusClient = createErebusClient({ baseURL: options.baseURL });
  const solana = await solanaBot.signInWithSolana(keypair, { provider: "agent" });
  const me = await solanaBot.json<{ user: { id: string } }>("/api/me");
  log(`signed in with Solana as ${keypair.publicKey.toBase58()} (user ${me.user.id})`);

  // 2. Ethereum: a viem account, in one call.
  const account = privateKeyToAccount(options.ethereumKey ?? generatePrivateKey());
  const ethereumBot = createErebusClient({ baseURL: options.baseURL });
  await ethereumBot.signInWithEthereum(account, { chainId: 1, provider: "agent" });
  const ethereumMe = await ethereumBot.json<{ user: { id: string } }>("/api/me");
  log(`signed in with Ethereum as ${account.address} (user ${ethereumMe.user.id})`);

  // 3. An API key: minted with the Solana session, scoped to trading, then used on its own.
  const key = await solanaBot.apiKeys.create({ name: "agent trading key", scopes: ["trade"], expiresInDays: 1 });
  const trader = createErebusClient({ baseURL: options.baseURL, apiKey: key.key });
  const trade = await trader.json("/api/trade", { method: "POST", body: JSON.stringify({ pair: "SOL/USDC", side: "buy", amount: 1 }) });
  log(`traded with API key ${key.id}: ${JSON.stringify(trade)}`);

  // Done: the key revoked, both sessions ended on the server.
  await ethereumBot.signOut();
  await solanaBot.apiKeys.revoke(key.id);
  await solanaBot.signOut();
  return { solana: { address: keypair.publicKey.toBase58(), userId: solana.user.id }, ethereum: { address: account.address, userId: ethereumMe.user.id }, trade };
}

const isMain = import.meta.url === `file://${process.argv[1]}`;
if (isMain) {
  const baseURL = process.env.BASE_URL ?? "http://localhost:3000";
  runAgent({ baseURL, log: (line) => console.log(line) }).catch((error: unknown) => {
    console.error(error instanceof ErebusError ? `${error.code} (${error.status}): ${error.message}` : error);
    process.exitCode = 1;
  });
}
