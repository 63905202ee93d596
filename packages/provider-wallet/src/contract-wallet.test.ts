import { readFileSync } from "node:fs";
import { createServer } from "node:net";
import express from "express";
import ganache from "ganache";
import solc from "solc";
import { createPublicClient, createWalletClient, encodeFunctionData, getAddress, getContractAddress, http, keccak256, serializeErc6492Signature, toHex, type Abi, type Hex } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createAuth, silentLogger, type Database } from "@erebus/core";
import { engines, rowCounts, serverEngine } from "../../../test/engines.js";
import { listen, type Running } from "../../../test/http.js";
import { formatSiweMessage } from "./siwe-message.js";
import { ethereumWallet } from "../../../test/wallets.js";
import { nonceMigration } from "./nonces.js";
import { walletProvider } from "./wallet-provider.js";

const ORIGIN = "http://app.test";
const CHAIN = 1337;
/** A second chain, where the same contract addresses belong to someone else (finding 10). */
const OTHER_CHAIN = 1338;
const DEPLOYER_KEY = `0x${"11".repeat(32)}` as const;
const SECOND_DEPLOYER_KEY = `0x${"22".repeat(32)}` as const;

function compile() {
  const source = readFileSync(new URL("../fixtures/contracts/OwnerWallet.sol", import.meta.url), "utf8");
  const input = {
    language: "Solidity",
    sources: { "OwnerWallet.sol": { content: source } },
    settings: { evmVersion: "paris", outputSelection: { "*": { "*": ["abi", "evm.bytecode.object"] } } },
  };
  const output = JSON.parse(solc.compile(JSON.stringify(input)));
  const get = (name: string) => {
    const contract = output.contracts["OwnerWallet.sol"][name];
    return { abi: contract.abi as Abi, bytecode: `0x${contract.evm.bytecode.object}` as Hex };
  };
  return { wallet: get("OwnerWallet"), factory: get("OwnerWalletFactory") };
}

