import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Browser, Page } from "playwright-core";
import bs58 from "bs58";
import { silentLogger, type ErebusAuth } from "@erebus/core";
import { chromiumPath, launchChromium } from "../../../test/browser.js";
import type { Running } from "../../../test/http.js";
import { ethereumWallet, solanaWallet } from "../../../test/wallets.js";
import { createApp } from "./app.js";
import { configFromEnv } from "./config.js";

const chromium = chromiumPath();

// Issue 13 in the example app: the page links every way to sign in to one person (Chromium), and
// the attacks on linking, over HTTP against the app as it is mounted.
describe("example app: people (link, merge, unlink)", () => {
  let server: Running;
  let appUrl: string;
  let auth: ErebusAuth;
  let closeApp: () => Promise<void>;

  beforeAll(async () => {
    // Bind first to learn the port, so PUBLIC_URL (the origin for CSRF checks) is the real one.
    const probe = createServer();
    await new Promise<void>((r) => probe.listen(0, "127.0.0.1", () => r()));
    const port = (probe.address() as AddressInfo).port;
    await new Promise((r) => probe.close(r));
    appUrl = `http://localhost:${port}`;
    const config = configFromEnv({ NODE_ENV: "development", PORT: String(port), DATABASE_URL: "pglite://memory", SYNC: "off" });
    const started = await createApp(config, { logger: silentLogger });
    auth = started.auth;
    closeApp = started.close;
    server = await new Promise<Running>((resolve) => {
      const s = started.app.listen(port, "127.0.0.1", () => resolve({ url: appUrl, close: () => new Promise((d) => { s.closeAllConnections(); s.close(() => d()); }) }));
    });
  });
  afterAll(async () => {
    await server?.close();
    await closeApp?.();
  });

  // ---- HTTP helpers: a browser's cookie session, made by hand --------------------------------------

  type Answer = { status: number; body: Record<string, unknown> & { code?: string } };
  const call = async (method: string, path: string, options: { cookie?: string; body?: unknown; origin?: string | null; headers?: Record<string, string> } = {}): Promise<Answer> => {
    const origin = options.origin === undefined ? appUrl : options.origin;
    const res = await fetch(`${appUrl}${path}`, {
      method,
      redirect: "manual",
      headers: {
        ...(origin ? { origin } : {}),
        ...(options.cookie ? { cookie: options.cookie } : {}),
        ...(options.body !== undefined ? { "content-type": "application/json" } : {}),
        ...options.headers,
      },
      ...(options.body !== undefined ? { body: JSON.stringify(options.body) } : {}),
    });
    const text = await res.text();
    let body: Answer["body"] = {};
    try {
      body = text ? JSON.parse(text) : {};
    } catch {
      body = { text };
    }
    return { status: res.status, body };
  };
  /** Core's development sign-in (the example mounts the test provider in development): the session cookie. */
  const signIn = async (handle: string) => {
    const res = await fetch(`${appUrl}/auth/test/sign-in`, { method: "POST", headers: { "content-type": "application/json", origin: appUrl }, body: JSON.stringify({ handle }) });
    expect(res.status).toBe(200);
    const cookie = res.headers.getSetCookie().map((c) => c.split(";")[0]).join("; ");
    const { user } = (await res.json()) as { user: { id: string; person_id: string } };
    return { cookie, user };
  };
  /** A link ticket of the test provider (the two-step shape of every provider) asked for by `cookie`'s session. */
  const linkTicket = async (cookie: string, handle: string, merge?: boolean) => {
    const started = await call("POST", "/auth/test/start", { cookie, body: { handle, intent: "link", ...(merge === undefined ? {} : { merge }) } });
    expect(started.status).toBe(200);
    return started.body.ticket as string;
  };
  const linkTest = async (cookie: string, handle: string, merge?: boolean) =>
    call("POST", "/auth/test/verify", { cookie, body: { handle, ticket: await linkTicket(cookie, handle, merge) } });
  const personOf = async (network: string, id: string) => (await auth.api.findUser(network, id))?.person_id;
  const identitiesOf = async (personId: string) =>
    (await auth.db.query<{ id: string; network: string; source_identifier: string }>("SELECT id, network, source_identifier FROM user_references WHERE person_id = $1 AND user_type <> 'api' ORDER BY created_at, id", [personId])).rows;
  /** Ages the session's last proof past the 10-minute window (as if the person had walked away). */
  const makeStale = async (cookie: string) => {
    const token = /erebus_session=([^;]+)/.exec(cookie)![1]!;
    const { createHash } = await import("node:crypto");
    const hash = createHash("sha256").update(token).digest("hex");
    const { rowCount } = await auth.db.query("UPDATE erebus_sessions SET authenticated_at = authenticated_at - interval '11 minutes' WHERE token_hash = $1", [hash]);
    expect(rowCount).toBe(1);
  };

  // ---- attacks, over HTTP ----------------------------------------------------------------------------

  it("attack: link CSRF — another site's request with the victim's cookie can neither start a link nor finish one, and the attacker's own link ticket does not work in the victim's session", async () => {
    const victim = await signIn("csrf_victim");
    const attacker = await signIn("csrf_attacker");
    const evil = { origin: "https://evil.example", headers: { "sec-fetch-site": "cross-site" } };
    // 1. The origin check: a cross-site POST carrying the session cookie is refused before any route runs.
    const starts = [
      ["/auth/test/start", { handle: "csrf_planted", intent: "link" }],
      ["/auth/siwe/nonce", { intent: "link" }],
      ["/auth/siws/nonce", { intent: "link" }],
      ["/auth/email/start", { email: "attacker@evil.example", mode: "code", intent: "link" }],
    ] as const;
    for (const [path, body] of starts) {
      const res = await call("POST", path, { cookie: victim.cookie, body, ...evil });
      expect([res.status, res.body.code], path).toEqual([403, "ERR_ORIGIN_FORBIDDEN"]);
    }
    // 2. The session-bound intent: the attacker asks for a link in his own session and has the
    // victim's browser present it (a same-site page, a planted form): it attaches nothing.
    const ticket = await linkTicket(attacker.cookie, "csrf_attacker_key");
    const crossSite = await call("POST", "/auth/test/verify", { cookie: victim.cookie, body: { handle: "csrf_attacker_key", ticket }, ...evil });
    expect([crossSite.status, crossSite.body.code]).toEqual([403, "ERR_ORIGIN_FORBIDDEN"]);
    const sameSite = await call("POST", "/auth/test/verify", { cookie: victim.cookie, body: { handle: "csrf_attacker_key", ticket } });
    expect([sameSite.status, sameSite.body.code]).toEqual([403, "ERR_LINK_SESSION_MISMATCH"]);
    expect(await personOf("test", "csrf_attacker_key")).toBeUndefined();
    expect((await identitiesOf(victim.user.id)).map((i) => i.source_identifier)).toEqual(["csrf_victim"]);
    // The ticket was used up by that attempt: not even the attacker can use it now.
    const after = await call("POST", "/auth/test/verify", { cookie: attacker.cookie, body: { handle: "csrf_attacker_key", ticket } });
    expect(after.status).toBe(401);
    // 3. Unlink is state-changing too: refused cross-site.
    const other = await linkTest(victim.cookie, "csrf_victim_phone");
    expect(other.status).toBe(200);
    const phoneId = (other.body.linked as { id: string }).id;
    const unlink = await call("DELETE", `/auth/identities/${phoneId}`, { cookie: victim.cookie, ...evil });
    expect([unlink.status, unlink.body.code]).toEqual([403, "ERR_ORIGIN_FORBIDDEN"]);
    expect(await personOf("test", "csrf_victim_phone")).toBe(victim.user.id);
  });

  it("attack: a wallet link nonce asked for in the attacker's own session, signed by the attacker's wallet, replayed in the victim's session: refused and used up", async () => {
    const victim = await signIn("replay_victim");
    const attacker = await signIn("replay_attacker");
    const wallet = ethereumWallet();
    const issued = await call("POST", "/auth/siwe/nonce", { cookie: attacker.cookie, body: { address: wallet.address, chainId: 1, intent: "link" } });
    expect(issued.status).toBe(200);
    const message = issued.body.message as string;
    const signature = await wallet.sign(message);
    const replayed = await call("POST", "/auth/siwe/verify", { cookie: victim.cookie, body: { message, signature } });
    expect([replayed.status, replayed.body.code]).toEqual([403, "ERR_LINK_SESSION_MISMATCH"]);
    expect(await personOf("ethereum", wallet.address)).toBeUndefined();
    // Without any session (a plain sign-in with a link nonce): no session either.
    const anonymous = await call("POST", "/auth/siwe/verify", { body: { message, signature } });
    expect(anonymous.status).toBeGreaterThanOrEqual(400);
    expect(anonymous.status).toBeLessThan(500);
    // And back in the attacker's own session: used.
    const own = await call("POST", "/auth/siwe/verify", { cookie: attacker.cookie, body: { message, signature } });
    expect(own.status).toBe(401);
    expect(await personOf("ethereum", wallet.address)).toBeUndefined();
    expect((await identitiesOf(victim.user.id)).map((i) => i.network)).toEqual(["test"]);
  });

  it("attack: a stale session (last proof older than 10 minutes) starts no link on any provider and unlinks nothing: 403 ERR_REAUTH_REQUIRED", async () => {
    const { cookie, user } = await signIn("stale_person");
    const phone = await linkTest(cookie, "stale_phone");
    expect(phone.status).toBe(200);
    await makeStale(cookie);
    const attempts: [string, string, unknown][] = [
      ["POST", "/auth/test/start", { handle: "stale_new", intent: "link" }],
      ["POST", "/auth/siwe/nonce", { address: ethereumWallet().address, chainId: 1, intent: "link" }],
      ["POST", "/auth/siws/nonce", { intent: "link" }],
      ["POST", "/auth/email/start", { email: "stale@example.com", mode: "code", intent: "link" }],
      ["DELETE", `/auth/identities/${(phone.body.linked as { id: string }).id}`, undefined],
    ];
    for (const [method, path, body] of attempts) {
      await expect.poll(async () => {
        const res = await call(method, path, { cookie, ...(body === undefined ? {} : { body }) });
        return [res.status, res.body.code];
      }, { message: path }).toEqual([403, "ERR_REAUTH_REQUIRED"]);
    }
    // OAuth's start is a navigation: refused as a problem document, or back to the page with ?error=ERR_REAUTH_REQUIRED;
    // never on to the provider.
    const oauth = await fetch(`${appUrl}/auth/oauth/dev?intent=link&returnTo=/`, { redirect: "manual", headers: { cookie, accept: "text/html" } });
    const refusal = oauth.status === 302 ? new URL(oauth.headers.get("location")!, appUrl).searchParams.get("error") : ((await oauth.json()) as { code: string }).code;
    expect([oauth.status === 302 ? 302 : oauth.status, refusal]).toEqual([oauth.status === 302 ? 302 : 403, "ERR_REAUTH_REQUIRED"]);
    expect((await identitiesOf(user.id)).map((i) => i.source_identifier)).toEqual(["stale_person", "stale_phone"]);
    // Signing in again with one of the person's identities makes a fresh session that can.
    const again = await signIn("stale_phone");
    expect(again.user.person_id).toBe(user.id);
    expect((await linkTest(again.cookie, "stale_new")).status).toBe(200);
  });

  it("attack: an identity that was deactivated cannot be linked (nor merged) into another person", async () => {
    const owner = await signIn("banned_owner");
    const banned = await signIn("banned_alt");
    await auth.api.deactivateUser(banned.user.id);
    for (const merge of [undefined, true]) {
      const res = await linkTest(owner.cookie, "banned_alt", merge);
      expect([res.status, res.body.code], `merge: ${merge}`).toEqual([403, "ERR_USER_DEACTIVATED"]);
    }
    expect(await personOf("test", "banned_alt")).toBe(banned.user.id);
    expect((await identitiesOf(owner.user.id)).map((i) => i.source_identifier)).toEqual(["banned_owner"]);
    // And a deactivated identity's own (revoked) session cannot ask for a link either.
    const res = await call("POST", "/auth/test/start", { cookie: banned.cookie, body: { handle: "banned_new", intent: "link" } });
    expect(res.status).toBe(401);
  });

  it("attack: racing link and unlink — the unlinked identity's session links nothing afterwards, nothing is half-done, never a 5xx (10 rounds)", async () => {
    for (let round = 0; round < 10; round++) {
      const a = await signIn(`race_a_${round}`);
      expect((await linkTest(a.cookie, `race_b_${round}`)).status).toBe(200);
      const b = await signIn(`race_b_${round}`);
      const person = a.user.id;
      // A's session asks to link C; at the same moment B's session unlinks A (A's sessions end).
      const ticket = await linkTicket(a.cookie, `race_c_${round}`);
      const [link, unlink] = await Promise.all([
        call("POST", "/auth/test/verify", { cookie: a.cookie, body: { handle: `race_c_${round}`, ticket } }),
        call("DELETE", `/auth/identities/${a.user.id}`, { cookie: b.cookie }),
      ]);
      expect(link.status, `round ${round} link ${JSON.stringify(link.body)}`).toBeLessThan(500);
      expect(unlink.status, `round ${round} unlink ${JSON.stringify(unlink.body)}`).toBe(200);
      const c = await personOf("test", `race_c_${round}`);
      if (link.status === 200) {
        // The link committed first: C joined the person, which keeps its id (B is in it), and A left.
        expect(c).toBe(person);
        expect((link.body.person as { id: string }).id).toBe(person);
      } else {
        expect([link.status, link.body.code]).toEqual([403, "ERR_LINK_SESSION_MISMATCH"]);
        expect(c).toBeUndefined();
      }
      const aPerson = await personOf("test", `race_a_${round}`);
      expect(aPerson).not.toBe(person);
      expect((await identitiesOf(aPerson!)).map((i) => i.source_identifier)).toEqual([`race_a_${round}`]);
      expect((await identitiesOf(person)).map((i) => i.source_identifier).sort()).toEqual([`race_b_${round}`, ...(link.status === 200 ? [`race_c_${round}`] : [])].sort());
      // A's session ended with the unlink, whichever came first.
      expect((await call("GET", "/auth/session", { cookie: a.cookie })).status).toBe(401);
    }
  });

  // ---- the page, in Chromium --------------------------------------------------------------------------

  describe.skipIf(!chromium)("in a real Chromium", () => {
    let browser: Browser;
    beforeAll(async () => {
      browser = await launchChromium(chromium!);
    });
    afterAll(async () => browser?.close());

    /** A browser with an EIP-1193 wallet (window.ethereum) and a Solana wallet (window.phantom.solana), each with a real key. */
    async function walletContext() {
      const eth = ethereumWallet();
      const sol = await solanaWallet();
      const context = await browser.newContext();
      await context.exposeFunction("__erebusPersonalSign", (hex: string) => eth.sign(Buffer.from(hex.slice(2), "hex").toString("utf8")));
      await context.exposeFunction("__erebusSolanaSignIn", async (input: Record<string, string>) => {
        const { message, signature } = await sol.signIn(input);
        return { address: sol.address, signedMessage: [...Buffer.from(message, "utf8")], signature: [...bs58.decode(signature)] };
      });
      await context.addInitScript(({ address }) => {
        const bridge = window as unknown as {
          __erebusPersonalSign(h: unknown): Promise<string>;
          __erebusSolanaSignIn(i: unknown): Promise<{ address: string; signedMessage: number[]; signature: number[] }>;
        };
        (window as unknown as { ethereum: unknown }).ethereum = {
          isMetaMask: true,
          async request({ method, params }: { method: string; params?: unknown[] }) {
            if (method === "eth_requestAccounts") return [address.toLowerCase()];
            if (method === "eth_chainId") return "0x1";
            if (method === "personal_sign") return bridge.__erebusPersonalSign(params![0]);
            throw new Error(`unsupported ${method}`);
          },
        };
        (window as unknown as { phantom: unknown }).phantom = {
          solana: {
            isPhantom: true,
            async signIn(input: unknown) {
              const out = await bridge.__erebusSolanaSignIn(input);
              return { address: out.address, signedMessage: new Uint8Array(out.signedMessage), signature: new Uint8Array(out.signature) };
            },
          },
        };
      }, { address: eth.address });
      return { eth, sol, context };
    }

    const networks = (page: Page) => page.$$eval("#identity-list li", (items) => items.map((li) => (li as HTMLElement).dataset.network));

    async function emailCode(page: Page, address: string) {
      const before = ((await (await fetch(`${appUrl}/dev/mailbox.json`)).json()) as { to: string }[]).filter((m) => m.to === address).length;
      await page.fill("#email", address);
      await page.selectOption("#email-mode", "code");
      await page.click("#email-start button[type=submit]");
      await expect.poll(() => page.isVisible("#email-code")).toBe(true);
      let code = "";
      await expect
        .poll(async () => {
          const mails = ((await (await fetch(`${appUrl}/dev/mailbox.json`)).json()) as { to: string; subject: string }[]).filter((m) => m.to === address);
          // The mailbox lists the newest first.
          if (mails.length > before) code = /\d{6}/.exec(mails[0]!.subject)![0];
          return mails.length > before;
        })
        .toBe(true);
      await page.fill("#code", code);
      await page.click("#email-code button[type=submit]");
    }

    it("links Ethereum, Solana, the development IdP and an email to one person; the email alone signs in as that person with four identities; unlink Solana; Solana alone is then a new person", async () => {
      const { eth, sol, context } = await walletContext();
      const page = await context.newPage();
      const errors: string[] = [];
      page.on("pageerror", (error) => errors.push(String(error)));
      await page.goto(appUrl);
      expect(await page.textContent("#sign-in-title")).toBe("Sign in");

      await page.click("#siwe");
      await expect.poll(() => page.textContent("#status")).toBe(`Signed in as ethereum:${eth.address} (external)`);
      await expect.poll(() => page.textContent("#sign-in-title")).toBe("Link another way to sign in");
      expect(await page.textContent("#siws")).toBe("Link Solana");
      // Telegram's provider takes no link intent: its button is not offered while linking.
      expect(await page.isVisible("#telegram")).toBe(false);
      const person = (await page.textContent("#person-id"))!;
      expect(await networks(page)).toEqual(["ethereum"]);

      // Solana: the same button, now under a link intent; the session stays Ethereum's.
      await page.click("#siws");
      await expect.poll(() => networks(page)).toEqual(["ethereum", "solana"]);
      expect(await page.textContent("#link-status")).toBe(`Linked solana:${sol.address}.`);
      expect(await page.textContent("#status")).toBe(`Signed in as ethereum:${eth.address} (external)`);

      // The development IdP: its login and consent pages, back to the page, linked.
      expect(await page.textContent("a[data-provider=dev]")).toBe("Link Development IdP");
      await page.click("a[data-provider=dev]");
      await idpLogin(page, "linker", () => new URL(page.url()).pathname === "/");
      await expect.poll(() => networks(page), { timeout: 15_000 }).toEqual(["ethereum", "solana", "oauth"]);
      expect(await page.textContent("#error")).toBe("");
      expect(await page.textContent("#status")).toBe(`Signed in as ethereum:${eth.address} (external)`);

      // An email address, by a code typed into the page.
      const address = "linker@example.com";
      expect(await page.textContent("#email-label")).toBe("Link an email address");
      await emailCode(page, address);
      await expect.poll(() => networks(page)).toEqual(["ethereum", "solana", "oauth", "email"]);
      expect(await page.textContent("#link-status")).toBe(`Linked email:${address}.`);

      await page.click("#sign-out");
      await expect.poll(() => page.textContent("#status")).toBe("Not signed in.");
      expect(await page.isVisible("#identities")).toBe(false);
      expect(await page.textContent("#sign-in-title")).toBe("Sign in");

      // The email alone: the same person, with all four.
      await emailCode(page, address);
      await expect.poll(() => page.textContent("#status")).toBe(`Signed in as email:${address} (external)`);
      expect(await page.textContent("#person-id")).toBe(person);
      expect(await networks(page)).toEqual(["ethereum", "solana", "oauth", "email"]);
      expect(await page.textContent("#identity-list li[data-network=email] .this-session")).toBe("(this session)");

      // Unlink Solana: it becomes a person of its own.
      await page.click("#identity-list li[data-network=solana] button.unlink");
      await expect.poll(() => networks(page)).toEqual(["ethereum", "oauth", "email"]);
      expect(await personOf("solana", sol.address)).not.toBe(person);

      await page.click("#sign-out");
      await expect.poll(() => page.textContent("#status")).toBe("Not signed in.");
      await page.click("#siws");
      await expect.poll(() => page.textContent("#status")).toBe(`Signed in as solana:${sol.address} (external)`);
      const solanaPerson = (await page.textContent("#person-id"))!;
      expect(solanaPerson).not.toBe(person);
      expect(await networks(page)).toEqual(["solana"]);
      expect((await identitiesOf(person)).map((i) => i.network)).toEqual(["ethereum", "oauth", "email"]);
      expect(errors).toEqual([]);
      await context.close();
    });

    /** The development IdP's login page, then its consent page (node-oidc-provider asks once per account), until `done`. */
    async function idpLogin(page: Page, login: string, done: () => boolean) {
      await page.waitForSelector("input[name=login]");
      await page.fill("input[name=login]", login);
      await page.fill("input[name=password]", "anything");
      await page.click("button[type=submit]");
      const consent = async () => (await page.$("input[name=prompt][value=consent]").catch(() => null)) !== null;
      await expect.poll(async () => done() || (await consent()), { timeout: 15_000 }).toBe(true);
      if (!done()) await page.click("button[type=submit]");
    }

    it("attack: an OAuth link's callback (code and state) from the attacker's own session, opened in the victim's browser, links nothing", async () => {
      // The attacker asks to link his IdP account in his own session, and stops at the callback.
      const attackerContext = await browser.newContext();
      const attacker = await attackerContext.newPage();
      await attacker.goto(appUrl);
      await attacker.fill("#handle", "oauth_attacker");
      await attacker.click("#dev-sign-in button[type=submit]");
      await expect.poll(() => attacker.textContent("a[data-provider=dev]")).toBe("Link Development IdP");
      let callback = "";
      // The IdP's redirect to the callback is taken from its answer, and the browser is stopped there.
      // A redirect the browser follows is not routed again, so the form posts' redirect to the IdP's
      // resume step is followed here.
      await attackerContext.route((url) => url.pathname.startsWith("/dev/oidc/"), async (route) => {
        let response = await route.fetch({ maxRedirects: 0 });
        let location = response.headers()["location"];
        if (location && new URL(location, appUrl).pathname.startsWith("/dev/oidc/auth/")) {
          response = await attackerContext.request.get(new URL(location, appUrl).href, { maxRedirects: 0 });
          location = response.headers()["location"];
        }
        if (location && new URL(location, appUrl).pathname === "/auth/oauth/dev/callback") {
          callback = new URL(location, appUrl).href;
          return route.fulfill({ status: 200, contentType: "text/plain", body: "stopped before the callback" });
        }
        return route.fulfill({ response });
      });
      await attacker.click("a[data-provider=dev]");
      await idpLogin(attacker, "mallory", () => callback !== "");
      await expect.poll(() => callback).toContain("state=");

      // The victim's browser is made to open it (a link, an <img>, a redirect from the attacker's site).
      const victimContext = await browser.newContext();
      const victim = await victimContext.newPage();
      await victim.goto(appUrl);
      await victim.fill("#handle", "oauth_victim");
      await victim.click("#dev-sign-in button[type=submit]");
      await expect.poll(() => victim.textContent("#sign-in-title")).toBe("Link another way to sign in");
      await victim.goto(callback);
      await expect.poll(() => new URL(victim.url()).searchParams.get("error")).toMatch(/^ERR_/);
      expect(await personOf("oauth", "dev:mallory")).toBeUndefined();
      const victimUser = await auth.api.findUser("test", "oauth_victim");
      expect((await identitiesOf(victimUser!.person_id)).map((i) => i.source_identifier)).toEqual(["oauth_victim"]);
      await attackerContext.close();
      await victimContext.close();
    });

    it("links an email address by the mailed link (the default): mailbox → confirm page → back on the page, the same session, one more identity", async () => {
      const page = await browser.newPage();
      await page.goto(appUrl);
      await page.fill("#handle", "magic_linker");
      await page.click("#dev-sign-in button[type=submit]");
      await expect.poll(() => page.textContent("#email-label")).toBe("Link an email address");
      const address = "magic-linker@example.com";
      await page.fill("#email", address);
      await page.click("#email-start button[type=submit]");
      await expect.poll(() => page.isVisible("#email-status")).toBe(true);
      let link = "";
      await expect
        .poll(async () => {
          const mail = ((await (await fetch(`${appUrl}/dev/mailbox.json`)).json()) as { to: string; text: string }[]).find((m) => m.to === address);
          link = mail ? /http:\/\/localhost:\d+\/auth\/email\/verify\?token=[\w-]+/.exec(mail.text)![0] : "";
          return link;
        })
        .not.toBe("");
      await page.goto(link);
      await page.click("button[type=submit]");
      await page.waitForURL((url) => url.pathname === "/");
      await expect.poll(() => networks(page)).toEqual(["test", "email"]);
      expect(await page.textContent("#status")).toBe("Signed in as test:magic_linker (external)");
      expect(await personOf("email", address)).toBe(await personOf("test", "magic_linker"));
      await page.close();
    });

    it("offers the merge when the identity is another person's (how many identities it has), and merges only when asked", async () => {
      const other = await signIn("merge_other");
      expect((await linkTest(other.cookie, "merge_other_phone")).status).toBe(200);
      const page = await browser.newPage();
      await page.goto(appUrl);
      await page.fill("#handle", "merge_me");
      await page.click("#dev-sign-in button[type=submit]");
      await expect.poll(() => page.textContent("#sign-in-title")).toBe("Link another way to sign in");
      const me = (await page.textContent("#person-id"))!;

      await page.fill("#handle", "merge_other");
      await page.click("#dev-sign-in button[type=submit]");
      await expect.poll(() => page.isVisible("#merge-offer")).toBe(true);
      expect(await page.textContent("#merge-offer-text")).toContain("test:merge_other belongs to another person (2 identities). Merge that person into you?");
      expect(await personOf("test", "merge_other")).toBe(other.user.id);
      // Cancel: nothing happens.
      await page.click("#merge-cancel");
      expect(await page.isVisible("#merge-offer")).toBe(false);
      expect(await networks(page)).toEqual(["test"]);
      expect(await personOf("test", "merge_other")).toBe(other.user.id);

      // Again, and merge: a fresh proof of it, asked with merge.
      await page.click("#dev-sign-in button[type=submit]");
      await expect.poll(() => page.isVisible("#merge-offer")).toBe(true);
      await page.click("#merge");
      await expect.poll(async () => (await page.$$eval("#identity-list li .id", (items) => items.map((i) => i.textContent))).sort()).toEqual(["test:merge_me", "test:merge_other", "test:merge_other_phone"]);
      expect(await page.textContent("#link-status")).toBe("Merged the person of test:merge_other into you.");
      expect(await personOf("test", "merge_other_phone")).toBe(me);
      await page.close();
    });

    it("OAuth: an IdP account of another person comes back as the merge offer; Merge goes to the IdP again with merge=1 and takes that person in", async () => {
      // Someone signed in with the IdP account "oauth_owner" first: a person of its own.
      const ownerContext = await browser.newContext();
      const owner = await ownerContext.newPage();
      await owner.goto(appUrl);
      await owner.click("a[data-provider=dev]");
      await idpLogin(owner, "oauth_owner", () => new URL(owner.url()).pathname === "/");
      await expect.poll(() => owner.textContent("#status")).toBe("Signed in as oauth:dev:oauth_owner (external)");
      const ownerPerson = await personOf("oauth", "dev:oauth_owner");
      await ownerContext.close();

      const context = await browser.newContext();
      const page = await context.newPage();
      await page.goto(appUrl);
      await page.fill("#handle", "oauth_merger");
      await page.click("#dev-sign-in button[type=submit]");
      await expect.poll(() => page.textContent("a[data-provider=dev]")).toBe("Link Development IdP");
      const me = (await page.textContent("#person-id"))!;
      await page.click("a[data-provider=dev]");
      await idpLogin(page, "oauth_owner", () => new URL(page.url()).pathname === "/");
      await expect.poll(() => page.isVisible("#merge-offer")).toBe(true);
      expect(await page.textContent("#merge-offer-text")).toContain("This dev account belongs to another person. Merge that person into you?");
      expect(await personOf("oauth", "dev:oauth_owner")).toBe(ownerPerson);

      await page.click("#merge");
      // The IdP remembers this browser's login; it may ask for consent again.
      await expect
        .poll(async () => {
          if (new URL(page.url()).pathname !== "/" && (await page.$("input[name=prompt][value=consent]").catch(() => null))) await page.click("button[type=submit]").catch(() => undefined);
          return (await networks(page)).sort();
        }, { timeout: 15_000 })
        .toEqual(["oauth", "test"]);
      expect(await page.textContent("#person-id")).toBe(me);
      expect(await personOf("oauth", "dev:oauth_owner")).toBe(me);
      await context.close();
    });

    it("a stale session: unlink and link show the re-auth message; 'Sign in again' with one of the person's identities, then it works", async () => {
      const context = await browser.newContext();
      const page = await context.newPage();
      await page.goto(appUrl);
      await page.fill("#handle", "stale_page");
      await page.click("#dev-sign-in button[type=submit]");
      await expect.poll(() => page.textContent("#sign-in-title")).toBe("Link another way to sign in");
      await page.fill("#handle", "stale_page_phone");
      await page.click("#dev-sign-in button[type=submit]");
      await expect.poll(() => networks(page)).toEqual(["test", "test"]);
      const cookie = (await context.cookies()).filter((c) => c.name === "erebus_session").map((c) => `${c.name}=${c.value}`).join("; ");
      await makeStale(cookie);

      await page.click("#identity-list li:nth-child(2) button.unlink");
      await expect.poll(() => page.isVisible("#reauth")).toBe(true);
      expect(await page.textContent("#reauth")).toContain("This needs a recent sign-in");
      expect(await page.textContent("#error")).toBe("");
      expect(await networks(page)).toEqual(["test", "test"]);
      await page.fill("#handle", "stale_page_new");
      await page.click("#dev-sign-in button[type=submit]");
      await expect.poll(() => page.isVisible("#reauth")).toBe(true);
      expect(await personOf("test", "stale_page_new")).toBeUndefined();

      // OAuth's link is a navigation: the page says it first rather than land on the start's 403.
      await page.reload();
      await expect.poll(() => page.textContent("a[data-provider=dev]")).toBe("Link Development IdP");
      await page.click("a[data-provider=dev]");
      await expect.poll(() => page.isVisible("#reauth")).toBe(true);
      expect(new URL(page.url()).pathname).toBe("/");

      await page.click("#reauth-start");
      expect(await page.textContent("#sign-in-title")).toBe("Sign in again");
      await page.fill("#handle", "stale_page_phone");
      await page.click("#dev-sign-in button[type=submit]");
      await expect.poll(() => page.textContent("#status")).toBe("Signed in as test:stale_page_phone (external)");
      await expect.poll(() => page.textContent("#sign-in-title")).toBe("Link another way to sign in");
      await page.click("#identity-list li:nth-child(1) button.unlink");
      await expect.poll(() => networks(page)).toEqual(["test"]);
      expect(await page.textContent("#identity-list")).toContain("test:stale_page_phone");
      await context.close();
    });
  });
});

