import type { AddressInfo } from "node:net";
import { Keypair } from "@solana/web3.js";
import { generateKeyPairSigner } from "@solana/kit";
import express from "express";
import ganache from "ganache";
import { privateKeyToAccount, generatePrivateKey } from "viem/accounts";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createAuth, type ErebusAuth } from "@erebus/core";
import { apiKeyProvider } from "@erebus/provider-apikey";
import { emailProvider, memoryTransport } from "@erebus/provider-email";
import { walletProvider } from "@erebus/provider-wallet";
import { engines, rowCounts } from "../../../test/engines.js";
import { createErebusClient, ErebusError, memoryTokenStore } from "./index.js";
import { eip1193Signer } from "./ethereum.js";

/** The app a bot talks to: Erebus mounted at /auth, an API behind it. Listens first, so baseURL is its real origin. */
async function startApp(db: Awaited<ReturnType<ReturnType<typeof engines>[number]["create"]>>) {
  const app = express();
  const server = await new Promise<import("node:http").Server>((resolve) => {
    const s = app.listen(0, "127.0.0.1", () => resolve(s));
  });
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const mail = memoryTransport();
  const auth: ErebusAuth = createAuth({
    database: db,
    baseURL: url,
    migrate: true,
    providers: [
      walletProvider({ ethereum: { chains: [1, 8453] }, solana: { chains: ["mainnet"] } }),
      emailProvider({ transport: mail }),
      apiKeyProvider({ pepper: "client-test-pepper-0123456789abcdefghij" }),
    ],
  });
  await auth.ready;
  app.use("/auth", auth.router);
  app.use(auth.middleware);
  app.get("/api/me", auth.requireUser(), (req, res) => res.json({ id: req.auth!.user.id, via: req.auth!.via }));
  app.post("/api/trade", auth.requireScope("trade"), (req, res) => res.json({ ok: true, by: req.auth!.user.id }));
  app.get("/page", (_req, res) => res.type("html").send("<p>a page, not JSON</p>"));
  app.use(auth.errorHandler);
  return {
    url,
    auth,
    mail,
    close: () => new Promise<void>((done) => { server.closeAllConnections(); server.close(() => done()); }),
  };
}

/** A viem account wrapped to count what it is asked to sign: an attack test asserts it signed nothing. */
function countingSigner() {
  const account = privateKeyToAccount(generatePrivateKey());
  let count = 0;
  const signer = { address: account.address, signMessage: async (args: { message: string }) => { count++; return account.signMessage(args); } };
  return { account, signer, signed: () => count };
}

/** A relay in front of the app that rewrites the SIWE message of the nonce answer (a phishing proxy). */
function siweRelay(change: (message: string) => string): typeof fetch {
  return async (input, init) => {
    const response = await fetch(input, init);
    if (!String(input).endsWith("/siwe/nonce")) return response;
    const body = (await response.json()) as { message: string };
    body.message = change(body.message);
    return new Response(JSON.stringify(body), { status: 200, headers: { "content-type": "application/json" } });
  };
}

