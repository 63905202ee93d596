import http from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { silentLogger } from "@erebus/core";
import { serverEngine } from "../../../test/engines.js";
import { startAuthServer } from "../../../test/http.js";
import { ethereumWallet } from "../../../test/wallets.js";
import { formatSiweMessage } from "./siwe-message.js";
import { walletProvider } from "./index.js";

const ORIGIN = "http://app.test";
const engine = serverEngine();

describe.runIf(engine)("the verify limit holds across instances (real PostgreSQL server)", () => {
  let rpcCalls = 0;
  const rpc = http.createServer((req, res) => {
    let body = "";
    req.on("data", (chunk) => (body += chunk));
    req.on("end", () => {
      rpcCalls++;
      const one = (m: { id: number; method: string }) => ({ jsonrpc: "2.0", id: m.id, result: m.method === "eth_chainId" ? "0x1" : `0x${"0".repeat(64)}` });
      const message = JSON.parse(body) as { id: number; method: string } | { id: number; method: string }[];
      res.setHeader("content-type", "application/json");
      res.end(JSON.stringify(Array.isArray(message) ? message.map(one) : one(message)));
    });
  });
  let instances: Awaited<ReturnType<typeof startAuthServer>>[] = [];

  beforeAll(async () => {
    await new Promise<void>((resolve) => rpc.listen(0, "127.0.0.1", () => resolve()));
    const rpcUrl = `http://127.0.0.1:${(rpc.address() as AddressInfo).port}`;
    const db = await engine!.create({ max: 10 });
    const options = (migrate: boolean) => ({
      database: db,
      migrate,
      baseURL: ORIGIN,
      logger: silentLogger,
      production: false,
      providers: [walletProvider({ rateLimit: { nonce: 5, verify: 5 }, ethereum: { chains: [1], rpc: { "1": rpcUrl } } })],
    });
    instances = [await startAuthServer(options(true)), await startAuthServer(options(false))];
  });
  afterAll(async () => {
    for (const { server } of instances) await server.close();
    // Both instances share one Database: the first close ends it (and drops the server database).
    await instances[0]?.auth.close();
    rpc.close();
  });

  it("review: failed verifies with never-issued nonces count on the shared limit, so two instances allow 5 a minute, not 5 each, and the RPC is not called past it", async () => {
    const victim = ethereumWallet();
    const attacker = ethereumWallet();
    const statuses: number[] = [];
    for (let i = 0; i < 30; i++) {
      const { server } = instances[i % 2]!;
      const message = formatSiweMessage({ domain: "app.test", address: victim.address, uri: ORIGIN, version: "1", chainId: 1, nonce: `bogus${String(i).padStart(17, "0")}`, issuedAt: new Date().toISOString() });
      const response = await fetch(`${server.url}/auth/siwe/verify`, {
        method: "POST",
        headers: { "content-type": "application/json", origin: ORIGIN },
        body: JSON.stringify({ message, signature: await attacker.sign(message) }),
      });
      statuses.push(response.status);
    }
    const passed = statuses.filter((status) => status !== 429).length;
    expect(passed).toBeLessThanOrEqual(5);
    expect(statuses.slice(-10).every((status) => status === 429)).toBe(true);
    // Each attempt that got through may ask the RPC (the contract check, and the chain id once): none past the limit.
    expect(rpcCalls).toBeLessThanOrEqual(passed * 2 + 1);
  });
});
