import type { AddressInfo } from "node:net";
import { Keypair } from "@solana/web3.js";
import express from "express";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createAuth, silentLogger, type ErebusAuth } from "@erebus/core";
import { testProvider } from "@erebus/core/testing";
import { emailProvider, memoryTransport } from "@erebus/provider-email";
import { walletProvider } from "@erebus/provider-wallet";
import { engines, rowCounts } from "../../../test/engines.js";
import { createErebusClient, ErebusError, IdentityLinkedElsewhereError, isLinkResult, memoryTokenStore, ReauthRequiredError, type ErebusClient } from "./index.js";

/** An app with the wallet and email providers and core's test provider; its clock is the test's. */
async function startApp(db: Awaited<ReturnType<ReturnType<typeof engines>[number]["create"]>>, clock: () => Date) {
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
    logger: silentLogger,
    clock,
    production: false,
    providers: [walletProvider({ ethereum: { chains: [1] }, solana: { chains: ["mainnet"] } }), emailProvider({ transport: mail }), testProvider()],
  });
  await auth.ready;
  app.use("/auth", auth.router);
  app.use(auth.middleware);
  app.use(auth.errorHandler);
  return {
    url,
    auth,
    mail,
    close: () => new Promise<void>((done) => { server.closeAllConnections(); server.close(() => done()); }),
  };
}

