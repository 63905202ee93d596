import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Browser } from "playwright-core";
import { silentLogger } from "@erebus/core";
import { chromiumPath, launchChromium } from "../../../test/browser.js";
import { listen, type Running } from "../../../test/http.js";
import bs58 from "bs58";
import { ethereumWallet, solanaWallet } from "../../../test/wallets.js";
import { createApp } from "./app.js";
import { assertSafeToServe, configFromEnv } from "./config.js";

const chromium = chromiumPath();

describe("example app", () => {
  let server: Running;
  let appUrl: string;
  let closeAuth: () => Promise<void>;
  let countUsers: (handle: string) => Promise<number>;

  beforeAll(async () => {
    // Bind first to learn the port, so PUBLIC_URL (the origin for CSRF checks) is the real one.
    const probe = createServer();
    await new Promise<void>((r) => probe.listen(0, "127.0.0.1", () => r()));
    const port = (probe.address() as AddressInfo).port;
    await new Promise((r) => probe.close(r));
    appUrl = `http://localhost:${port}`;
    const config = configFromEnv({ NODE_ENV: "development", PORT: String(port), DATABASE_URL: "pglite://memory", AGENTS_DATABASE_URL: "pglite://memory" });
    const { app, auth, close } = await createApp(config, { logger: silentLogger });
    closeAuth = close;
    countUsers = async (handle) =>
      (await auth.db.query<{ n: number }>("SELECT count(*)::int AS n FROM user_references WHERE source_identifier = $1", [handle])).rows[0]!.n;
    server = await new Promise<Running>((resolve) => {
      const s = app.listen(port, "127.0.0.1", () => resolve({ url: appUrl, close: () => new Promise((d) => { s.closeAllConnections(); s.close(() => d()); }) }));
    });
  });
  afterAll(async () => {
    await server?.close();
    await closeAuth?.();
  });

  it("reads its configuration from the environment with working defaults", () => {
    expect(configFromEnv({})).toEqual({
      port: 3000,
      host: "localhost",
      publicUrl: "http://localhost:3000",
      databaseUrl: "pglite://.data/erebus",
      agentsDatabaseUrl: "pglite://.data/agents",
      development: false,
      production: true,
      ethereum: { chains: [1], rpc: {} },
      solana: { chains: ["mainnet"] },
      apiKeyPepper: undefined,
      appName: "Erebus example",
      smtp: undefined,
      oauth: {},
    });
    expect(configFromEnv({ GITHUB_CLIENT_ID: "id", GITHUB_CLIENT_SECRET: "secret" }).oauth).toEqual({ github: { clientId: "id", clientSecret: "secret" } });
    expect(() => configFromEnv({ GOOGLE_CLIENT_ID: "id" })).toThrow(/GOOGLE_CLIENT_SECRET/);
    expect(configFromEnv({ SMTP_URL: "smtp://mail.example:587" }).smtp).toEqual({ url: "smtp://mail.example:587", from: "Erebus example <login@localhost>" });
    expect(configFromEnv({ NODE_ENV: "development" })).toMatchObject({ development: true, production: false });
    expect(configFromEnv({ EREBUS_DEV: "1" })).toMatchObject({ development: true, production: false });
    expect(configFromEnv({ NODE_ENV: "development", EREBUS_DEV: "0" })).toMatchObject({ development: false, production: true });
    expect(() => configFromEnv({ NODE_ENV: "production", EREBUS_DEV: "1" })).toThrow(/EREBUS_DEV/);
    expect(() => configFromEnv({ EREBUS_DEV: "yes" })).toThrow(/EREBUS_DEV/);
    expect(configFromEnv({ ETHEREUM_CHAINS: "1,8453", ETHEREUM_RPC_URLS: "8453=https://rpc.example/base?k=a=b" }).ethereum).toEqual({ chains: [1, 8453], rpc: { 8453: "https://rpc.example/base?k=a=b" } });
    expect(() => configFromEnv({ ETHEREUM_CHAINS: "mainnet" })).toThrow(/ETHEREUM_CHAINS/);
    expect(configFromEnv({ PORT: "8080", PUBLIC_URL: "https://app.example/" }).publicUrl).toBe("https://app.example");
    expect(() => configFromEnv({ PORT: "eighty" })).toThrow(/PORT/);
  });

  it("guards /api/trade with the trade scope", async () => {
    expect((await fetch(`${appUrl}/api/trade`, { method: "POST" })).status).toBe(401);
  });

  it("finding 12: /api/trade is an action, so it is POST only and a cross-site POST with the session cookie is refused", async () => {
    const signIn = await fetch(`${appUrl}/auth/test/sign-in`, {
      method: "POST",
      headers: { "content-type": "application/json", origin: appUrl },
      body: JSON.stringify({ handle: "trader" }),
    });
    const cookie = signIn.headers.getSetCookie().map((c) => c.split(";")[0]).join("; ");
    expect(cookie).toContain("erebus_session=");
    // A link or an <img> on another site makes a GET that carries the cookie and is not CSRF-checked: it must not trade.
    const get = await fetch(`${appUrl}/api/trade`, { headers: { cookie, "sec-fetch-site": "cross-site" } });
    expect([get.status, ((await get.json()) as { code: string }).code]).toEqual([404, "ERR_NOT_FOUND"]);
    const crossSite = await fetch(`${appUrl}/api/trade`, { method: "POST", headers: { cookie, origin: "https://evil.example", "sec-fetch-site": "cross-site" } });
    expect([crossSite.status, ((await crossSite.json()) as { code: string }).code]).toEqual([403, "ERR_ORIGIN_FORBIDDEN"]);
    const sameOrigin = await fetch(`${appUrl}/api/trade`, { method: "POST", headers: { cookie, origin: appUrl, "sec-fetch-site": "same-origin" } });
    expect(sameOrigin.status).toBe(200);
    expect(await sameOrigin.json()).toMatchObject({ ok: true, via: "session" });
  });

  it("finding 2: development helpers are off unless asked for (NODE_ENV unset, prod, staging)", async () => {
    for (const nodeEnv of [undefined, "prod", "staging"]) {
      const env = { DATABASE_URL: "pglite://memory", AGENTS_DATABASE_URL: "pglite://memory", ...(nodeEnv ? { NODE_ENV: nodeEnv } : {}) };
      // No SMTP server: outside development there is no development mailbox to fall back on.
      await expect(createApp(configFromEnv(env), { logger: silentLogger }), `NODE_ENV=${nodeEnv}`).rejects.toThrow(/SMTP_URL/);
      const { app, close } = await createApp(configFromEnv({ ...env, SMTP_URL: "smtp://127.0.0.1:9" }), { logger: silentLogger });
      const running = await listen(app);
      try {
        const label = `NODE_ENV=${nodeEnv}`;
        const page = await (await fetch(`${running.url}/`)).text();
        expect(page, label).not.toContain("dev-sign-in");
        expect(page, label).not.toContain("/dev/mailbox");
        for (const path of ["/dev/mailbox.json", "/dev/mailbox", "/dev/agents-cache.json", "/dev/agents-cache", "/dev/oidc/.well-known/openid-configuration"]) {
          expect((await fetch(`${running.url}${path}`)).status, `${label} ${path}`).toBe(404);
        }
        const signIn = await fetch(`${running.url}/auth/test/sign-in`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ handle: "intruder" }) });
        expect(signIn.status, label).toBe(404);
        // X-Test-Key (sign in as any handle that signed in before) is not an authenticator here.
        const me = await fetch(`${running.url}/api/me`, { headers: { "x-test-key": "intruder" } });
        expect(me.status, label).toBe(401);
        expect(((await me.json()) as { code: string }).code, label).not.toBe("ERR_TEST_KEY_INVALID");
        // No OAuth client configured and no development IdP: no OAuth provider at all.
        expect((await fetch(`${running.url}/auth/oauth`)).status, label).toBe(404);
      } finally {
        await running.close();
        await close();
      }
    }
  }, 240_000);

  it("finding 2: development helpers refuse to start on a non-loopback address or a public PUBLIC_URL", async () => {
    const base = { DATABASE_URL: "pglite://memory", SYNC: "off" };
    for (const env of [
      { NODE_ENV: "development", HOST: "0.0.0.0" },
      { NODE_ENV: "development", HOST: "::" },
      { NODE_ENV: "development", HOST: "192.0.2.10" },
      { NODE_ENV: "development", HOST: "app.example" },
      { EREBUS_DEV: "1", HOST: "0.0.0.0", NODE_ENV: "staging" },
    ]) {
      await expect(createApp(configFromEnv({ ...base, ...env }), { logger: silentLogger }), JSON.stringify(env)).rejects.toThrow(/HOST/);
    }
    for (const env of [
      { NODE_ENV: "development", PUBLIC_URL: "https://app.example" },
      { NODE_ENV: "development", PUBLIC_URL: "http://192.0.2.10:3000" },
      { EREBUS_DEV: "1", PUBLIC_URL: "http://localhost.app.example:3000" },
    ]) {
      await expect(createApp(configFromEnv({ ...base, ...env }), { logger: silentLogger }), JSON.stringify(env)).rejects.toThrow(/PUBLIC_URL/);
    }
    // Loopback in every spelling is fine (the app in beforeAll starts in development on localhost).
    for (const env of [{ HOST: "127.0.0.1", PUBLIC_URL: "http://127.0.0.1:3000" }, { HOST: "::1", PUBLIC_URL: "http://[::1]:3000" }, { HOST: "localhost" }, { HOST: "127.0.0.2" }]) {
      expect(() => assertSafeToServe(configFromEnv({ ...base, NODE_ENV: "development", ...env })), JSON.stringify(env)).not.toThrow();
    }
  });

  it("finding 2: the server prints one clear line and exits when development helpers would be exposed", async () => {
    const server = fileURLToPath(new URL("./server.ts", import.meta.url));
    const env = { PATH: process.env.PATH, NODE_ENV: "development", HOST: "0.0.0.0", PORT: "0", DATABASE_URL: "pglite://memory", SYNC: "off" };
    const result = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
      execFile(process.execPath, ["--conditions=erebus-source", "--import", "tsx", server], { env, timeout: 30_000 }, (error, _stdout, stderr) =>
        resolve({ code: error ? ((error as { code?: number }).code ?? null) : 0, stderr }),
      );
    });
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/HOST=0\.0\.0\.0/);
    expect(result.stderr).not.toMatch(/\n\s+at /); // a message, not a stack trace
    // `npm start` asks for the development helpers (unless NODE_ENV is set to something else).
    const manifest = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as { scripts: { start: string } };
    expect(manifest.scripts.start).toMatch(/NODE_ENV=\$\{NODE_ENV:-development\}/);
  });

  it("finding 14: a second app on the same embedded database exits with one line saying what to do, not a stack", async () => {
    const { connectDatabase } = await import("@erebus/core");
    const { mkdtempSync, rmSync } = await import("node:fs");
    const { tmpdir } = await import("node:os");
    const { join } = await import("node:path");
    const dir = mkdtempSync(join(tmpdir(), "erebus-example-lock-"));
    const holder = await connectDatabase(`pglite://${dir}`); // the running app
    try {
      const server = fileURLToPath(new URL("./server.ts", import.meta.url));
      const env = { PATH: process.env.PATH, NODE_ENV: "development", HOST: "127.0.0.1", PORT: "0", DATABASE_URL: `pglite://${dir}`, SYNC: "off" };
      const result = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
        execFile(process.execPath, ["--conditions=erebus-source", "--import", "tsx", server], { env, timeout: 60_000 }, (error, _stdout, stderr) =>
          resolve({ code: error ? ((error as { code?: number }).code ?? null) : 0, stderr }),
        );
      });
      expect(result.code).toBe(1);
      expect(result.stderr).toMatch(/ERR_DATABASE_UNAVAILABLE/);
      expect(result.stderr).not.toMatch(/\n\s+at /);
      // Core's structured log line, then the app's one line for the person at the terminal.
      expect(result.stderr).toMatch(/^Erebus example app: ERR_DATABASE_UNAVAILABLE: the embedded database .* is in use by process \d+/m);
    } finally {
      await holder.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("keeps the agents database in sync in-process and shows it at /dev/agents-cache", async () => {
    const signIn = await fetch(`${appUrl}/auth/test/sign-in`, {
      method: "POST",
      headers: { "content-type": "application/json", "erebus-session-transport": "bearer" },
      body: JSON.stringify({ handle: "synced_user" }),
    });
    const { user } = (await signIn.json()) as { user: { id: string } };
    await expect
      .poll(async () => ((await (await fetch(`${appUrl}/dev/agents-cache.json`)).json()) as { rows: { id: string }[] }).rows.some((r) => r.id === user.id), { timeout: 10_000, interval: 100 })
      .toBe(true);
    const html = await (await fetch(`${appUrl}/dev/agents-cache`)).text();
    expect(html).toContain("synced_user");
  });

  it("serves /api/me to signed-in callers only", async () => {
    const anonymous = await fetch(`${appUrl}/api/me`);
    expect(anonymous.status).toBe(401);
    const signIn = await fetch(`${appUrl}/auth/test/sign-in`, {
      method: "POST",
      headers: { "content-type": "application/json", "erebus-session-transport": "bearer" },
      body: JSON.stringify({ handle: "api_user" }),
    });
    const { session } = (await signIn.json()) as { session: { token: string } };
    const me = await fetch(`${appUrl}/api/me`, { headers: { authorization: `Bearer ${session.token}` } });
    expect(me.status).toBe(200);
    expect(await me.json()).toMatchObject({ via: "session", user: { source_identifier: "api_user" } });
  });

  it("a Passport strategy (passport-local, @erebus/passport) signs the demo account in; a wrong password is 401", async () => {
    const post = (password: string) =>
      fetch(`${appUrl}/auth/passport/local`, { method: "POST", headers: { origin: appUrl, "content-type": "application/json" }, body: JSON.stringify({ username: "demo", password }) });
    const ok = await post("demo");
    expect(ok.status).toBe(200);
    expect(((await ok.json()) as { user: { network: string; source_identifier: string } }).user).toMatchObject({ network: "demo", source_identifier: "demo" });
    const wrong = await post("nope");
    expect(wrong.status).toBe(401);
    expect(((await wrong.json()) as { code: string }).code).toBe("ERR_PASSPORT_CREDENTIALS_INVALID");
  });

  it("Telegram: mounted with TELEGRAM_BOT_TOKEN (the official widget's page, no stand-in); in production without one, not at all", async () => {
    expect(() => configFromEnv({ TELEGRAM_BOT_TOKEN: "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw" })).toThrow(/TELEGRAM_BOT_USERNAME/);
    expect(() => configFromEnv({ TELEGRAM_BOT_TOKEN: "not a token", TELEGRAM_BOT_USERNAME: "ExampleBot" })).toThrow(/TELEGRAM_BOT_TOKEN/);
    const base = { DATABASE_URL: "pglite://memory", SYNC: "off", NODE_ENV: "production", SMTP_URL: "smtp://127.0.0.1:9" };
    for (const env of [{ ...base, TELEGRAM_BOT_TOKEN: "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw", TELEGRAM_BOT_USERNAME: "ExampleLoginBot" }, base]) {
      const configured = "TELEGRAM_BOT_TOKEN" in env;
      const { app, close } = await createApp(configFromEnv(env), { logger: silentLogger });
      const running = await listen(app);
      try {
        const home = await (await fetch(`${running.url}/`)).text();
        expect(home.includes('href="/telegram"'), `configured: ${configured}`).toBe(configured);
        expect(home).not.toContain("/dev/telegram");
        expect((await fetch(`${running.url}/dev/telegram`)).status).toBe(404);
        expect((await fetch(`${running.url}/dev/telegram/sign?user=100001`)).status).toBe(404);
        const widget = await fetch(`${running.url}/telegram`);
        expect(widget.status).toBe(configured ? 200 : 404);
        if (configured) {
          expect(await widget.text()).toContain('data-telegram-login="ExampleLoginBot"');
          expect(widget.headers.get("content-security-policy")).toContain("script-src https://telegram.org");
        }
        // The provider's route: a login signed by the development bot is refused where a real bot is configured.
        const verify = await fetch(`${running.url}/auth/telegram/verify`, { method: "POST", headers: { "content-type": "application/json" }, body: "{}" });
        expect(verify.status).toBe(configured ? 400 : 404);
      } finally {
        await running.close();
        await close();
      }
    }
  }, 120_000);

  it("hides the development sign-in in production", async () => {
    const { app, close } = await createApp(configFromEnv({ DATABASE_URL: "pglite://memory", SYNC: "off", NODE_ENV: "production", SMTP_URL: "smtp://127.0.0.1:9" }), { logger: silentLogger });
    const running = await listen(app);
    try {
      expect(await (await fetch(`${running.url}/`)).text()).not.toContain("dev-sign-in");
      expect((await fetch(`${running.url}/dev/mailbox.json`)).status).toBe(404);
      expect((await fetch(`${running.url}/auth/test/sign-in`, { method: "POST", headers: { "content-type": "application/json" }, body: "{}" })).status).toBe(404);
      expect((await fetch(`${running.url}/auth/passport/local`, { method: "POST", headers: { "content-type": "application/json" }, body: "{}" })).status).toBe(404);
    } finally {
      await running.close();
      await close();
    }
  });

  describe.skipIf(!chromium)("in a real Chromium", () => {
    let browser: Browser;
    beforeAll(async () => {
      browser = await launchChromium(chromium!);
    });
    afterAll(async () => browser?.close());

    it("signs in, keeps the session across reloads in an HttpOnly cookie, and signs out", async () => {
      const context = await browser.newContext();
      const page = await context.newPage();
      await page.goto(appUrl);
      await expect.poll(() => page.textContent("#status")).toBe("Not signed in.");
      await page.fill("#handle", "alice");
      await page.click("#dev-sign-in button[type=submit]");
      await expect.poll(() => page.textContent("#status")).toBe("Signed in as test:alice (external)");
      await page.reload();
      await expect.poll(() => page.textContent("#status")).toBe("Signed in as test:alice (external)");
      // The page's script cannot read the session token.
      expect(await page.evaluate(() => document.cookie)).toBe("");
      const cookies = await context.cookies();
      expect(cookies.find((c) => c.name === "erebus_session")).toMatchObject({ httpOnly: true, sameSite: "Lax" });
      await page.click("#sign-out");
      await expect.poll(() => page.textContent("#status")).toBe("Not signed in.");
      await page.fill("#handle", "Bad Handle!");
      await page.$eval("#handle", (el) => el.removeAttribute("pattern"));
      await page.click("#dev-sign-in button[type=submit]");
      await expect.poll(() => page.textContent("#error")).toContain("ERR_BODY_INVALID");
      await context.close();
    });

    it("signs in with Ethereum through an EIP-1193 wallet (window.ethereum) signing with a real key", async () => {
      const wallet = ethereumWallet();
      const context = await browser.newContext();
      // The injected provider forwards personal_sign to a viem account held by the test.
      await context.exposeFunction("__erebusPersonalSign", (hex: string) => wallet.sign(Buffer.from(hex.slice(2), "hex").toString("utf8")));
      await context.addInitScript(({ address }) => {
        (window as unknown as { ethereum: unknown }).ethereum = {
          isMetaMask: true,
          async request({ method, params }: { method: string; params?: unknown[] }) {
            if (method === "eth_requestAccounts") return [address.toLowerCase()];
            if (method === "eth_chainId") return "0x1";
            if (method === "personal_sign") return (window as unknown as { __erebusPersonalSign(h: unknown): Promise<string> }).__erebusPersonalSign(params![0]);
            throw new Error(`unsupported ${method}`);
          },
        };
      }, { address: wallet.address });
      const page = await context.newPage();
      await page.goto(appUrl);
      await page.click("#siwe");
      await expect.poll(() => page.textContent("#status")).toBe(`Signed in as ethereum:${wallet.address} (external)`);
      expect(await page.textContent("#user")).toContain('"provider": "metamask"');
      await context.close();
    });

    it("signs in with Solana through a wallet's signIn (window.phantom.solana) with a real Ed25519 key", async () => {
      const wallet = await solanaWallet();
      const context = await browser.newContext();
      await context.exposeFunction("__erebusSolanaSignIn", async (input: Record<string, string>) => {
        const { message, signature } = await wallet.signIn(input);
        return { address: wallet.address, signedMessage: [...Buffer.from(message, "utf8")], signature: [...bs58.decode(signature)] };
      });
      await context.addInitScript(() => {
        const bridge = window as unknown as { __erebusSolanaSignIn(i: unknown): Promise<{ address: string; signedMessage: number[]; signature: number[] }> };
        (window as unknown as { phantom: unknown }).phantom = {
          solana: {
            isPhantom: true,
            async signIn(input: unknown) {
              const out = await bridge.__erebusSolanaSignIn(input);
              return { address: out.address, signedMessage: new Uint8Array(out.signedMessage), signature: new Uint8Array(out.signature) };
            },
          },
        };
      });
      const page = await context.newPage();
      await page.goto(appUrl);
      await page.click("#siws");
      await expect.poll(() => page.textContent("#status")).toBe(`Signed in as solana:${wallet.address} (external)`);
      expect(await page.textContent("#user")).toContain('"provider": "phantom"');
      await context.close();
    });

    it("finding 12: manages API keys from the page: create (shown once, with curl lines: GET /api/me, POST /api/trade), use, rotate with 1 h grace or now, revoke", async () => {
      const page = await browser.newPage();
      await page.goto(appUrl);
      await page.fill("#handle", "keyholder");
      await page.click("#dev-sign-in button[type=submit]");
      await expect.poll(() => page.isVisible("#api-keys")).toBe(true);
      await page.fill("#key-name", "trading bot");
      await page.check("input[name=scope][value=trade]");
      await page.click("#new-key button[type=submit]");
      await expect.poll(() => page.isVisible("#new-key-shown")).toBe(true);
      const key = (await page.textContent("#new-key-value"))!;
      expect(key).toMatch(/^erb_/);
      expect(await page.textContent("#new-key-curl")).toBe(`curl -H "X-API-Key: ${key}" ${appUrl}/api/me\ncurl -X POST -H "X-API-Key: ${key}" ${appUrl}/api/trade`);
      expect(await page.textContent("#key-list tbody")).toContain("trading bot");
      expect(await page.textContent("#key-list tbody")).not.toContain(key); // the listing shows only …last4

      // The key works as a program would use it, with its scopes.
      const me = await fetch(`${appUrl}/api/me`, { headers: { "x-api-key": key } });
      expect((await me.json()).via).toBe("api_key");
      expect((await fetch(`${appUrl}/api/trade`, { method: "POST", headers: { "x-api-key": key } })).status).toBe(200);

      // Rotate with grace: the old key keeps working (for an hour) while programs switch over.
      await page.click("#key-list button.rotate-grace");
      await expect.poll(async () => page.textContent("#new-key-value")).not.toBe(key);
      const graced = (await page.textContent("#new-key-value"))!;
      expect(await page.textContent("#new-key-note")).toMatch(/old key keeps working until .+ \(1 hour\)/);
      expect((await fetch(`${appUrl}/api/me`, { headers: { "x-api-key": graced } })).status).toBe(200);
      expect((await fetch(`${appUrl}/api/me`, { headers: { "x-api-key": key } })).status).toBe(200);

      // Rotate now (a leaked key): every earlier secret stops at once.
      await page.click("#key-list button.rotate-now");
      await expect.poll(async () => page.textContent("#new-key-value")).not.toBe(graced);
      const rotated = (await page.textContent("#new-key-value"))!;
      expect(await page.textContent("#new-key-note")).toBe("The old key stopped working.");
      expect((await fetch(`${appUrl}/api/me`, { headers: { "x-api-key": rotated } })).status).toBe(200);
      expect((await fetch(`${appUrl}/api/me`, { headers: { "x-api-key": graced } })).status).toBe(401);
      expect((await fetch(`${appUrl}/api/me`, { headers: { "x-api-key": key } })).status).toBe(401);

      await page.click("#key-list button.revoke");
      await expect.poll(() => page.textContent("#key-list tbody")).toContain("revoked");
      const after = await fetch(`${appUrl}/api/me`, { headers: { "x-api-key": rotated } });
      expect([after.status, (await after.json()).code]).toEqual([401, "ERR_APIKEY_REVOKED"]);
      await page.close();
    });

    it("signs in with an email link: development mailbox → confirm page → button", async () => {
      const page = await browser.newPage();
      await page.goto(appUrl);
      await page.fill("#email", "Dana@Example.com");
      await page.click("#email-start button[type=submit]");
      await expect.poll(() => page.isVisible("#email-status")).toBe(true);
      const mails = (await (await fetch(`${appUrl}/dev/mailbox.json`)).json()) as { to: string; text: string }[];
      const mail = mails.find((m) => m.to === "dana@example.com")!;
      const link = /http:\/\/localhost:\d+\/auth\/email\/verify\?token=[\w-]+/.exec(mail.text)![0];
      expect(link.startsWith(appUrl)).toBe(true);
      await page.goto(link);
      expect(await page.textContent("h1")).toContain("Sign in to");
      await page.click("button[type=submit]");
      await expect.poll(() => page.textContent("#status")).toBe("Signed in as email:dana@example.com (external)");
      expect(page.url()).toBe(`${appUrl}/`);
      await page.close();
    });

    it("signs in with an email code typed into the page", async () => {
      const page = await browser.newPage();
      await page.goto(appUrl);
      await page.fill("#email", "eve@example.com");
      await page.selectOption("#email-mode", "code");
      await page.click("#email-start button[type=submit]");
      await expect.poll(() => page.isVisible("#email-code")).toBe(true);
      const mails = (await (await fetch(`${appUrl}/dev/mailbox.json`)).json()) as { to: string; subject: string }[];
      const code = /\d{6}/.exec(mails.find((m) => m.to === "eve@example.com")!.subject)![0];
      await page.fill("#code", code);
      await page.click("#email-code button[type=submit]");
      await expect.poll(() => page.textContent("#status")).toBe("Signed in as email:eve@example.com (external)");
      await page.goto(`${appUrl}/dev/mailbox`);
      expect(await page.textContent("body")).toContain("is your Erebus example sign-in code");
      await page.close();
    });

    it("signs in with Telegram through the development stand-in widget: button → /dev/telegram → confirm page → button; the login works once", async () => {
      const page = await browser.newPage();
      await page.goto(appUrl);
      await page.click("#telegram");
      await page.waitForSelector("#telegram-user");
      await page.selectOption("#telegram-user", "100002");
      await page.click("#dev-telegram button[type=submit]");
      // The stand-in redirects like the widget's data-auth-url: the provider's confirm page, which signs nobody in by itself.
      await page.waitForURL((url) => url.pathname === "/auth/telegram/callback");
      const callbackUrl = page.url();
      expect(await page.textContent("body")).toContain("Grace Hopper");
      expect(await page.textContent("body")).toContain("@grace_dev");
      await page.click("button[type=submit]");
      await expect.poll(() => page.textContent("#status")).toBe("Signed in as telegram:100002 (external)");
      expect(page.url()).toBe(`${appUrl}/`);
      expect(await page.textContent("#user")).toContain('"type": "telegram"');
      // The same signed login again (the callback URL from the history): refused, it was used.
      const again = await page.goto(callbackUrl);
      expect(again!.status()).toBe(401);
      expect(await page.textContent("body")).toContain("ERR_TELEGRAM_AUTH_USED");
      await page.close();
    });

    it("signs in with OAuth through the built-in development IdP, with no setup", async () => {
      const page = await browser.newPage();
      await page.goto(appUrl);
      await page.click("a[data-provider=dev]");
      // node-oidc-provider's development login page, then its consent page.
      await page.waitForSelector("input[name=login]");
      await page.fill("input[name=login]", "frank");
      await page.fill("input[name=password]", "anything");
      await page.click("button[type=submit]");
      await page.waitForURL((url) => url.pathname.includes("/interaction/") || url.pathname === "/");
      if (new URL(page.url()).pathname !== "/") {
        await page.click("button[type=submit]");
      }
      await expect.poll(() => page.textContent("#status"), { timeout: 10_000 }).toBe("Signed in as oauth:dev:frank (external)");
      expect(await page.textContent("#user")).toContain('"email": "frank@dev-idp.localhost"');
      await page.close();
    });

    it("signs in with Solana through a Wallet Standard wallet (solana:signIn), found by the standard's events", async () => {
      const wallet = await solanaWallet();
      const context = await browser.newContext();
      await context.exposeFunction("__erebusStandardSignIn", async (input: Record<string, string>) => {
        const { message, signature } = await wallet.signIn(input);
        return { address: wallet.address, signedMessage: [...Buffer.from(message, "utf8")], signature: [...bs58.decode(signature)] };
      });
      // A wallet extension registering itself the Wallet Standard way (and answering app-ready).
      await context.addInitScript(() => {
        const bridge = window as unknown as { __erebusStandardSignIn(i: unknown): Promise<{ address: string; signedMessage: number[]; signature: number[] }> };
        const standardWallet = {
          version: "1.0.0",
          name: "Backpack",
          chains: ["solana:mainnet"],
          accounts: [],
          features: {
            "solana:signIn": {
              version: "1.0.0",
              async signIn(...inputs: unknown[]) {
                const out = await bridge.__erebusStandardSignIn(inputs[0]);
                return [{ account: { address: out.address }, signedMessage: new Uint8Array(out.signedMessage), signature: new Uint8Array(out.signature) }];
              },
            },
          },
        };
        const register = ({ register }: { register(w: unknown): void }) => register(standardWallet);
        window.addEventListener("wallet-standard:app-ready", (event) => register((event as CustomEvent).detail));
        window.dispatchEvent(new CustomEvent("wallet-standard:register-wallet", { detail: register }));
      });
      const page = await context.newPage();
      await page.goto(appUrl);
      await page.click("#siws");
      await expect.poll(() => page.textContent("#status")).toBe(`Signed in as solana:${wallet.address} (external)`);
      expect(await page.textContent("#user")).toContain('"provider": "backpack"');
      await context.close();
    });

    it("says so clearly when no wallet is installed", async () => {
      const page = await browser.newPage();
      await page.goto(appUrl);
      await page.click("#siwe");
      await expect.poll(() => page.textContent("#wallet-status")).toContain("No Ethereum wallet found");
      await page.click("#siws");
      await expect.poll(() => page.textContent("#wallet-status")).toContain("No Solana wallet found");
      await page.close();
    });

    it("runs the page on @erebus/client, loaded from the package's built modules", async () => {
      const page = await browser.newPage();
      const loaded: string[] = [];
      page.on("response", (response) => {
        if (response.url().includes("/vendor/erebus-client/")) loaded.push(`${response.status()} ${new URL(response.url()).pathname}`);
      });
      const errors: string[] = [];
      page.on("pageerror", (error) => errors.push(String(error)));
      await page.goto(appUrl);
      await expect.poll(() => page.textContent("#status")).toBe("Not signed in.");
      expect(loaded).toEqual(expect.arrayContaining(["200 /vendor/erebus-client/index.js", "200 /vendor/erebus-client/client.js", "200 /vendor/erebus-client/wallet-standard.js"]));
      expect(errors).toEqual([]);
      await page.close();
    });

    it("serves an API reference of GET /auth/openapi.json in development (Scalar, loaded from the app, not a CDN)", async () => {
      const page = await browser.newPage();
      const offsite: string[] = [];
      page.on("request", (request) => {
        const url = new URL(request.url());
        if (url.origin !== new URL(appUrl).origin && url.protocol.startsWith("http")) offsite.push(url.origin);
      });
      await page.goto(`${appUrl}/dev/api`);
      await page.getByText("Who is signed in").first().waitFor({ timeout: 30_000 });
      // Each provider's routes under its own tag, with the summaries written next to the routes.
      for (const [tag, summary] of [["wallet", "Sign-In with Ethereum: verify the signed message and start a session"], ["apikey", "Create an API key"]] as const) {
        await page.getByText(tag, { exact: true }).first().click();
        await page.getByText(summary).first().waitFor();
      }
      expect(offsite.filter((origin) => origin.includes("jsdelivr"))).toEqual([]);
      await page.close();
    });

    it("refuses a sign-in forged by another site's page (login CSRF)", async () => {
      // An attacker's page on another origin posts to the app without CORS (a "simple" request).
      const evil = createServer((_req, res) => {
        res.setHeader("content-type", "text/html");
        res.end(`<script>
          fetch(${JSON.stringify(`${appUrl}/auth/test/sign-in`)}, { method: "POST", mode: "no-cors", credentials: "include",
            headers: { "content-type": "text/plain" }, body: JSON.stringify({ handle: "csrf_victim" }) })
            .finally(() => { document.title = "sent"; });
        </script>`);
      });
      await new Promise<void>((r) => evil.listen(0, "127.0.0.1", () => r()));
      try {
        const page = await browser.newPage();
        await page.goto(`http://127.0.0.1:${(evil.address() as AddressInfo).port}/`);
        await expect.poll(() => page.title()).toBe("sent");
        await page.close();
        expect(await countUsers("csrf_victim")).toBe(0);
      } finally {
        await new Promise((r) => evil.close(r));
      }
    });
  });
});
