import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Browser, BrowserContext, CDPSession, Page } from "playwright-core";
import { silentLogger } from "@erebus/core";
import { chromiumPath, launchChromium } from "../../../test/browser.js";
import type { Running } from "../../../test/http.js";
import { createApp } from "./app.js";
import { configFromEnv } from "./config.js";

const chromium = chromiumPath();

// Issue 15 in the example app: "Sign up / Sign in with a passkey", the email field's autofill
// (conditional UI) and "Add a passkey" for a signed-in person, in Chromium with the DevTools WebAuthn
// virtual authenticator (CTAP2, resident keys, user verification).
describe.skipIf(!chromium)("example app: passkeys in a real Chromium", () => {
  let server: Running;
  let appUrl: string;
  let closeApp: () => Promise<void>;
  let browser: Browser;

  beforeAll(async () => {
    // WebAuthn needs a host name: the app's PUBLIC_URL is http://localhost:<port> (RP id "localhost").
    const probe = createServer();
    await new Promise<void>((r) => probe.listen(0, "127.0.0.1", () => r()));
    const port = (probe.address() as AddressInfo).port;
    await new Promise((r) => probe.close(r));
    appUrl = `http://localhost:${port}`;
    const config = configFromEnv({ NODE_ENV: "development", PORT: String(port), DATABASE_URL: "pglite://memory", SYNC: "off" });
    const started = await createApp(config, { logger: silentLogger });
    closeApp = started.close;
    server = await new Promise<Running>((resolve) => {
      const s = started.app.listen(port, "127.0.0.1", () => resolve({ url: appUrl, close: () => new Promise((d) => { s.closeAllConnections(); s.close(() => d()); }) }));
    });
    browser = await launchChromium(chromium!);
  });
  afterAll(async () => {
    await browser?.close();
    await server?.close();
    await closeApp?.();
  });

  async function open(): Promise<{ context: BrowserContext; page: Page; cdp: CDPSession }> {
    const context = await browser.newContext();
    const page = await context.newPage();
    const cdp = await context.newCDPSession(page);
    await cdp.send("WebAuthn.enable", { enableUI: false });
    await cdp.send("WebAuthn.addVirtualAuthenticator", {
      options: { protocol: "ctap2", ctap2Version: "ctap2_1", transport: "internal", hasResidentKey: true, hasUserVerification: true, isUserVerified: true, automaticPresenceSimulation: true },
    });
    return { context, page, cdp };
  }
  const status = (page: Page) => page.textContent("#status");

  it("signs up with a passkey, signs out, signs in with it through the email field's autofill (conditional UI) and with the button", async () => {
    const { context, page } = await open();
    await page.goto(appUrl);
    await expect.poll(() => page.isVisible("#passkey-buttons")).toBe(true);
    expect(await page.textContent("#passkey-add")).toBe("Sign up with a passkey");
    await page.click("#passkey-add");
    await expect.poll(() => status(page)).toMatch(/^Signed in as passkey:[\w-]+ \(external\)$/);
    const identity = (await status(page))!;
    expect(await page.textContent("#user")).toContain('"type": "passkey"');

    await page.click("#sign-out");
    await expect.poll(() => status(page)).toBe("Not signed in.");
    // Reloaded, signed out: the page waits on the email field's autofill, which offers the passkey.
    // (Signed out above, so a sign-in now can only come from it; the virtual authenticator may answer
    // the autofill request as soon as the page makes it, before the field is focused.)
    await page.reload();
    await page.focus("#email");
    await expect.poll(() => status(page)).toBe(identity);

    await page.click("#sign-out");
    await expect.poll(() => status(page)).toBe("Not signed in.");
    await page.click("#passkey-sign-in");
    await expect.poll(() => status(page)).toBe(identity);
    expect(await page.isVisible("#error")).toBe(false);
    await context.close();
  });

  it("signed in another way, \"Add a passkey\" joins a new passkey to the person; signing in with it is that person", async () => {
    const { context, page } = await open();
    await page.goto(appUrl);
    await page.fill("#handle", "passkey_person");
    await page.click("#dev-sign-in button[type=submit]");
    await expect.poll(() => status(page)).toBe("Signed in as test:passkey_person (external)");
    const person = await page.textContent("#person-id");
    await expect.poll(() => page.textContent("#passkey-add")).toBe("Add a passkey");
    await page.click("#passkey-add");
    await expect.poll(() => page.$$eval("#identity-list li", (items) => items.map((li) => (li as HTMLElement).dataset.network).sort())).toEqual(["passkey", "test"]);
    expect(await page.textContent("#passkey-status")).toBe("Passkey added.");

    await page.click("#sign-out");
    await expect.poll(() => status(page)).toBe("Not signed in.");
    await page.click("#passkey-sign-in");
    await expect.poll(() => status(page)).toMatch(/^Signed in as passkey:/);
    expect(await page.textContent("#person-id")).toBe(person);
    await context.close();
  });
});