const freePort = () =>
  new Promise<number>((resolve) => {
    const srv = createServer().listen(0, "127.0.0.1", () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });

// A local EVM node (ganache, in-process, on 127.0.0.1) stands in for a chain's RPC.
const engine = engines()[0]!;
describe("smart-contract wallets (EIP-1271, ERC-6492) against a local EVM node", () => {
  let chain: ReturnType<typeof ganache.server>;
  let otherChain: ReturnType<typeof ganache.server>;
  let rpcUrl: string;
  let otherRpcUrl: string;
  let multiServer: Running;
  /** A real PostgreSQL server too, when the suite has one: there concurrent sign-ins really run in parallel. */
  let serverDb: Database | undefined;
  let serverMulti: Running | undefined;
  /** An app on `database` whose wallet provider checks contract wallets on CHAIN through `rpc`, and on the chains of `extra`. */
  let make: (rpc: string, extra?: Record<number, string>, database?: Database) => Promise<Running>;
  let db: Database;
  let server: Running;
  let deadServer: Running;
  let contracts: ReturnType<typeof compile>;
  let factoryAddress: Hex;
  const owner = ethereumWallet();
  let walletAddress: Hex;
  const attacker = ethereumWallet();
  let raceOwner: Hex;
  let raceAttacker: Hex;

  beforeAll(async () => {
    contracts = compile();
    const startChain = async (chainId: number) => {
      const node = ganache.server({
        logging: { quiet: true },
        chain: { chainId, hardfork: "merge" },
        wallet: { accounts: [DEPLOYER_KEY, SECOND_DEPLOYER_KEY].map((secretKey) => ({ secretKey, balance: toHex(10n ** 21n) })) },
      });
      const port = await freePort();
      await node.listen(port, "127.0.0.1");
      return { node, url: `http://127.0.0.1:${port}` };
    };
    ({ node: chain, url: rpcUrl } = await startChain(CHAIN));
    ({ node: otherChain, url: otherRpcUrl } = await startChain(OTHER_CHAIN));
    /** Deploys from `key` on the chain at `url`: the same key and nonce give the same address on every chain. */
    const deployer = (key: Hex, chainId: number, url: string) => {
      const client = createWalletClient({ account: privateKeyToAccount(key), transport: http(url), chain: { id: chainId, name: "local", nativeCurrency: { name: "ETH", symbol: "ETH", decimals: 18 }, rpcUrls: { default: { http: [url] } } } });
      const reader = createPublicClient({ transport: http(url) });
      return async (bytecode: Hex, abi: Abi, args: unknown[]) => {
        const hash = await client.deployContract({ abi, bytecode, args });
        const receipt = await reader.waitForTransactionReceipt({ hash, pollingInterval: 50 });
        return getAddress(receipt.contractAddress!);
      };
    };
    const deploy = deployer(DEPLOYER_KEY, CHAIN, rpcUrl);
    walletAddress = await deploy(contracts.wallet.bytecode, contracts.wallet.abi, [owner.address]);
    factoryAddress = await deploy(contracts.factory.bytecode, contracts.factory.abi, []);
    // The other chain: the deployer's first contract there, at the same address, belongs to the attacker.
    expect(await deployer(DEPLOYER_KEY, OTHER_CHAIN, otherRpcUrl)(contracts.wallet.bytecode, contracts.wallet.abi, [attacker.address])).toBe(walletAddress);
    raceOwner = await deployer(SECOND_DEPLOYER_KEY, CHAIN, rpcUrl)(contracts.wallet.bytecode, contracts.wallet.abi, [owner.address]);
    raceAttacker = await deployer(SECOND_DEPLOYER_KEY, OTHER_CHAIN, otherRpcUrl)(contracts.wallet.bytecode, contracts.wallet.abi, [attacker.address]);
    expect(raceAttacker).toBe(raceOwner);

    db = await engine.create();
    make = async (rpc: string, extra: Record<number, string> = {}, database: Database = db) => {
      const auth = createAuth({
        database,
        baseURL: ORIGIN,
        providers: [walletProvider({ ethereum: { chains: [CHAIN, ...Object.keys(extra).map(Number)], rpc: { [CHAIN]: rpc, ...extra }, rpcTimeoutMs: 1500 }, solana: false })],
        migrate: true,
        logger: silentLogger,
      });
      await auth.ready;
      const app = express();
      app.use("/auth", auth.router);
      return listen(app);
    };
    server = await make(rpcUrl);
    deadServer = await make(`http://127.0.0.1:${await freePort()}`); // nothing listens there
    multiServer = await make(rpcUrl, { [OTHER_CHAIN]: otherRpcUrl });
    const server_ = serverEngine();
    if (server_) {
      serverDb = await server_.create();
      serverMulti = await make(rpcUrl, { [OTHER_CHAIN]: otherRpcUrl }, serverDb);
    }
  }, 120_000);
  afterAll(async () => {
    await server?.close();
    await deadServer?.close();
    await multiServer?.close();
    await serverMulti?.close();
    await db?.close();
    await serverDb?.close();
    await chain?.close();
    await otherChain?.close();
  });

  async function signIn(base: Running, address: string, sign: (message: string) => Promise<Hex>, chainId = CHAIN) {
    const post = (path: string, body: unknown) =>
      fetch(`${base.url}/auth${path}`, { method: "POST", headers: { "content-type": "application/json", origin: ORIGIN }, body: JSON.stringify(body) });
    const { nonce } = await (await post("/siwe/nonce", {})).json();
    const message = formatSiweMessage({ domain: "app.test", address, uri: ORIGIN, version: "1", chainId, nonce, issuedAt: new Date().toISOString() });
    const res = await post("/siwe/verify", { message, signature: await sign(message), provider: "safe" });
    return { status: res.status, body: await res.json() };
  }

  it("signs in a deployed EIP-1271 wallet with its owner's signature", async () => {
    const { status, body } = await signIn(server, walletAddress, owner.sign);
    expect(status).toBe(200);
    expect(body.user).toMatchObject({ network: "ethereum", source_identifier: walletAddress, source_type: { provider: "safe", metadata: { chain_id: CHAIN, signer: "contract" } } });
  });

  it("refuses a contract wallet signature made by someone who is not its owner", async () => {
    const { status, body } = await signIn(server, walletAddress, ethereumWallet().sign);
    expect(status).toBe(401);
    expect(body.code).toBe("ERR_SIWE_SIGNATURE_INVALID");
  });

  it("signs in a not-yet-deployed wallet through an ERC-6492 signature", async () => {
    const salt = keccak256(toHex("erebus-6492"));
    const counterfactual = getContractAddress({
      opcode: "CREATE2",
      from: factoryAddress,
      salt,
      bytecode: `${contracts.wallet.bytecode}${owner.address.slice(2).toLowerCase().padStart(64, "0")}` as Hex,
    });
    const reader = createPublicClient({ transport: http(rpcUrl) });
    expect(await reader.getCode({ address: counterfactual })).toBeUndefined();
    const factoryData = encodeFunctionData({ abi: contracts.factory.abi, functionName: "deploy", args: [owner.address, salt] });
    const { status, body } = await signIn(server, counterfactual, async (message) =>
      serializeErc6492Signature({ address: factoryAddress, data: factoryData, signature: await owner.sign(message) }),
    );
    expect(status).toBe(200);
    expect(body.user.source_identifier).toBe(counterfactual);
  });

  it("finding 10: a contract wallet's identity is bound to the chain it was verified on; the same address on another chain is refused", async () => {
    const first = await signIn(multiServer, walletAddress, owner.sign, CHAIN);
    expect(first.status).toBe(200);
    const before = await rowCounts(db);
    // On the other chain the contract at this address is the attacker's, and it does accept their signature.
    const stolen = await signIn(multiServer, walletAddress, attacker.sign, OTHER_CHAIN);
    expect([stolen.status, stolen.body.code]).toEqual([401, "ERR_SIWE_CONTRACT_CHAIN_MISMATCH"]);
    expect(stolen.body.detail).toContain(String(CHAIN));
    expect(await rowCounts(db)).toEqual(before);
    // The owner keeps signing in on the chain the identity is bound to, as the same user.
    const again = await signIn(multiServer, walletAddress, owner.sign, CHAIN);
    expect([again.status, again.body.user?.id]).toEqual([200, first.body.user.id]);
    expect(again.body.user.source_type.metadata).toEqual({ chain_id: CHAIN, signer: "contract" });
  });

  it("finding 10: of concurrent first sign-ins of one contract address on two chains, one wins and binds the chain (PGlite and PostgreSQL)", async () => {
    if (process.env.CI === "true") expect(serverMulti).toBeDefined();
    for (const base of [multiServer, serverMulti].filter((s): s is Running => s !== undefined)) {
      const results = await Promise.all([
        signIn(base, raceOwner, owner.sign, CHAIN),
        signIn(base, raceAttacker, attacker.sign, OTHER_CHAIN),
      ]);
      const statuses = results.map((r) => `${r.status} ${r.body.code ?? ""}`.trim()).sort();
      expect(statuses).toEqual(["200", "401 ERR_SIWE_CONTRACT_CHAIN_MISMATCH"]);
      const winner = results.find((r) => r.status === 200)!;
      const winnerChain = winner.body.user.source_type.metadata.chain_id as number;
      // From then on only the winner's chain signs this address in.
      const loserChain = winnerChain === CHAIN ? OTHER_CHAIN : CHAIN;
      const loserSign = winnerChain === CHAIN ? attacker.sign : owner.sign;
      expect((await signIn(base, raceOwner, loserSign, loserChain)).body.code).toBe("ERR_SIWE_CONTRACT_CHAIN_MISMATCH");
    }
  });

  it("finding 10: a contract identity from before the binding is bound, at migration, to the chain of its last contract sign-in", async () => {
    const old = await engine.create();
    try {
      // The provider as it was: the nonce table only, and a contract identity signed in on CHAIN.
      const before = createAuth({ database: old, baseURL: ORIGIN, providers: [{ ...walletProvider({ solana: false }), migrations: [nonceMigration] }], migrate: true, logger: silentLogger });
      await before.ready;
      await before.api.resolveIdentity({
        network: "ethereum",
        sourceIdentifier: walletAddress,
        sourceType: { type: "web3_wallet", provider: "safe", network: "ethereum", metadata: { chain_id: CHAIN, signer: "contract" } },
      });
      const upgraded = await make(rpcUrl, { [OTHER_CHAIN]: otherRpcUrl }, old);
      try {
        expect((await signIn(upgraded, walletAddress, attacker.sign, OTHER_CHAIN)).body.code).toBe("ERR_SIWE_CONTRACT_CHAIN_MISMATCH");
        expect((await signIn(upgraded, walletAddress, owner.sign, CHAIN)).status).toBe(200);
      } finally {
        await upgraded.close();
      }
    } finally {
      await old.close();
    }
  });

  it("review: a contract sign-in is not bound to a chain whose configured RPC serves another chain, even when that RPC accepts the signature", async () => {
    // A copy-paste slip: the URL given for OTHER_CHAIN is CHAIN's node, where the owner's wallet lives.
    const misconfigured = await make(rpcUrl, { [OTHER_CHAIN]: rpcUrl });
    try {
      const salt = keccak256(toHex("erebus-review-rpc-chain"));
      const counterfactual = getContractAddress({
        opcode: "CREATE2",
        from: factoryAddress,
        salt,
        bytecode: `${contracts.wallet.bytecode}${owner.address.slice(2).toLowerCase().padStart(64, "0")}` as Hex,
      });
      const factoryData = encodeFunctionData({ abi: contracts.factory.abi, functionName: "deploy", args: [owner.address, salt] });
      const sign = async (message: string) => serializeErc6492Signature({ address: factoryAddress, data: factoryData, signature: await owner.sign(message) });
      const before = await rowCounts(db);
      const res = await signIn(misconfigured, counterfactual, sign, OTHER_CHAIN);
      expect([res.status, res.body.code]).toEqual([503, "ERR_SIWE_RPC_UNAVAILABLE"]);
      expect(await rowCounts(db)).toEqual(before);
      // The chain that RPC really serves still signs in, and is the one recorded.
      const right = await signIn(misconfigured, counterfactual, sign, CHAIN);
      expect([right.status, right.body.user?.source_type.metadata]).toEqual([200, { chain_id: CHAIN, signer: "contract" }]);
    } finally {
      await misconfigured.close();
    }
  });

  it("finding 10: an ordinary (EOA) wallet stays one identity on every chain", async () => {
    const eoa = ethereumWallet();
    const a = await signIn(multiServer, eoa.address, eoa.sign, CHAIN);
    const b = await signIn(multiServer, eoa.address, eoa.sign, OTHER_CHAIN);
    expect([a.status, b.status]).toEqual([200, 200]);
    expect(b.body.user.id).toBe(a.body.user.id);
    expect(b.body.user.source_type.metadata).toEqual({ chain_id: OTHER_CHAIN, signer: "account" });
  });

  it("answers 503 ERR_SIWE_RPC_UNAVAILABLE, not 500, when the chain's RPC is down", async () => {
    const { status, body } = await signIn(deadServer, walletAddress, owner.sign);
    expect(status).toBe(503);
    expect(body.code).toBe("ERR_SIWE_RPC_UNAVAILABLE");
    // An ordinary account does not need the RPC at all.
    const eoa = ethereumWallet();
    expect((await signIn(deadServer, eoa.address, eoa.sign)).status).toBe(200);
  });
});
