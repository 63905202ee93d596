import { createServer, type Server } from "node:https";
import type { AddressInfo } from "node:net";
import express from "express";
import type { Browser, BrowserContext, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createAuth, silentLogger, type Database } from "@erebus/core";
import { chromiumPath } from "../../../test/browser.js";
import { engines } from "../../../test/engines.js";
import { selfSignedCertificate, startOpenIdProvider, type TestOp } from "../../../test/oidc.js";
import { oauthProvider } from "./oauth-provider.js";
import { oidc } from "./presets.js";

const chromium = chromiumPath();
const tls = chromium ? selfSignedCertificate(["app.erebus.test", "evil.erebus.test"]) : undefined;

const listenTls = (server: Server) => new Promise<number>((resolve) => server.listen(0, "127.0.0.1", () => resolve((server.address() as AddressInfo).port)));
const closeTls = (server: Server | undefined) => new Promise<void>((resolve) => (server ? (server.closeAllConnections(), server.close(() => resolve())) : resolve()));

/**
 * Finding 8 as it happens in a browser: the app on https://app.erebus.test, an attacker who controls
 * a sibling, https://evil.erebus.test, and a real Chromium whose cookie rules decide what the app
 * receives. Only PGlite: the server logic is covered on both engines in oauth.test.ts.
 */
describe.skipIf(!chromium || !tls)("finding 8 in Chromium: a binding planted from a sibling subdomain", () => {
  let op: TestOp;
  let db: Database;
  let app: Server;
  let evil: Server;
  let origin: string;
  let evilOrigin: string;
  let browser: Browser;
  const held: string[] = [];

  beforeAll(async () => {
    app = createServer(tls!);
    const port = await listenTls(app);
    origin = `https://app.erebus.test:${port}`;
    op = await startOpenIdProvider([`${origin}/auth/oauth/dev/callback`]);
    db = await engines()[0]!.create();
    const auth = createAuth({
      database: db,
      baseURL: origin,
      providers: [oauthProvider({ providers: { dev: oidc({ issuer: op.issuer, clientId: op.clientId, clientSecret: op.clientSecret }) } })],
      migrate: true,
      logger: silentLogger,
    });
    await auth.ready;
    const site = express();
    // A browser context that sends `x-hold-callback` has its callbacks recorded here, not used:
    // how the attacker keeps a live callback URL to hand to the victim.
    site.use((req, res, next) => {
      if (!req.get("x-hold-callback") || req.path !== "/auth/oauth/dev/callback") return next();
      held.push(`${origin}${req.originalUrl}`);
      res.status(204).end();
    });
    site.use("/auth", auth.router);
    site.get("/", (_req, res) => res.type("text/plain").send("home"));
    app.on("request", site);

    // The sibling sets the binding every way a browser might let it reach app.erebus.test.
    evil = createServer(tls!, (req, res) => {
      const url = new URL(req.url!, "https://x");
      const value = url.searchParams.get("v");
      // (Not on /favicon.ico and the like: those would overwrite the planted value with nothing.)
      if (url.pathname !== "/plant" || !value) return res.end();
      res.setHeader("set-cookie", [
        `erebus_bind=${value}; Domain=erebus.test; Path=/; Secure; SameSite=Lax`,
        `erebus_bind=${value}; Domain=erebus.test; Path=/auth/oauth; Secure; SameSite=Lax`,
        `__Host-erebus_bind=${value}; Domain=erebus.test; Path=/; Secure; SameSite=Lax`,
      ]);
      res.end("planted");
    });
    evilOrigin = `https://evil.erebus.test:${await listenTls(evil)}`;

    const { chromium: launcher } = await import("playwright-core");
    browser = await launcher.launch({
      executablePath: chromium!,
      args: [
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
        "--host-resolver-rules=MAP app.erebus.test 127.0.0.1, MAP evil.erebus.test 127.0.0.1",
      ],
    });
  }, 60_000);
  afterAll(async () => {
    await browser?.close();
    await closeTls(evil);
    await closeTls(app);
    await op?.close();
    await db?.close();
  });

  const newContext = () => browser.newContext({ ignoreHTTPSErrors: true, extraHTTPHeaders: { "x-hold-callback": "1" } });
  const release = (context: BrowserContext) => context.setExtraHTTPHeaders({});
  /** Signs in at the OP in `page` (whose context holds callbacks) and returns the callback URL it was sent to. */
  async function callbackUrl(page: Page, login: string): Promise<string> {
    const before = held.length;
    // (Ends in an aborted navigation when the OP remembers the login and the callback is held at once.)
    await page.goto(`${origin}/auth/oauth/dev`).catch(() => undefined);
    if (await page.isVisible("input[name=login]")) {
      await page.fill("input[name=login]", login);
      await page.fill("input[name=password]", "any");
      await page.click("button[type=submit]");
    }
    for (let step = 0; step < 50 && held.length === before; step++) {
      // node-oidc-provider's consent page, when it shows one.
      if (await page.isVisible("button[type=submit]").catch(() => false)) await page.click("button[type=submit]").catch(() => undefined);
      await page.waitForTimeout(100);
    }
    expect(held.length).toBe(before + 1);
    return held.at(-1)!;
  }
  const errorAfter = async (page: Page, url: string) => {
    await page.goto(url);
    return new URL(page.url()).searchParams.get("error");
  };
  const sessionStatus = async (page: Page) => (await page.goto(`${origin}/auth/session`))!.status();

  it("finding 8: the victim's Chromium never hands the app the attacker's binding, before or after a new start", async () => {
    const attacker = await newContext();
    const attackerPage = await attacker.newPage();
    const callback = await callbackUrl(attackerPage, "mallory");
    const planted = (await attacker.cookies(origin)).find((c) => c.name === "__Host-erebus_bind" || c.name === "erebus_bind")!.value;

    const victim = await newContext();
    await release(victim);
    const page = await victim.newPage();
    await page.goto(`${evilOrigin}/plant?v=${encodeURIComponent(planted)}`);
    // Chromium kept the Domain cookies and refused the `__Host-` one with a Domain.
    const names = (await victim.cookies(origin)).map((c) => c.name);
    expect(names).toContain("erebus_bind");
    expect(names).not.toContain("__Host-erebus_bind");
    expect((await victim.cookies(origin)).filter((c) => c.name === "erebus_bind").map((c) => c.value)).toContain(planted);

    expect(await errorAfter(page, callback)).toBe("ERR_OAUTH_BROWSER_MISMATCH");
    await page.goto(`${origin}/auth/oauth/dev`);
    expect((await victim.cookies(origin)).find((c) => c.name === "__Host-erebus_bind")?.value).not.toContain(planted);
    expect(await errorAfter(page, callback)).toBe("ERR_OAUTH_BROWSER_MISMATCH");
    expect(await sessionStatus(page)).toBe(401);

    // Control: in the attacker's own browser the same callback signs in, so it was a live one.
    await release(attacker);
    expect(await errorAfter(attackerPage, callback)).toBeNull();
    expect(await sessionStatus(attackerPage)).toBe(200);
    await victim.close();
    await attacker.close();
  }, 60_000);

  it("finding 8: sign-ins started in two tabs of one Chromium both finish", async () => {
    const context = await newContext();
    const [first, second] = [await context.newPage(), await context.newPage()];
    const one = await callbackUrl(first, "tabs");
    const two = await callbackUrl(second, "tabs");
    await release(context);
    expect(await errorAfter(second, two)).toBeNull();
    expect(await errorAfter(first, one)).toBeNull();
    expect(await sessionStatus(first)).toBe(200);
    await context.close();
  }, 60_000);
});
