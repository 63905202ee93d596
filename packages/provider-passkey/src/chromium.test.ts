import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import express from "express";
import type { Browser, BrowserContext, CDPSession, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createAuth, silentLogger, type Database, type ErebusAuth } from "@erebus/core";
import { engines, listen, testProvider, type Running } from "@erebus/core/testing";
import { chromiumPath, launchChromium } from "../../../test/browser.js";
import { PAGE } from "../test/page.js";
import { passkeyProvider } from "./index.js";

const chromium = chromiumPath();
const require = createRequire(import.meta.url);
const browserBundle = join(dirname(require.resolve("@simplewebauthn/browser")), "..", "dist", "bundle", "index.umd.min.js");

/** A DevTools virtual authenticator: CTAP2, resident keys, user verification, presence simulated. */
async function addAuthenticator(cdp: CDPSession): Promise<string> {
  const { authenticatorId } = await cdp.send("WebAuthn.addVirtualAuthenticator", {
    options: { protocol: "ctap2", ctap2Version: "ctap2_1", transport: "internal", hasResidentKey: true, hasUserVerification: true, isUserVerified: true, automaticPresenceSimulation: true },
  });
  return authenticatorId;
}
const base64url = (base64: string) => Buffer.from(base64, "base64").toString("base64url");

// PGlite only: the browser flows are the same on both engines, which the HTTP tests cover.
describe.skipIf(!chromium)("passkeys in a real Chromium with the DevTools WebAuthn virtual authenticator", () => {
  let browser: Browser;
  let db: Database;
  let auth: ErebusAuth;
  let server: Running;
  let url: string;
  let skew = 0;

  beforeAll(async () => {
    db = await engines({ postgresUrl: null })[0]!.create();
    const app = express();
    // WebAuthn needs a secure context and a host name: http://localhost is one, its RP id is "localhost".
    let handler: express.RequestHandler = (_req, _res, next) => next();
    app.use("/auth", (req, res, next) => handler(req, res, next));
    app.get("/vendor/simplewebauthn-browser.js", (_req, res) => res.sendFile(browserBundle));
    app.get("/", (_req, res) => res.type("html").send(PAGE));
    server = await listen(app);
    url = server.url.replace("127.0.0.1", "localhost");
    auth = createAuth({ database: db, baseURL: url, providers: [passkeyProvider({ rpName: "Passkey test" }), testProvider()], clock: () => new Date(Date.now() + skew), logger: silentLogger, migrate: true, rateLimit: { enabled: false }, production: false });
    await auth.ready;
    handler = auth.router;
    browser = await launchChromium(chromium!);
  });
  afterAll(async () => {
    await browser?.close();
    await server?.close();
    await db?.close();
  });

  async function open(): Promise<{ context: BrowserContext; page: Page; cdp: CDPSession }> {
    const context = await browser.newContext();
    const page = await context.newPage();
    const cdp = await context.newCDPSession(page);
    await cdp.send("WebAuthn.enable", { enableUI: false });
    return { context, page, cdp };
  }
  const status = (page: Page) => page.textContent("#status");

  it("signs up, signs out, signs in with the discoverable passkey (button), then through conditional UI on page load", async () => {
    const { context, page, cdp } = await open();
    const authenticatorId = await addAuthenticator(cdp);
    await page.goto(url);
    await expect.poll(() => status(page)).toBe("Not signed in.");
    await page.click("#sign-up");
    await expect.poll(() => status(page)).toMatch(/^Signed in as passkey:/);
    expect(await page.textContent("#error")).toBe("");
    // The authenticator holds one resident (discoverable) credential for RP id "localhost", and it is this identity.
    const { credentials } = await cdp.send("WebAuthn.getCredentials", { authenticatorId });
    expect(credentials).toHaveLength(1);
    expect(credentials[0]).toMatchObject({ isResidentCredential: true, rpId: "localhost" });
    const identity = `passkey:${base64url(credentials[0]!.credentialId)}`;
    expect(await status(page)).toContain(identity);
    expect(credentials[0]!.signCount).toBeGreaterThanOrEqual(0);

    await page.click("#sign-out");
    await expect.poll(() => status(page)).toBe("Not signed in.");
    await page.click("#sign-in");
    await expect.poll(() => status(page)).toContain(identity);
    expect(await page.textContent("#error")).toBe("");

    // Conditional UI: the page starts an autofill request on load; the virtual authenticator answers it.
    await page.click("#sign-out");
    await expect.poll(() => status(page)).toBe("Not signed in.");
    await page.reload();
    await expect.poll(() => page.textContent("#conditional")).not.toBe("");
    await page.focus("#username");
    await expect.poll(() => page.textContent("#conditional")).toBe("signed in");
    await expect.poll(() => status(page)).toContain(identity);
    await context.close();
  });

  it("adds a second passkey to the signed-in person (link), signs in with it as the same person, and deletes the first", async () => {
    const { context, page, cdp } = await open();
    const first = await addAuthenticator(cdp);
    await page.goto(url);
    await page.click("#sign-up");
    await expect.poll(() => status(page)).toMatch(/^Signed in as passkey:.*1 identities/);
    const [firstCredential] = (await cdp.send("WebAuthn.getCredentials", { authenticatorId: first })).credentials;
    const firstId = base64url(firstCredential!.credentialId);
    const person = (await status(page))!.match(/person ([0-9a-f-]+)/)![1];

    // A second device: another authenticator (the first would refuse: it holds an excluded credential).
    await cdp.send("WebAuthn.removeVirtualAuthenticator", { authenticatorId: first });
    const second = await addAuthenticator(cdp);
    await page.click("#add");
    await expect.poll(() => status(page)).toMatch(/2 identities/);
    expect(await page.textContent("#error")).toBe("");
    await expect.poll(() => page.locator("#passkeys li").count()).toBe(2);
    const [secondCredential] = (await cdp.send("WebAuthn.getCredentials", { authenticatorId: second })).credentials;
    const secondId = base64url(secondCredential!.credentialId);

    // Signed in with the second passkey: the same person.
    await page.click("#sign-out");
    await expect.poll(() => status(page)).toBe("Not signed in.");
    await page.click("#sign-in");
    await expect.poll(() => status(page)).toContain(`passkey:${secondId}`);
    expect(await status(page)).toContain(`person ${person}`);

    // Delete the first passkey (not the one this session signed in with).
    await page.click(`#passkeys li[data-id="${firstId}"] button.delete`);
    await expect.poll(() => page.locator("#passkeys li").count()).toBe(1);
    expect(await page.getAttribute("#passkeys li", "data-id")).toBe(secondId);
    expect(await page.textContent("#error")).toBe("");
    // The one this session signed in with is refused.
    await page.click(`#passkeys li[data-id="${secondId}"] button.delete`);
    await expect.poll(() => page.textContent("#error")).toContain("ERR_IDENTITY_IN_USE");
    await context.close();
  });

  it("adds a passkey to a person who signed in another way (step-up first when the session is stale), then signs in with it as that person", async () => {
    const { context, page, cdp } = await open();
    await addAuthenticator(cdp);
    await page.goto(url);
    await expect.poll(() => status(page)).toBe("Not signed in.");
    // Signed in with another identity (core's test provider stands in for a wallet here).
    expect(await page.evaluate(() => fetch("/auth/test/sign-in", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ handle: "wallet_person" }) }).then((r) => r.status))).toBe(200);
    await page.reload();
    await expect.poll(() => status(page)).toMatch(/^Signed in as test:wallet_person .*1 identities/);
    const person = (await status(page))!.match(/person ([0-9a-f-]+)/)![1];

    // An hour later the session is stale: adding a passkey asks for a fresh proof first.
    skew = 3_600_000;
    try {
      await page.click("#add");
      await expect.poll(() => page.textContent("#error")).toContain("ERR_REAUTH_REQUIRED");
      expect(await page.locator("#passkeys li").count()).toBe(0);
      // Proving the identity again (a new sign-in) makes the session fresh.
      expect(await page.evaluate(() => fetch("/auth/test/sign-in", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ handle: "wallet_person" }) }).then((r) => r.status))).toBe(200);
      await page.click("#add");
      await expect.poll(() => status(page)).toMatch(/2 identities/);
      expect(await page.textContent("#error")).toBe("");
    } finally {
      skew = 0;
    }
    await page.click("#sign-out");
    await expect.poll(() => status(page)).toBe("Not signed in.");
    await page.click("#sign-in");
    await expect.poll(() => status(page)).toMatch(new RegExp(`^Signed in as passkey:.*person ${person}, 2 identities`));
    await context.close();
  });
});
