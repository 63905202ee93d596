import type { AddressInfo } from "node:net";
import type { Server } from "node:http";
import { Keypair } from "@solana/web3.js";
import { Ajv2020 } from "ajv/dist/2020.js";
import express from "express";
import * as z from "zod";
import { privateKeyToAccount, generatePrivateKey } from "viem/accounts";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createAuth, type ErebusAuth, type ErebusProvider } from "@erebus/core";
import { createErebusClient } from "@erebus/client";
import { mountedRoutes } from "@erebus/core/testing";
import { apiKeyProvider } from "@erebus/provider-apikey";
import { emailProvider, memoryTransport } from "@erebus/provider-email";
import { oauthProvider, oidc } from "@erebus/provider-oauth";
import { walletProvider } from "@erebus/provider-wallet";
import { engines } from "./engines.js";
import { browser, loginAndConsent, startOpenIdProvider, type TestOp } from "./oidc.js";

/** One answer the app gave: what the document must describe. */
interface Seen {
  method: string;
  path: string;
  status: number;
  contentType: string;
  body: unknown;
}

type Operation = { responses: Record<string, { content?: Record<string, { schema?: unknown }> }>; summary: string };
type Document = { openapi: string; paths: Record<string, Record<string, Operation>>; components: unknown };

const pointer = (...parts: string[]) => parts.map((part) => part.replace(/~/g, "~0").replace(/\//g, "~1")).join("/");

describe("the OpenAPI document (GET /auth/openapi.json)", () => {
  const engine = engines()[0]!;
  let server: Server;
  let url: string;
  let auth: ErebusAuth;
  let op: TestOp;
  const mail = memoryTransport();
  const seen: Seen[] = [];
  let document: Document;
  let providers: ErebusProvider[];

  /** fetch that records every answer from the app for the document check. */
  const recording: typeof fetch = async (input, init) => {
    const response = await fetch(input, { redirect: "manual", ...init });
    const target = new URL(input instanceof Request ? input.url : String(input));
    if (target.origin === url) {
      const contentType = (response.headers.get("content-type") ?? "").split(";")[0]!;
      const text = await response.clone().text();
      seen.push({ method: (init?.method ?? "GET").toLowerCase(), path: target.pathname, status: response.status, contentType, body: contentType.endsWith("json") && text ? JSON.parse(text) : text });
    }
    return response;
  };

  beforeAll(async () => {
    const app = express();
    server = await new Promise<Server>((resolve) => {
      const s = app.listen(0, "127.0.0.1", () => resolve(s));
    });
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    op = await startOpenIdProvider([`${url}/auth/oauth/dev/callback`]);
    providers = [
      walletProvider({ ethereum: { chains: [1] }, solana: { chains: ["mainnet"] } }),
      emailProvider({ transport: mail }),
      oauthProvider({ providers: { dev: oidc({ issuer: op.issuer, clientId: op.clientId, clientSecret: op.clientSecret }) } }),
      apiKeyProvider({ pepper: "openapi-test-pepper-0123456789abcdefghij" }),
    ];
    auth = createAuth({ database: await engine.create(), baseURL: url, migrate: true, providers });
    await auth.ready;
    app.use("/auth", auth.router);
    app.use(auth.errorHandler);
    const response = await recording(`${url}/auth/openapi.json`);
    document = (await response.json()) as Document;
  });
  afterAll(async () => {
    await new Promise<void>((done) => { server?.closeAllConnections(); server?.close(() => done()); });
    await auth?.close();
    await op?.close();
  });

  it("describes every route the router has, none undocumented, and nothing that is not mounted", () => {
    expect(document.openapi).toBe("3.1.0");
    const mounted = mountedRoutes(auth.router).map(({ method, path }) => `${method.toUpperCase()} /auth${path}`.replace(/:([A-Za-z0-9_]+)/g, "{$1}")).sort();
    const documented = Object.entries(document.paths).flatMap(([path, operations]) => Object.keys(operations).map((method) => `${method.toUpperCase()} ${path}`)).sort();
    expect(documented).toEqual(mounted);
    const undocumented = Object.entries(document.paths).flatMap(([path, operations]) => Object.entries(operations).filter(([, operation]) => operation.summary === "(undocumented)").map(([method]) => `${method} ${path}`));
    expect(undocumented).toEqual([]);
  });

  it("every real answer of every route validates against the document, errors included", async () => {
    const client = createErebusClient({ baseURL: url, fetch: recording });
    const call = (path: string, init: RequestInit = {}) => recording(`${url}${path}`, init);
    const json = (body: unknown) => ({ method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });

    // Sign-in flows, the way programs run them.
    await client.signInWithEthereum(privateKeyToAccount(generatePrivateKey()));
    await call("/auth/siwe/nonce", { method: "POST" });
    await client.signInWithSolana(Keypair.generate());
    await client.session();
    await client.email.start({ email: "doc@example.com", mode: "link" });
    const link = /https?:\/\/\S+token=[A-Za-z0-9_-]+/.exec(mail.messages()[0]!.text)![0];
    await call(new URL(link).pathname + new URL(link).search);
    // Signed in with Solana right now: the link asks for the explicit switch first (409), then takes it.
    await client.email.verify({ token: new URL(link).searchParams.get("token")! }).catch(() => undefined);
    await client.email.verify({ token: new URL(link).searchParams.get("token")!, switch: true });
    await client.email.start({ email: "doc@example.com", mode: "code" });
    const code = /\b(\d{6})\b/.exec(mail.messages()[0]!.text)![1]!;
    await client.email.verify({ email: "doc@example.com", code });
    // People: the person's identities, and an unlink of an identity that is not this person's (404).
    await call("/auth/identities");
    await call("/auth/identities/00000000-0000-4000-8000-000000000000", { method: "DELETE" });
    const key = await client.apiKeys.create({ name: "doc" });
    await client.apiKeys.list();
    await client.apiKeys.rotate(key.id, { gracePeriodSeconds: 0 });
    await client.apiKeys.revoke(key.id);
    await client.oauth.providers();
    // OAuth in a browser: start, the IdP's pages, the callback.
    const browse = browser();
    const start = await browse.request(client.oauth.startURL("dev"));
    seen.push({ method: "get", path: "/auth/oauth/dev", status: start.status, contentType: "", body: "" });
    const callback = await loginAndConsent(browse, start.headers.get("location")!, "doc-user", (u) => u.pathname.endsWith("/callback"));
    const landed = await browse.request(callback.href);
    seen.push({ method: "get", path: "/auth/oauth/dev/callback", status: landed.status, contentType: "", body: "" });
    await client.signOut();

    // Errors: malformed, unauthenticated, cross-site, wrong media type, replay.
    await call("/auth/siwe/verify", json({}));
    await call("/auth/siws/verify", json({ message: 1 }));
    await call("/auth/email/start", json({ email: "not an address" }));
    await call("/auth/email/verify", json({ email: "doc@example.com", code: "000000" }));
    await call("/auth/email/verify?token=x");
    await call("/auth/api-keys");
    await call("/auth/api-keys", json({ name: "x" }));
    await call("/auth/session");
    await call("/auth/sign-out", { method: "POST", headers: { origin: "https://evil.example" } });
    await call("/auth/siwe/nonce", { method: "POST", headers: { "content-type": "text/plain" }, body: "x" });
    // Core's body parsers run for every route: one that takes no body still answers 415 to a non-JSON one.
    await call("/auth/sign-out", { method: "POST", headers: { "content-type": "text/plain" }, body: "x" });
    await call("/auth/oauth/nope");
    await call("/auth/oauth/dev/callback?state=x&code=y", { headers: { accept: "application/json" } });
    await call("/auth/oauth/dev/callback?code=y", { headers: { accept: "application/json" } });
    await call("/auth/oauth/dev?returnTo=//evil.example");
    await call("/auth/siwe/verify", { method: "POST", headers: { "content-type": "application/json" }, body: "{not json" });
    await call("/auth/siws/verify", json({ message: "x", signature: "1", address: "11111111111111111111111111111111" }));
    await call("/auth/email/verify", json({ token: "A".repeat(43) }));
    // A replayed SIWE message: its nonce was used by the first verify.
    const replayer = privateKeyToAccount(generatePrivateKey());
    const issued = await client.siwe.nonce({ address: replayer.address, chainId: 1 });
    const signature = await replayer.signMessage({ message: issued.message! });
    await call("/auth/siwe/verify", json({ message: issued.message, signature }));
    await call("/auth/siwe/verify", json({ message: issued.message, signature }));
    // API-key management: an unknown id, and a key where a session is needed.
    const owner = createErebusClient({ baseURL: url, fetch: recording });
    await owner.signInWithSolana(Keypair.generate());
    await owner.apiKeys.revoke("AAAAAAAAAAAA").catch(() => undefined);
    const program = await owner.apiKeys.create({ name: "program" });
    await createErebusClient({ baseURL: url, apiKey: program.key, fetch: recording }).apiKeys.list().catch(() => undefined);

    const ajv = new Ajv2020({ strict: false, allErrors: true, validateFormats: false });
    ajv.addSchema(document as object, "openapi");
    const templates = Object.keys(document.paths).map((template) => ({ template, pattern: new RegExp(`^${template.replace(/\{[^}]+\}/g, "[^/]+")}$`) }));
    const problems: string[] = [];
    for (const answer of seen) {
      const template = templates.find(({ pattern }) => pattern.test(answer.path))?.template;
      const where = `${answer.method.toUpperCase()} ${answer.path} → ${answer.status}`;
      if (!template) { problems.push(`${where}: no path in the document`); continue; }
      const operation = document.paths[template]![answer.method];
      if (!operation) { problems.push(`${where}: no operation`); continue; }
      const response = operation.responses[String(answer.status)];
      if (!response) { problems.push(`${where}: status not documented (${(answer.body as { code?: string })?.code ?? ""})`); continue; }
      if (!answer.contentType.endsWith("json")) continue;
      const media = response.content?.[answer.contentType];
      if (!media) { problems.push(`${where}: ${answer.contentType} not documented`); continue; }
      if (!media.schema) continue;
      const ref = `openapi#/${pointer("paths", template, answer.method, "responses", String(answer.status), "content", answer.contentType, "schema")}`;
      const validate = ajv.getSchema(ref) ?? ajv.compile({ $ref: ref });
      if (!validate(answer.body)) problems.push(`${where}: ${ajv.errorsText(validate.errors)} in ${JSON.stringify(answer.body).slice(0, 300)}`);
    }
    expect(problems).toEqual([]);
    // The run reached every documented operation at least once.
    const reached = new Set(seen.map((answer) => `${answer.method} ${templates.find(({ pattern }) => pattern.test(answer.path))?.template}`));
    const missed = Object.entries(document.paths).flatMap(([path, operations]) => Object.keys(operations).map((method) => `${method} ${path}`)).filter((operation) => !reached.has(operation));
    expect(missed).toEqual([]);
    // And errors were among what was checked: these codes were answered for real and validated above.
    const answered = new Set(seen.filter((answer) => answer.contentType === "application/problem+json").map((answer) => (answer.body as { code: string }).code));
    expect([...answered].sort()).toEqual(
      expect.arrayContaining([
        "ERR_APIKEY_NOT_FOUND",
        "ERR_APIKEY_SESSION_REQUIRED",
        "ERR_BODY_INVALID",
        "ERR_BODY_MALFORMED",
        "ERR_EMAIL_CODE_INVALID",
        "ERR_EMAIL_INVALID",
        "ERR_EMAIL_SWITCH_REQUIRED",
        "ERR_EMAIL_TOKEN_INVALID",
        "ERR_OAUTH_STATE_INVALID",
        "ERR_OAUTH_PROVIDER_UNKNOWN",
        "ERR_OAUTH_RETURN_TO_INVALID",
        "ERR_OAUTH_STATE_MISSING",
        "ERR_ORIGIN_FORBIDDEN",
        "ERR_SIWE_NONCE_USED",
        "ERR_SIWS_ADDRESS_INVALID",
        "ERR_UNAUTHENTICATED",
        "ERR_UNSUPPORTED_MEDIA_TYPE",
      ]),
    );
  });

  it("documents every error code of every mounted provider's table on some route, with its status", () => {
    const documented = new Map<string, Set<number>>();
    for (const operations of Object.values(document.paths)) {
      for (const operation of Object.values(operations)) {
        for (const [status, response] of Object.entries(operation.responses)) {
          const schema = response.content?.["application/problem+json"]?.schema as { allOf?: { properties?: { code?: { enum?: string[] } } }[] } | undefined;
          for (const code of schema?.allOf?.[1]?.properties?.code?.enum ?? []) documented.set(code, (documented.get(code) ?? new Set()).add(Number(status)));
        }
      }
    }
    const missing: string[] = [];
    for (const provider of providers) {
      for (const [code, { status }] of Object.entries(provider.errors ?? {})) {
        if (!documented.get(code)?.has(status)) missing.push(`${provider.id} ${code} ${status}`);
      }
    }
    expect(missing).toEqual([]);
  });
});

describe("route documentation is enforced", () => {
  it("review: a body schema whose preprocess throws on a missing body is documented as required, not a crash of createAuth", async () => {
    const { describeRoute } = await import("@erebus/core");
    const trimmed = z.preprocess((value) => (value as { name: string }).name.trim(), z.string());
    const provider = {
      id: "odd",
      emits: [],
      routes(router: express.Router) {
        router.post("/odd", describeRoute({ summary: "odd", body: trimmed, responses: { 200: { description: "ok" } } }), (_req, res) => res.end());
      },
    };
    const auth = createAuth({ database: "pglite://memory", baseURL: "http://localhost:3000", providers: [provider] });
    try {
      const document = await new Promise<Record<string, unknown>>((resolve) => {
        const res = { type: () => res, send: (body: string) => resolve(JSON.parse(body) as Record<string, unknown>), setHeader: () => undefined };
        const layer = (auth.router as unknown as { stack: { route?: { path: string; stack: { handle: (req: unknown, res: unknown, next: () => void) => void }[] } }[] }).stack.find((l) => l.route?.path === "/openapi.json")!;
        layer.route!.stack.at(-1)!.handle({}, res, () => undefined);
      });
      expect((document as { paths: Record<string, { post: { requestBody: { required: boolean } } }> }).paths["/auth/odd"]!.post.requestBody.required).toBe(true);
    } finally {
      await auth.close();
    }
  });

  it("a route that documents a code in no errors table fails createAuth with a TypeError naming it", async () => {
    const { describeRoute } = await import("@erebus/core");
    const provider = {
      id: "doc",
      emits: [],
      errors: { ERR_DOC_KNOWN: { status: 400, title: "known" } },
      routes(router: express.Router) {
        router.get("/doc", describeRoute({ summary: "x", responses: { 200: { description: "ok" } }, errors: ["ERR_DOC_UNKNOWN"] }), (_req, res) => res.end());
      },
    };
    expect(() => createAuth({ database: "pglite://memory", baseURL: "http://localhost:3000", providers: [provider] })).toThrow(/GET \/doc \(doc\) documents ERR_DOC_UNKNOWN/);
  });
});
