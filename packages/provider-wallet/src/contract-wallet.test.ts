import { readFileSync } from "node:fs";
import { createServer } from "node:net";
import express from "express";
import ganache from "ganache";
import solc from "solc";
import { createPublicClient, createWalletClient, encodeFunctionData, getAddress, getContractAddress, http, keccak256, serializeErc6492Signature, toHex, type Abi, type Hex } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createAuth, silentLogger, type Database } from "@erebus/core";
import { engines } from "../../../test/engines.js";
import { listen, type Running } from "../../../test/http.js";
import { formatSiweMessage } from "./siwe-message.js";
import { ethereumWallet } from "../../../test/wallets.js";
import { walletProvider } from "./wallet-provider.js";

const ORIGIN = "http://app.test";
const CHAIN = 1337;
const DEPLOYER_KEY = `0x${"11".repeat(32)}` as const;

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
  let rpcUrl: string;
  let db: Database;
  let server: Running;
  let deadServer: Running;
  let contracts: ReturnType<typeof compile>;
  let factoryAddress: Hex;
  const owner = ethereumWallet();
  let walletAddress: Hex;

  beforeAll(async () => {
    contracts = compile();
    chain = ganache.server({
      logging: { quiet: true },
      chain: { chainId: CHAIN, hardfork: "merge" },
      wallet: { accounts: [{ secretKey: DEPLOYER_KEY, balance: toHex(10n ** 21n) }] },
    });
    const port = await freePort();
    await chain.listen(port, "127.0.0.1");
    rpcUrl = `http://127.0.0.1:${port}`;
    const deployer = createWalletClient({ account: privateKeyToAccount(DEPLOYER_KEY), transport: http(rpcUrl), chain: { id: CHAIN, name: "local", nativeCurrency: { name: "ETH", symbol: "ETH", decimals: 18 }, rpcUrls: { default: { http: [rpcUrl] } } } });
    const reader = createPublicClient({ transport: http(rpcUrl) });
    const deploy = async (bytecode: Hex, abi: Abi, args: unknown[]) => {
      const hash = await deployer.deployContract({ abi, bytecode, args });
      const receipt = await reader.waitForTransactionReceipt({ hash, pollingInterval: 50 });
      return getAddress(receipt.contractAddress!);
    };
    walletAddress = await deploy(contracts.wallet.bytecode, contracts.wallet.abi, [owner.address]);
    factoryAddress = await deploy(contracts.factory.bytecode, contracts.factory.abi, []);

    db = await engine.create();
    const make = async (rpc: string) => {
      const auth = createAuth({
        database: db,
        baseURL: ORIGIN,
        providers: [walletProvider({ ethereum: { chains: [CHAIN], rpc: { [CHAIN]: rpc }, rpcTimeoutMs: 1500 }, solana: false })],
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
  }, 120_000);
  afterAll(async () => {
    await server?.close();
    await deadServer?.close();
    await db?.close();
    await chain?.close();
  });

  async function signIn(base: Running, address: string, sign: (message: string) => Promise<Hex>) {
    const post = (path: string, body: unknown) =>
      fetch(`${base.url}/auth${path}`, { method: "POST", headers: { "content-type": "application/json", origin: ORIGIN }, body: JSON.stringify(body) });
    const { nonce } = await (await post("/siwe/nonce", {})).json();
    const message = formatSiweMessage({ domain: "app.test", address, uri: ORIGIN, version: "1", chainId: CHAIN, nonce, issuedAt: new Date().toISOString() });
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

  it("answers 503 ERR_SIWE_RPC_UNAVAILABLE, not 500, when the chain's RPC is down", async () => {
    const { status, body } = await signIn(deadServer, walletAddress, owner.sign);
    expect(status).toBe(503);
    expect(body.code).toBe("ERR_SIWE_RPC_UNAVAILABLE");
    // An ordinary account does not need the RPC at all.
    const eoa = ethereumWallet();
    expect((await signIn(deadServer, eoa.address, eoa.sign)).status).toBe(200);
  });
});