describe.each(engines())("@erebus/client people: identities, unlink, link intents ($name)", (engine) => {
  let db: Awaited<ReturnType<typeof engine.create>>;
  let app: Awaited<ReturnType<typeof startApp>>;
  let now = new Date();

  beforeAll(async () => {
    db = await engine.create();
    app = await startApp(db, () => now);
  });
  afterAll(async () => {
    await app?.close();
    if (app) await app.auth.close();
    else await db?.close();
  });

  /** Core's development provider (not a client method): a ticket, then its proof, optionally under a link intent. */
  const testSignIn = async (client: ErebusClient, handle: string, link?: { merge?: boolean }) => {
    const { ticket } = await client.json<{ ticket: string }>("/auth/test/start", {
      method: "POST",
      body: JSON.stringify({ handle, ...(link ? { intent: "link", ...link } : {}) }),
    });
    return client.json<Record<string, unknown>>("/auth/test/verify", { method: "POST", body: JSON.stringify({ handle, ticket }) });
  };
  const bearerSignIn = async (handle: string) => {
    const store = memoryTokenStore();
    const client = createErebusClient({ baseURL: app.url, tokenStore: store });
    const result = await testSignIn(client, handle);
    await store.set((result.session as { token: string }).token);
    return { client, store, user: result.user as { id: string } };
  };
  const personOf = async (network: string, id: string) => (await app.auth.api.findUser(network, id))?.person_id;

  it("identities() lists the signed-in person; session() carries the person; unlink(id) makes the identity its own person", async () => {
    const { client, user } = await bearerSignIn("pia");
    expect((await testSignIn(client, "pia_phone", {})).outcome).toBe("linked");
    const person = await client.identities();
    expect(person.id).toBe(user.id);
    expect(person.identities.map((i) => `${i.network}:${i.source_identifier}:${i.type}`)).toEqual(["test:pia:test_account", "test:pia_phone:test_account"]);
    expect((await client.session())?.person).toMatchObject({ id: user.id, identities: [{ id: user.id }, { source_identifier: "pia_phone" }] });

    const phone = person.identities[1]!;
    const unlinked = await client.unlink(phone.id);
    expect(unlinked.unlinked).toMatchObject({ id: phone.id, person_id: phone.id });
    expect(unlinked.person.identities.map((i) => i.source_identifier)).toEqual(["pia"]);
    expect(await personOf("test", "pia_phone")).toBe(phone.id);
    expect((await client.identities()).identities).toHaveLength(1);
    // The session's own identity, and one that is not the person's: typed codes, nothing changes.
    await expect(client.unlink(user.id)).rejects.toMatchObject({ name: "ErebusError", status: 409, code: "ERR_IDENTITY_IN_USE" });
    await expect(client.unlink(phone.id)).rejects.toMatchObject({ status: 404, code: "ERR_IDENTITY_NOT_FOUND" });
    await expect(client.unlink("../sign-out")).rejects.toMatchObject({ status: 404 });
    expect(await client.session()).not.toBeNull(); // "../sign-out" was encoded, not a path to another route
  });

  it("a stale session: link and unlink throw ReauthRequiredError (403, maxAge); signing in again refreshes it", async () => {
    const { client, store } = await bearerSignIn("quinn");
    await testSignIn(client, "quinn_phone", {});
    const phone = (await client.identities()).identities[1]!;
    now = new Date(now.getTime() + 11 * 60_000);
    try {
      const stale = await client.unlink(phone.id).catch((e: unknown) => e);
      expect(stale).toBeInstanceOf(ReauthRequiredError);
      expect(stale).toBeInstanceOf(ErebusError);
      expect(stale).toMatchObject({ name: "ReauthRequiredError", status: 403, code: "ERR_REAUTH_REQUIRED", maxAge: 600 });
      await expect(client.signInWithEthereum(privateKeyToAccount(generatePrivateKey()), { intent: "link" })).rejects.toBeInstanceOf(ReauthRequiredError);
      await expect(client.email.start({ email: "quinn@example.com", mode: "code", intent: "link" })).rejects.toBeInstanceOf(ReauthRequiredError);
      expect(await personOf("test", "quinn_phone")).not.toBe(phone.id); // still linked
      // Step-up: re-proving a wallet the person already has makes the session fresh without a new one.
      const wallet = privateKeyToAccount(generatePrivateKey());
      now = new Date(now.getTime() - 11 * 60_000);
      expect((await client.signInWithEthereum(wallet, { intent: "link" })).outcome).toBe("linked");
      now = new Date(now.getTime() + 11 * 60_000);
      const stepUp = await client.signInWithEthereum(wallet, { intent: "reauthenticate" });
      expect(stepUp.outcome).toBe("reauthenticated");
      expect(isLinkResult(stepUp)).toBe(true);
      await expect(client.signInWithEthereum(privateKeyToAccount(generatePrivateKey()), { intent: "reauthenticate" })).rejects.toMatchObject({ code: "ERR_REAUTH_IDENTITY_FOREIGN" });
      expect((await client.unlink(phone.id)).person.identities).toHaveLength(2);
      // Re-proving one of the person's identities (a fresh sign-in) makes it fresh again.
      await store.set(((await testSignIn(client, "quinn")).session as { token: string }).token);
      expect((await client.identities()).identities.map((i) => i.source_identifier)).not.toContain("quinn_phone");
    } finally {
      now = new Date();
    }
  });

  it("an identity of another person: IdentityLinkedElsewhereError with its size; merge: true takes that person in", async () => {
    const b = await bearerSignIn("sol");
    await testSignIn(b.client, "sol_phone", {});
    const a2 = await bearerSignIn("rhea");
    const error = await testSignIn(a2.client, "sol", {}).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(IdentityLinkedElsewhereError);
    expect(error).toMatchObject({ name: "IdentityLinkedElsewhereError", status: 409, code: "ERR_IDENTITY_LINKED_ELSEWHERE", identities: 2 });
    expect((error as IdentityLinkedElsewhereError).problem.identities).toBe(2);
    expect(await personOf("test", "sol")).toBe(b.user.id);
    const merged = await testSignIn(a2.client, "sol", { merge: true });
    expect(merged.outcome).toBe("merged");
    expect((await a2.client.identities()).identities.map((i) => i.source_identifier).sort()).toEqual(["rhea", "sol", "sol_phone"]);
  });

  it("signInWithEthereum and signInWithSolana with { intent: 'link' } attach the wallet and keep the session (no new token)", async () => {
    const { client, store, user } = await bearerSignIn("tess");
    const token = await store.get();
    const account = privateKeyToAccount(generatePrivateKey());
    const linked = await client.signInWithEthereum(account, { intent: "link" });
    expect(isLinkResult(linked)).toBe(true);
    expect(linked).toMatchObject({ outcome: "linked", user: { id: user.id }, linked: { network: "ethereum", source_identifier: account.address, person_id: user.id } });
    expect(linked.session).not.toHaveProperty("token");
    expect(await store.get()).toBe(token); // the same session goes on

    const keypair = Keypair.generate();
    const solana = await client.signInWithSolana(keypair, { intent: "link" });
    expect(solana).toMatchObject({ outcome: "linked", linked: { network: "solana", source_identifier: keypair.publicKey.toBase58() } });
    expect(solana.person.identities.map((i) => i.network)).toEqual(["test", "ethereum", "solana"]);
    expect(await store.get()).toBe(token);

    // Signing in with the linked wallet (another client) is the same person.
    const wallet = createErebusClient({ baseURL: app.url });
    const again = await wallet.signInWithSolana(keypair);
    expect(isLinkResult(again)).toBe(false);
    expect(again.user.person_id).toBe(user.id);
    expect((await wallet.identities()).id).toBe(user.id);
  });

  it("a wallet of another person: IdentityLinkedElsewhereError, then { intent: 'link', merge: true } merges", async () => {
    const account = privateKeyToAccount(generatePrivateKey());
    const owner = createErebusClient({ baseURL: app.url });
    const first = await owner.signInWithEthereum(account);
    const { client, user } = await bearerSignIn("uma");
    const error = await client.signInWithEthereum(account, { intent: "link" }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(IdentityLinkedElsewhereError);
    expect((error as IdentityLinkedElsewhereError).identities).toBe(1);
    expect(await personOf("ethereum", account.address)).toBe(first.user.id);
    const merged = await client.signInWithEthereum(account, { intent: "link", merge: true });
    expect(merged.outcome).toBe("merged");
    expect(await personOf("ethereum", account.address)).toBe(user.id);
  });

  it("email.start with intent 'link': the code attaches the address, and the answer is a link result", async () => {
    const { client, store, user } = await bearerSignIn("vera");
    const token = await store.get();
    const address = `vera-${engine.name}@example.com`;
    expect(await client.email.start({ email: address, mode: "code", intent: "link" })).toMatchObject({ mode: "code" });
    const mail = app.mail.messages().find((m) => m.to === address)!;
    const code = /\b(\d{6,8})\b/.exec(mail.text)![1]!;
    const linked = await client.email.verify({ email: address, code });
    expect(isLinkResult(linked)).toBe(true);
    expect(linked).toMatchObject({ outcome: "linked", linked: { network: "email", source_identifier: address, person_id: user.id } });
    expect(await store.get()).toBe(token);
  });

  it("refuses a link answered as a sign-in (a relay that drops the intent): ERR_CLIENT_UNEXPECTED_RESPONSE, and the client never acts as the wallet", async () => {
    const { store } = await bearerSignIn("wren");
    const token = await store.get();
    // A relay that strips intent and merge from the nonce request: the server signs in instead.
    const relay: typeof fetch = async (input, init) => {
      if (String(input).endsWith("/siwe/nonce") && typeof init?.body === "string") {
        const { intent: _i, merge: _m, ...rest } = JSON.parse(init.body) as Record<string, unknown>;
        return fetch(input, { ...init, body: JSON.stringify(rest) });
      }
      return fetch(input, init);
    };
    const client = createErebusClient({ baseURL: app.url, tokenStore: store, fetch: relay });
    const before = await rowCounts(db);
    const account = privateKeyToAccount(generatePrivateKey());
    const error = await client.signInWithEthereum(account, { intent: "link" }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: "ERR_CLIENT_UNEXPECTED_RESPONSE" });
    // The token of the sign-in it did not ask for was not kept (the server's sign-in ended the old
    // session as a switch of account does, so the client is signed out rather than someone else).
    expect(await store.get()).toBe(token);
    expect((await client.session())?.user.source_identifier).not.toBe(account.address);
    expect((await rowCounts(db)).users).toBe(before.users + 1); // the server did sign the wallet in on its own
  });

  it("fuzz: NUL and lone surrogates in every new string field are a TypeError or a 4xx ErebusError, never a URIError, and write nothing", async () => {
    const { client, user } = await bearerSignIn("xena");
    const before = await rowCounts(db);
    for (const id of ["\u0000", "\ud800", "\udfff", "a\u0000b", "", "%00", "../identities"]) {
      const error = await client.unlink(id).catch((e: unknown) => e);
      if (error instanceof TypeError) continue;
      expect(error, JSON.stringify(id)).toBeInstanceOf(ErebusError);
      expect((error as ErebusError).status, JSON.stringify(id)).toBeGreaterThanOrEqual(400);
      expect((error as ErebusError).status, JSON.stringify(id)).toBeLessThan(500);
    }
    await expect(client.unlink("\ud800")).rejects.toThrow(TypeError);
    for (const intent of ["\u0000", "\ud800", "link\u0000"]) {
      await expect(client.email.start({ email: "x@example.com", intent: intent as "link" })).rejects.toThrow(TypeError);
      await expect(client.signInWithSolana(Keypair.generate(), { intent: intent as "link" })).rejects.toThrow(TypeError);
    }
    for (const email of ["\u0000@example.com", "a\ud800@example.com", "b\udfff@example.com"]) {
      await expect(client.email.start({ email, mode: "code", intent: "link" })).rejects.toMatchObject({ name: "ErebusError", status: 400 });
    }
    for (const provider of ["\u0000", "\ud800"]) {
      await expect(client.signInWithEthereum(privateKeyToAccount(generatePrivateKey()), { intent: "link", provider })).rejects.toMatchObject({ status: 400 });
    }
    expect(await rowCounts(db)).toEqual(before);
    expect((await client.identities()).identities.map((i) => i.id)).toEqual([user.id]);
  });

  it("signInWithStandardWallet with { intent: 'link' }: a Wallet Standard wallet (a real Ed25519 key) joins the person", async () => {
    const { signInWithStandardWallet } = await import("./wallet-standard.js");
    const { solanaWallet } = await import("../../../test/wallets.js");
    const key = await solanaWallet();
    const wallet = {
      name: "Backpack",
      features: {
        "solana:signIn": {
          async signIn(input: Record<string, string>) {
            const { message, signature } = await key.signIn(input);
            const { default: bs58 } = await import("bs58");
            return [{ account: { address: key.address }, signedMessage: new TextEncoder().encode(message), signature: bs58.decode(signature) }];
          },
        },
      },
    };
    const { client, store, user } = await bearerSignIn("yuri");
    const token = await store.get();
    const linked = await signInWithStandardWallet(client, wallet, { intent: "link" });
    expect(linked).toMatchObject({ outcome: "linked", linked: { network: "solana", source_identifier: key.address, person_id: user.id } });
    expect(await store.get()).toBe(token);
  });

  it("oauth.linkURL and startURL with an intent name the intent (and merge) in the query; bad intents are TypeErrors", async () => {
    const client = createErebusClient({ baseURL: "https://app.example" });
    expect(client.oauth.linkURL("google")).toBe("https://app.example/auth/oauth/google?intent=link");
    expect(client.oauth.linkURL("dev", { returnTo: "/", merge: true })).toBe("https://app.example/auth/oauth/dev?returnTo=%2F&intent=link&merge=1");
    expect(client.oauth.startURL("dev", { intent: "link" })).toBe("https://app.example/auth/oauth/dev?intent=link");
    expect(client.oauth.startURL("dev")).toBe("https://app.example/auth/oauth/dev");
    await expect(client.signInWithEthereum(privateKeyToAccount(generatePrivateKey()), { intent: "LINK" as "link" })).rejects.toThrow(TypeError);
    await expect(client.email.start({ email: "a@example.com", intent: "link", merge: "yes" as unknown as boolean })).rejects.toThrow(TypeError);
  });
});
