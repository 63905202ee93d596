import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { Keypair } from "@solana/web3.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { silentLogger } from "@erebus/core";
import { createApp } from "../../express-app/src/app.js";
import { configFromEnv } from "../../express-app/src/config.js";
import { runAgent } from "./agent.js";

describe("examples/agent against the example app", () => {
  let server: Server;
  let baseURL: string;
  let close: () => Promise<void>;

  beforeAll(async () => {
    const probe = createServer();
    await new Promise<void>((r) => probe.listen(0, "127.0.0.1", () => r()));
    const port = (probe.address() as AddressInfo).port;
    await new Promise((r) => probe.close(r));
    baseURL = `http://127.0.0.1:${port}`;
    const config = configFromEnv({ NODE_ENV: "development", PORT: String(port), HOST: "127.0.0.1", PUBLIC_URL: baseURL, DATABASE_URL: "pglite://memory", SYNC: "off" });
    const created = await createApp(config, { logger: silentLogger });
    close = created.close;
    server = await new Promise<Server>((resolve) => {
      const s = created.app.listen(port, "127.0.0.1", () => resolve(s));
    });
  });
  afterAll(async () => {
    await new Promise<void>((done) => { server?.closeAllConnections(); server?.close(() => done()); });
    await close?.();
  });

  it("signs in with a Solana Keypair and a viem account, calls /api/me with each bearer session, trades with an API key", async () => {
    const keypair = Keypair.generate();
    const lines: string[] = [];
    const report = await runAgent({ baseURL, solanaKeypair: keypair, log: (line) => lines.push(line) });
    expect(report.solana.address).toBe(keypair.publicKey.toBase58());
    expect(report.ethereum.address).toMatch(/^0x[0-9a-fA-F]{40}$/);
    expect(report.solana.userId).not.toBe(report.ethereum.userId);
    expect(report.trade).toMatchObject({ ok: true });
    expect(lines).toHaveLength(3);
    // The bot is the same identity the next time it signs in with the same Keypair.
    const again = await runAgent({ baseURL, solanaKeypair: keypair });
    expect(again.solana.userId).toBe(report.solana.userId);
  });
});
