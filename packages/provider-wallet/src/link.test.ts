import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { silentLogger, type Database, type ErebusAuth } from "@erebus/core";
import { engines, startAuthServer, type Running } from "@erebus/core/testing";
import { ethereumWallet, solanaWallet } from "../../../test/wallets.js";
import { formatSiweMessage } from "./siwe-message.js";
import { walletProvider } from "./wallet-provider.js";

const ORIGIN = "http://app.test";
const LINK_STATEMENT = "Link this wallet to your account on app.test";
type Wallet = ReturnType<typeof ethereumWallet>;

// Issue 13: a wallet nonce asked for with intent "link" attaches the wallet to the signed-in person,
// and only from the session that asked for it.
for (const engine of engines({ postgresUrl: inject("postgresUrl") })) {
  describe(`wallet link intent (${engine.name})`, () => {
    let db: Database;
    let auth: ErebusAuth;
    let server: Running;
    let now = new Date();

    const post = async (path: string, body: unknown = {}, token?: string) => {
      const res = await fetch(`${server.url}/auth${path}`, {
        method: "POST",
        headers: { "content-type": "application/json", origin: ORIGIN, "erebus-session-transport": "bearer", ...(token ? { authorization: `Bearer ${token}` } : {}) },
        body: JSON.stringify(body),
      });
      const text = await res.text();
      return { status: res.status, body: text ? JSON.parse(text) : null, res };
    };
    /** A SIWE sign-in with a server-made message: the session token and the user. */
    async function signIn(wallet: Wallet = ethereumWallet()) {
      const { body } = await post("/siwe/nonce", { address: wallet.address, chainId: 1 });
      const signed = await post("/siwe/verify", { message: body.message, signature: await wallet.sign(body.message) });
      expect(signed.status).toBe(200);
      return { wallet, token: signed.body.session.token as string, user: signed.body.user as { id: string; person_id: string } };
    }
    /** A link nonce's server-made message for `wallet`, asked for by `token`'s session, signed. */
    async function linkMessage(token: string, wallet: Wallet, extra: Record<string, unknown> = {}) {
      const nonce = await post("/siwe/nonce", { address: wallet.address, chainId: 1, intent: "link", ...extra }, token);
      expect(nonce.status).toBe(200);
      return { message: nonce.body.message as string, signature: await wallet.sign(nonce.body.message), nonce: nonce.body };
    }
    const personOf = async (token: string) => {
      const res = await fetch(`${server.url}/auth/session`, { headers: { authorization: `Bearer ${token}` } });
      return ((await res.json()) as { person: { id: string; identities: { source_identifier: string }[] } }).person;
    };

    beforeAll(async () => {
      db = await engine.create();
      ({ server, auth } = await startAuthServer({
        database: db,
        baseURL: ORIGIN,
        logger: silentLogger,
        clock: () => now,
        providers: [walletProvider({ rateLimit: { nonce: 10_000, verify: 10_000 } })],
        people: { linksPerHour: 10_000 },
      }));
    });
    afterAll(async () => {
      await server?.close();
      await db?.close();
    });

    it("step-up: a stale session re-proves its own wallet with intent reauthenticate (its own statement) and is fresh again; another wallet attaches nothing", async () => {
      const bob = await signIn();
      now = new Date(now.getTime() + 11 * 60_000);
      expect((await post("/siwe/nonce", { address: ethereumWallet().address, chainId: 1, intent: "link" }, bob.token)).body.code).toBe("ERR_REAUTH_REQUIRED");
      const stranger = ethereumWallet();
      const foreign = await linkMessage(bob.token, stranger, { intent: "reauthenticate" });
      expect(foreign.nonce.statement).toBe("Confirm it is you on app.test");
      expect((await post("/siwe/verify", { message: foreign.message, signature: foreign.signature }, bob.token)).body.code).toBe("ERR_REAUTH_IDENTITY_FOREIGN");
      expect(await auth.api.findUser("ethereum", stranger.address)).toBeNull();
      const own = await linkMessage(bob.token, bob.wallet, { intent: "reauthenticate" });
      const proved = await post("/siwe/verify", { message: own.message, signature: own.signature }, bob.token);
      expect(proved.body).toMatchObject({ outcome: "reauthenticated", user: { id: bob.user.id } });
      expect((await post("/siwe/nonce", { address: ethereumWallet().address, chainId: 1, intent: "link" }, bob.token)).status).toBe(200);
    });

    it("a link nonce says so in its statement, and verified from the session that asked attaches the wallet to that person (no new session)", async () => {
      const alice = await signIn();
      const second = ethereumWallet();
      const { message, signature, nonce } = await linkMessage(alice.token, second);
      expect(nonce.statement).toBe(LINK_STATEMENT);
      expect(message).toContain(`\n\n${LINK_STATEMENT}\n\n`);
      const linked = await post("/siwe/verify", { message, signature }, alice.token);
      expect(linked.status).toBe(200);
      expect(linked.body).toMatchObject({ outcome: "linked", user: { id: alice.user.id }, linked: { source_identifier: second.address, person_id: alice.user.person_id } });
      expect(linked.body.session.token).toBeUndefined();
      expect((await personOf(alice.token)).identities.map((i) => i.source_identifier).sort()).toEqual([alice.wallet.address, second.address].sort());
      // Signing in with the linked wallet later is the same person.
      const again = await signIn(second);
      expect(again.user.person_id).toBe(alice.user.person_id);
      // A plain nonce still says "Sign in".
      expect((await post("/siwe/nonce")).body.statement).toBe("Sign in to app.test");
    });

    it("attack: a link nonce verified from another session is refused (403 ERR_LINK_SESSION_MISMATCH), attaches and creates nothing, and is used up", async () => {
      const victim = await signIn();
      const attacker = await signIn();
      const wallet = ethereumWallet();
      const { message, signature } = await linkMessage(victim.token, wallet);
      const stolen = await post("/siwe/verify", { message, signature }, attacker.token);
      expect([stolen.status, stolen.body.code]).toEqual([403, "ERR_LINK_SESSION_MISMATCH"]);
      const anonymous = await post("/siwe/verify", { message, signature });
      expect([anonymous.status, anonymous.body.code]).toEqual([401, "ERR_SIWE_NONCE_USED"]);
      expect(await auth.api.findUser("ethereum", wallet.address)).toBeNull();
      expect((await personOf(attacker.token)).identities).toHaveLength(1);
      expect((await personOf(victim.token)).identities).toHaveLength(1);
      // One try: the right session cannot use it after the refusal either.
      const late = await post("/siwe/verify", { message, signature }, victim.token);
      expect([late.status, late.body.code]).toEqual([401, "ERR_SIWE_NONCE_USED"]);
    });

    it("attack: a link nonce sent without any session is refused, and nobody is signed in", async () => {
      const owner = await signIn();
      const wallet = ethereumWallet();
      const { message, signature } = await linkMessage(owner.token, wallet);
      const res = await post("/siwe/verify", { message, signature });
      expect([res.status, res.body.code]).toEqual([403, "ERR_LINK_SESSION_MISMATCH"]);
      expect(res.res.headers.getSetCookie()).toEqual([]);
      expect(await auth.api.findUser("ethereum", wallet.address)).toBeNull();
    });

    it("attack: a link nonce signed over a 'Sign in' statement is refused (401 ERR_SIWE_STATEMENT_MISMATCH): what the wallet showed must say link", async () => {
      const owner = await signIn();
      const wallet = ethereumWallet();
      const { nonce } = await linkMessage(owner.token, wallet);
      const message = formatSiweMessage({ domain: "app.test", address: wallet.address, statement: "Sign in to app.test", uri: ORIGIN, version: "1", chainId: 1, nonce: nonce.nonce, issuedAt: now.toISOString() });
      const res = await post("/siwe/verify", { message, signature: await wallet.sign(message) }, owner.token);
      expect([res.status, res.body.code]).toEqual([401, "ERR_SIWE_STATEMENT_MISMATCH"]);
      expect(await auth.api.findUser("ethereum", wallet.address)).toBeNull();
    });

    it("asking for a link nonce needs a signed-in, fresh session (401 without one, 403 ERR_REAUTH_REQUIRED when stale), and writes no nonce", async () => {
      const count = async () => (await db.query<{ n: number }>("SELECT count(*)::int AS n FROM erebus_verifications WHERE provider = 'wallet'")).rows[0]!.n;
      const before = await count();
      const none = await post("/siwe/nonce", { intent: "link" });
      expect([none.status, none.body.code]).toEqual([401, "ERR_UNAUTHENTICATED"]);
      const solana = await post("/siws/nonce", { intent: "link" });
      expect(solana.status).toBe(401);
      const owner = await signIn();
      const afterSignIn = await count();
      now = new Date(now.getTime() + 11 * 60_000);
      try {
        const stale = await post("/siwe/nonce", { intent: "link" }, owner.token);
        expect([stale.status, stale.body.code]).toEqual([403, "ERR_REAUTH_REQUIRED"]);
        expect(await count()).toBe(afterSignIn);
      } finally {
        now = new Date();
      }
      expect(afterSignIn).toBe(before + 1);
    });

    it("links a Solana wallet to a person signed in with Ethereum (SIWS input states the link)", async () => {
      const owner = await signIn();
      const sol = await solanaWallet();
      const nonce = await post("/siws/nonce", { intent: "link" }, owner.token);
      expect(nonce.status).toBe(200);
      expect(nonce.body.input.statement).toBe(LINK_STATEMENT);
      const signed = await sol.signIn(nonce.body.input);
      const res = await post("/siws/verify", { ...signed, address: sol.address }, owner.token);
      expect(res.body).toMatchObject({ outcome: "linked", linked: { network: "solana", source_identifier: sol.address, person_id: owner.user.person_id } });
      // The same signed link again: a replay.
      expect((await post("/siws/verify", { ...signed, address: sol.address }, owner.token)).body.code).toBe("ERR_SIWS_NONCE_USED");
    });

    it("a wallet of another person is refused (409 ERR_IDENTITY_LINKED_ELSEWHERE) unless the nonce asked to merge", async () => {
      const me = await signIn();
      const other = await signIn();
      const refused = await linkMessage(me.token, other.wallet);
      const res = await post("/siwe/verify", { message: refused.message, signature: refused.signature }, me.token);
      expect([res.status, res.body.code]).toEqual([409, "ERR_IDENTITY_LINKED_ELSEWHERE"]);
      expect((await personOf(me.token)).identities).toHaveLength(1);
      const merge = await linkMessage(me.token, other.wallet, { merge: true });
      const merged = await post("/siwe/verify", { message: merge.message, signature: merge.signature }, me.token);
      expect(merged.body.outcome).toBe("merged");
      expect((await personOf(me.token)).identities).toHaveLength(2);
    });

    it("fuzz: bad intent and merge values (and NUL, lone surrogates) are 400 on both nonce routes, writing nothing", async () => {
      const owner = await signIn();
      const count = async () => (await db.query<{ n: number }>("SELECT count(*)::int AS n FROM erebus_verifications")).rows[0]!.n;
      const before = await count();
      const bodies = [
        { intent: "merge" },
        { intent: "link\u0000" },
        { intent: "\ud800" },
        { intent: "\udfff" },
        { intent: 1 },
        { intent: "link", merge: "yes" },
        { intent: "link", merge: "\u0000" },
        { intent: "link", extra: true },
        { address: "0x" + "1".repeat(40), intent: "link" },
      ];
      for (const path of ["/siwe/nonce", "/siws/nonce"]) {
        for (const body of bodies) {
          const res = await post(path, body, owner.token);
          expect(res.status, `${path} ${JSON.stringify(body)}`).toBe(400);
          expect(res.res.headers.get("content-type")).toMatch(/^application\/problem\+json/);
        }
      }
      expect(await count()).toBe(before);
    });
  });
}