describe.each(engines())("@erebus/client against a real app ($name)", (engine) => {
  let db: Awaited<ReturnType<typeof engine.create>>;
  let app: Awaited<ReturnType<typeof startApp>>;

  beforeAll(async () => {
    db = await engine.create();
    app = await startApp(db);
  });
  afterAll(async () => {
    await app?.close();
    // auth.close() closes the database it was given (and the engine drops a server database then).
    if (app) await app.auth.close();
    else await db?.close();
  });

  it("signs in with a viem account in one call and calls the API with the bearer session", async () => {
    const account = privateKeyToAccount(generatePrivateKey());
    const client = createErebusClient({ baseURL: app.url });
    const result = await client.signInWithEthereum(account, { chainId: 8453 });
    expect(result.user.network).toBe("ethereum");
    expect(result.user.source_identifier).toBe(account.address);
    expect(result.session).not.toHaveProperty("token"); // kept by the client, not handed to the caller's logs
    const me = await client.json<{ id: string; via: string }>("/api/me");
    expect(me).toEqual({ id: result.user.id, via: "session" });
    const session = await client.session();
    expect(session?.user.id).toBe(result.user.id);
  });

  it("signs in with an EIP-1193 provider (ganache)", async () => {
    const provider = ganache.provider({ logging: { quiet: true }, wallet: { totalAccounts: 1 }, chain: { chainId: 1 } });
    // ganache signs EIP-191 personal messages through eth_sign (address first) and lacks the
    // personal_sign name browser wallets answer to; map the name, keep its real signature.
    const wallet = {
      request: ({ method, params = [] }: { method: string; params?: unknown[] }) =>
        method === "personal_sign" ? provider.request({ method: "eth_sign", params: [params[1], params[0]] } as never) : provider.request({ method, params } as never),
    };
    const signer = await eip1193Signer(wallet);
    const client = createErebusClient({ baseURL: app.url });
    const result = await client.signInWithEthereum(signer, { chainId: 1 });
    expect(result.user.source_identifier.toLowerCase()).toBe(signer.address.toLowerCase());
    await provider.disconnect();
  });

  it("signs in with a @solana/web3.js Keypair and with a @solana/kit signer", async () => {
    const keypair = Keypair.generate();
    const bot = createErebusClient({ baseURL: app.url });
    const first = await bot.signInWithSolana(keypair);
    expect(first.user).toMatchObject({ network: "solana", source_identifier: keypair.publicKey.toBase58() });
    expect((await bot.json<{ id: string }>("/api/me")).id).toBe(first.user.id);

    const kit = await generateKeyPairSigner();
    const other = createErebusClient({ baseURL: app.url });
    const second = await other.signInWithSolana(kit);
    expect(second.user.source_identifier).toBe(kit.address);
    // The same Keypair again is the same identity.
    expect((await createErebusClient({ baseURL: app.url }).signInWithSolana(keypair)).user.id).toBe(first.user.id);
  });

  it("errors are ErebusErrors carrying the problem document", async () => {
    const client = createErebusClient({ baseURL: app.url });
    const error = await client.siwe.verify({ message: "not a SIWE message", signature: "0x00" }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ErebusError);
    expect((error as ErebusError).status).toBe(400);
    expect((error as ErebusError).code).toMatch(/^ERR_/);
    expect((error as ErebusError).problem.code).toBe((error as ErebusError).code);
    const unauthenticated = await client.json("/api/me").catch((e: unknown) => e);
    expect(unauthenticated).toMatchObject({ name: "ErebusError", status: 401, code: "ERR_UNAUTHENTICATED" });
    expect(await client.session()).toBeNull();
  });

  it("refuses to sign a message that names another site (a phishing relay), and the key never signs", async () => {
    const { signer, signed } = countingSigner();
    // A relay in front of the app rewrites the nonce answer to a message for another domain.
    const relay = siweRelay((message) => message.replace(/^[^ ]+ wants/, "bank.example wants"));
    const client = createErebusClient({ baseURL: app.url, fetch: relay });
    const before = await rowCounts(db);
    await expect(client.signInWithEthereum(signer)).rejects.toMatchObject({ code: "ERR_CLIENT_MESSAGE_MISMATCH" });
    expect(signed()).toBe(0);
    expect(await rowCounts(db)).toEqual(before);
  });

  it("review: refuses a message for another chain or another account than the signer's, and a sign-in redirected to another origin", async () => {
    const { account, signer, signed } = countingSigner();
    const otherChain = createErebusClient({ baseURL: app.url, fetch: siweRelay((m) => m.replace(/\nChain ID: \d+/, "\nChain ID: 8453")) });
    await expect(otherChain.signInWithEthereum(signer, { chainId: 1 })).rejects.toMatchObject({ code: "ERR_CLIENT_MESSAGE_MISMATCH" });
    const victim = privateKeyToAccount(generatePrivateKey()).address;
    const otherAccount = createErebusClient({ baseURL: app.url, fetch: siweRelay((m) => m.replace(/\n0x[0-9a-fA-F]{40}\n/, `\n${victim}\n`)) });
    await expect(otherAccount.signInWithEthereum(signer, { chainId: 1 })).rejects.toMatchObject({ code: "ERR_CLIENT_MESSAGE_MISMATCH" });
    expect(signed()).toBe(0);

    // A 307 on the verify POST would carry the signed message to another site: not followed.
    const { createServer } = await import("node:http");
    const received: string[] = [];
    const elsewhere = createServer((req, res) => { received.push(req.url ?? ""); res.end("{}"); });
    await new Promise<void>((r) => elsewhere.listen(0, "127.0.0.1", () => r()));
    const redirecting: typeof fetch = async (input, init) =>
      String(input).endsWith("/siwe/verify")
        ? new Response(null, { status: 307, headers: { location: `http://127.0.0.1:${(elsewhere.address() as AddressInfo).port}/steal` } })
        : fetch(input, init);
    try {
      const client = createErebusClient({ baseURL: app.url, fetch: async (input, init) => {
        // A real redirect answer, as fetch with redirect "manual" gives it back.
        const response = await redirecting(input, init);
        if (response.status === 307 && (init as RequestInit | undefined)?.redirect !== "manual") return fetch(response.headers.get("location")!, init);
        return response;
      } });
      await expect(client.signInWithEthereum(account)).rejects.toMatchObject({ name: "ErebusError", status: 307 });
      expect(received).toEqual([]);
    } finally {
      await new Promise((r) => elsewhere.close(r));
    }
  });

  it("a statement line cannot shadow the URI the message really carries", async () => {
    const { signer, signed } = countingSigner();
    // The relay keeps the first line, puts a convincing "URI:" in the statement, and points the real URI elsewhere.
    const relay = siweRelay((message) => message.replace(/\n\n(Sign in to [^\n]*)\n\nURI: ([^\n]+)/, (_m, statement, uri) => `\n\n${statement}\nURI: ${uri}\n\nURI: https://bank.example`));
    const client = createErebusClient({ baseURL: app.url, fetch: relay });
    await expect(client.signInWithEthereum(signer)).rejects.toMatchObject({ code: "ERR_CLIENT_MESSAGE_MISMATCH" });
    expect(signed()).toBe(0);
  });

  it("email code sign-in, API keys (create, list, rotate now, revoke) and a program acting with its key", async () => {
    const client = createErebusClient({ baseURL: app.url, tokenStore: memoryTokenStore() });
    const address = `bot-${engine.name}@example.com`;
    expect(await client.email.start({ email: address, mode: "code" })).toMatchObject({ mode: "code" });
    const mail = app.mail.messages().find((m) => m.to === address)!;
    const code = /\b(\d{6,8})\b/.exec(mail.text)![1]!;
    const signedIn = await client.email.verify({ email: address, code });
    expect(signedIn.user).toMatchObject({ network: "email", source_identifier: address });

    const created = await client.apiKeys.create({ name: "trader", scopes: ["trade"] });
    expect(created.key).toMatch(/^[a-z]+_/);
    expect((await client.apiKeys.list()).map((key) => key.id)).toContain(created.id);

    const program = createErebusClient({ baseURL: app.url, apiKey: created.key });
    expect(await program.json("/api/trade", { method: "POST", body: "{}" })).toMatchObject({ ok: true });

    const rotated = await client.apiKeys.rotate(created.id, { gracePeriodSeconds: 0 });
    await expect(program.json("/api/trade", { method: "POST", body: "{}" })).rejects.toMatchObject({ status: 401 });
    const renewed = createErebusClient({ baseURL: app.url, apiKey: rotated.key });
    expect(await renewed.json("/api/trade", { method: "POST", body: "{}" })).toMatchObject({ ok: true });

    await client.apiKeys.revoke(created.id);
    await expect(renewed.json("/api/trade", { method: "POST", body: "{}" })).rejects.toMatchObject({ name: "ErebusError", status: 401 });
  });

  it("sign-out ends the session on the server and forgets the token", async () => {
    const store = memoryTokenStore();
    const client = createErebusClient({ baseURL: app.url, tokenStore: store });
    await client.signInWithSolana(Keypair.generate());
    const token = await store.get();
    expect(token).toBeTruthy();
    await client.signOut();
    expect(await store.get()).toBeNull();
    expect(await client.session()).toBeNull();
    // The old token is dead on the server too, not just forgotten here.
    const deadStore = memoryTokenStore(token);
    const replay = createErebusClient({ baseURL: app.url, tokenStore: deadStore });
    await expect(replay.json("/api/me")).rejects.toMatchObject({ status: 401 });
    // session() finds it dead and forgets it.
    expect(await replay.session()).toBeNull();
    expect(await deadStore.get()).toBeNull();
  });

  it("never follows a redirect with its credential (X-API-Key would cross origins)", async () => {
    const { createServer } = await import("node:http");
    const received: (string | undefined)[] = [];
    const elsewhere = createServer((req, res) => {
      received.push(req.headers["x-api-key"] as string | undefined);
      res.end("{}");
    });
    await new Promise<void>((r) => elsewhere.listen(0, "127.0.0.1", () => r()));
    const target = `http://127.0.0.1:${(elsewhere.address() as AddressInfo).port}/steal`;
    const redirector = createServer((_req, res) => {
      res.writeHead(302, { location: target });
      res.end();
    });
    await new Promise<void>((r) => redirector.listen(0, "127.0.0.1", () => r()));
    try {
      const client = createErebusClient({ baseURL: `http://127.0.0.1:${(redirector.address() as AddressInfo).port}`, apiKey: "erebus_secret_key" });
      await expect(client.json("/api/me")).rejects.toMatchObject({ name: "ErebusError", status: 302 });
      expect(received).toEqual([]);
    } finally {
      await new Promise((r) => elsewhere.close(r));
      await new Promise((r) => redirector.close(r));
    }
  });

  it("review: a 2xx answer that is not JSON is an ErebusError (ERR_CLIENT_UNEXPECTED_RESPONSE), not a SyntaxError", async () => {
    const client = createErebusClient({ baseURL: app.url });
    const error = await client.json("/page").catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ErebusError);
    expect(error).toMatchObject({ code: "ERR_CLIENT_UNEXPECTED_RESPONSE", status: 200 });
  });

  it("never sends its credential to another origin", async () => {
    const client = createErebusClient({ baseURL: app.url, apiKey: "erebus_x" });
    await expect(client.request("https://elsewhere.example/api")).rejects.toThrow(/refusing to send credentials/);
  });
});

describe("createErebusClient options", () => {
  it("refuses a baseURL that is not an absolute http(s) URL, with an example", () => {
    expect(() => createErebusClient({ baseURL: "app.example" })).toThrow(/absolute URL like "https:\/\/app.example"/);
    expect(() => createErebusClient({ baseURL: "ftp://app.example" })).toThrow(/http\(s\)/);
    expect(() => createErebusClient({})).toThrow(/baseURL/);
  });
});
