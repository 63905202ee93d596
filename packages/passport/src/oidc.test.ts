import { request } from "node:http";
import express, { type RequestHandler } from "express";
import fc from "fast-check";
import { Strategy as OAuth2Strategy } from "passport-oauth2";
// @ts-expect-error -- passport-openidconnect ships no types (tests are not type-checked by tsc -b anyway)
import OpenIDConnectStrategy from "passport-openidconnect";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { createAuth, silentLogger, type Database, type ErebusAuth } from "@erebus/core";
import { engines, listen, tableRowCounts, type Running } from "@erebus/core/testing";
import { browser, loginAndConsent, startOpenIdProvider, type TestOp } from "../../../test/oidc.js";
import { passportProvider } from "./index.js";

type Browser = ReturnType<typeof browser>;
/** Percent-encodes, lone surrogates as the WTF-8 bytes a hostile client can send. */
const encodeRaw = (value: string) =>
  [...value]
    .map((ch) => {
      const code = ch.charCodeAt(0);
      if (ch.length === 1 && code >= 0xd800 && code <= 0xdfff) return [0xe0 | (code >> 12), 0x80 | ((code >> 6) & 0x3f), 0x80 | (code & 0x3f)].map((b) => `%${b.toString(16).toUpperCase()}`).join("");
      return encodeURIComponent(ch);
    })
    .join("");

/** passport-oauth2 with PKCE against the OP: the profile from its userinfo endpoint. */
class UserinfoOAuth2Strategy extends OAuth2Strategy {
  constructor(private readonly userinfo: string, options: ConstructorParameters<typeof OAuth2Strategy>[0]) {
    super(options, (_at: string, _rt: string, profile: unknown, done: (e: unknown, u?: unknown) => void) => done(null, profile));
  }
  override userProfile(accessToken: string, done: (err?: unknown, profile?: unknown) => void): void {
    fetch(this.userinfo, { headers: { authorization: `Bearer ${accessToken}` } })
      .then(async (res) => {
        if (!res.ok) throw new Error(`userinfo answered ${res.status}`);
        const json = (await res.json()) as { sub: string; name?: string; preferred_username?: string };
        done(null, { provider: "oauth2", id: json.sub, displayName: json.name, username: json.preferred_username, _json: json });
      })
      .catch(done);
  }
}

for (const engine of engines({ postgresUrl: inject("postgresUrl") })) {
  describe(`redirect strategies against a real OpenID Provider on ${engine.name}`, () => {
    let db: Database;
    let server: Running;
    let op: TestOp;
    let auth: ErebusAuth;
    let skew = 0;
    let inner: RequestHandler = (_req, _res, next) => next();

    const isCallback = (u: URL) => u.origin === server.url && /\/auth\/passport\/[a-z0-9]+\/callback$/.test(u.pathname);
    /** Starts a sign-in in `client` and logs in at the OP: the authorize URL and the callback URL the OP sent the browser to. */
    async function authorize(client: Browser, id = "oidc", login = "alice", returnTo?: string) {
      const start = await client.request(`${server.url}/auth/passport/${id}${returnTo === undefined ? "" : `?returnTo=${encodeURIComponent(returnTo)}`}`);
      expect(start.status).toBe(302);
      const authorizeUrl = new URL(start.headers.get("location")!);
      return { start, authorizeUrl, callback: await loginAndConsent(client, authorizeUrl.href, login, isCallback) };
    }
    const json = { accept: "application/json" };
    const session = async (client: Browser) => {
      const res = await client.request(`${server.url}/auth/session`);
      return res.status === 200 ? ((await res.json()) as { user: { id: string; source_identifier: string; email: string | null; source_type: Record<string, unknown> } }) : null;
    };
    const counts = () => tableRowCounts(db, { ignore: ["erebus_rate_limits"] });

    beforeAll(async () => {
      const app = express();
      app.use((req, res, next) => inner(req, res, next));
      server = await listen(app);
      op = await startOpenIdProvider([`${server.url}/auth/passport/oidc/callback`, `${server.url}/auth/passport/oauth2/callback`]);
      db = await engine.create();
      const oidc = new OpenIDConnectStrategy(
        {
          issuer: op.issuer,
          authorizationURL: `${op.issuer}/auth`,
          tokenURL: `${op.issuer}/token`,
          userInfoURL: `${op.issuer}/me`,
          clientID: op.clientId,
          clientSecret: op.clientSecret,
          // Relative on purpose: Erebus passes the absolute one, built from baseURL (never the Host header).
          callbackURL: "/ignored",
          scope: ["email", "profile"],
          nonce: true,
        },
        // Nine arguments: the userinfo profile (with email_verified in _json) is the user.
        (_iss: string, uiProfile: unknown, _idProfile: unknown, _ctx: unknown, _idToken: string, _at: string, _rt: string, _params: unknown, done: (e: unknown, u: unknown) => void) =>
          done(null, uiProfile),
      );
      const oauth2 = new UserinfoOAuth2Strategy(`${op.issuer}/me`, {
        authorizationURL: `${op.issuer}/auth`,
        tokenURL: `${op.issuer}/token`,
        clientID: op.clientId,
        clientSecret: op.clientSecret,
        callbackURL: "/ignored",
        scope: "openid email profile",
        pkce: true,
        state: true,
      });
      auth = createAuth({
        database: db,
        baseURL: server.url,
        migrate: true,
        logger: silentLogger,
        clock: () => new Date(Date.now() + skew),
        providers: [
          passportProvider({ id: "oidc", strategy: oidc, errorRedirect: "/signin-error", attemptsPerMinute: 10_000 }),
          passportProvider({ id: "oauth2", strategy: oauth2, attemptsPerMinute: 10_000 }),
        ],
      });
      await auth.ready;
      const router = express.Router();
      router.use("/auth", auth.router);
      inner = router;
    });
    afterAll(async () => {
      // auth.close(): the session cache first, then the database (closing only the database can leave the cache's LISTEN holding the pool).
      await server?.close();
      await op?.close();
      await (auth ? auth.close() : db?.close());
    });

    it("passport-openidconnect: 302 to the OP with state, a browser-bound cookie; the callback signs in and lands on returnTo", async () => {
      const client = browser();
      const { start, authorizeUrl, callback } = await authorize(client, "oidc", "alice", "/after?x=1");
      expect(authorizeUrl.origin).toBe(op.issuer);
      expect(authorizeUrl.searchParams.get("state")).toMatch(/^[A-Za-z0-9_-]{43}$/);
      expect(authorizeUrl.searchParams.get("redirect_uri")).toBe(`${server.url}/auth/passport/oidc/callback`);
      expect(authorizeUrl.searchParams.get("nonce")).toBeTruthy();
      // Core's browser binding (ctx.verifications with browser: { req, res }).
      const binding = start.headers.getSetCookie().find((c) => c.startsWith("erebus_bind="))!;
      expect(binding).toMatch(/HttpOnly/i);
      expect(binding).toMatch(/SameSite=Lax/i);
      const done = await client.request(callback.href);
      expect(done.status).toBe(302);
      expect(done.headers.get("location")).toBe("/after?x=1");
      const me = await session(client);
      expect(me?.user).toMatchObject({ source_identifier: "oidc:alice", email: "alice@example.com", source_type: { type: "oauth", provider: "oidc", user_id: "alice" } });
    });

    it("attack: a forged Host header does not move the redirect_uri (it comes from baseURL, the strategy's relative callbackURL is ignored)", async () => {
      const location = await new Promise<string>((resolve, reject) => {
        const target = new URL(`${server.url}/auth/passport/oidc`);
        const req = request({ host: target.hostname, port: target.port, path: target.pathname, headers: { host: "evil.example", "x-forwarded-host": "evil.example" } }, (res) => {
          res.resume();
          resolve(String(res.headers.location));
        });
        req.on("error", reject);
        req.end();
      });
      expect(new URL(location).searchParams.get("redirect_uri")).toBe(`${server.url}/auth/passport/oidc/callback`);
    });

    it("writes no email the OP did not verify", async () => {
      const client = browser();
      const { callback } = await authorize(client, "oidc", "unverified");
      expect((await client.request(callback.href)).status).toBe(302);
      expect((await session(client))?.user).toMatchObject({ source_identifier: "oidc:unverified", email: null });
    });

    it("passport-oauth2 with PKCE: the verifier comes back from the store (the OP checks it); the table holds neither state nor verifier", async () => {
      const client = browser();
      const { authorizeUrl, callback } = await authorize(client, "oauth2", "bob");
      expect(authorizeUrl.searchParams.get("code_challenge_method")).toBe("S256");
      const state = authorizeUrl.searchParams.get("state")!;
      const { rows } = await db.query<Record<string, unknown>>("SELECT * FROM erebus_verifications WHERE provider = 'passport-oauth2'");
      expect(rows.length).toBeGreaterThan(0);
      expect(JSON.stringify(rows)).not.toContain(state);
      expect(JSON.stringify(rows)).not.toMatch(/"kept"|returnTo/);
      const res = await client.request(callback.href, { headers: json });
      expect(res.status).toBe(200);
      expect(((await res.json()) as { user: { source_identifier: string; email: string } }).user).toMatchObject({ source_identifier: "oauth2:bob", email: "bob@example.com" });
    });

    it("attack: a replayed callback is refused (401 ERR_PASSPORT_STATE_USED) and writes nothing", async () => {
      const client = browser();
      const { callback } = await authorize(client, "oidc", "carol");
      expect((await client.request(callback.href, { headers: json })).status).toBe(200);
      const before = await counts();
      const again = await client.request(callback.href, { headers: json });
      expect(again.status).toBe(401);
      expect(((await again.json()) as { code: string }).code).toBe("ERR_PASSPORT_STATE_USED");
      expect(await counts()).toEqual(before);
    });

    it("attack: 5 concurrent uses of one callback: exactly one signs in, the rest are 401 STATE_USED", async () => {
      const client = browser();
      const { callback } = await authorize(client, "oidc", "ivan");
      const before = await counts();
      const results = await Promise.all(Array.from({ length: 5 }, () => client.request(callback.href, { headers: json })));
      const statuses = results.map((r) => r.status).sort();
      expect(statuses).toEqual([200, 401, 401, 401, 401]);
      for (const res of results.filter((r) => r.status === 401)) expect(((await res.json()) as { code: string }).code).toBe("ERR_PASSPORT_STATE_USED");
      const after = await counts();
      expect(after.erebus_sessions! - before.erebus_sessions!).toBe(1);
      expect(after.user_references! - before.user_references!).toBe(1);
    });

    it("attack: the callback opened in another browser is refused (ERR_PASSPORT_BROWSER_MISMATCH); the sign-in still finishes in its own", async () => {
      const victim = browser();
      const { callback } = await authorize(victim, "oidc", "dave");
      const before = await counts();
      const attacker = browser();
      const stolen = await attacker.request(callback.href, { headers: json });
      expect(stolen.status).toBe(401);
      expect(((await stolen.json()) as { code: string }).code).toBe("ERR_PASSPORT_BROWSER_MISMATCH");
      // Another browser that has a binding cookie of its own (it started a sign-in too) fares no better.
      const other = browser();
      await other.request(`${server.url}/auth/passport/oidc`);
      const planted = await other.request(callback.href, { headers: json });
      expect(((await planted.json()) as { code: string }).code).toBe("ERR_PASSPORT_BROWSER_MISMATCH");
      expect(await session(attacker)).toBeNull();
      const after = await counts();
      expect(after.user_references).toBe(before.user_references);
      expect(after.erebus_sessions).toBe(before.erebus_sessions);
      expect((await victim.request(callback.href)).status).toBe(302);
      expect((await session(victim))?.user.source_identifier).toBe("oidc:dave");
    });

    it("refuses a callback without state (400), with an unknown or another strategy's state (401 STATE_INVALID), or too late (STATE_EXPIRED)", async () => {
      const client = browser();
      const { callback } = await authorize(client, "oidc", "erin");
      const code = callback.searchParams.get("code")!;
      const noState = await client.request(`${server.url}/auth/passport/oidc/callback?code=${code}`, { headers: json });
      expect(((await noState.json()) as { code: string }).code).toBe("ERR_PASSPORT_CALLBACK_INVALID");
      const noCode = await client.request(`${server.url}/auth/passport/oidc/callback?state=${callback.searchParams.get("state")}`, { headers: json });
      expect(((await noCode.json()) as { code: string }).code).toBe("ERR_PASSPORT_CALLBACK_INVALID");
      const unknown = await client.request(`${server.url}/auth/passport/oidc/callback?code=${code}&state=${"A".repeat(43)}`, { headers: json });
      expect(((await unknown.json()) as { code: string }).code).toBe("ERR_PASSPORT_STATE_INVALID");
      // A state the oauth2 strategy gave out, presented to the oidc callback.
      const other = await authorize(client, "oauth2", "erin");
      const crossed = await client.request(`${server.url}/auth/passport/oidc/callback?code=${code}&state=${other.callback.searchParams.get("state")}`, { headers: json });
      expect(((await crossed.json()) as { code: string }).code).toBe("ERR_PASSPORT_STATE_INVALID");
      // In a browser that started nothing else since (on http a new start replaces the binding).
      const slow = browser();
      const slowAttempt = await authorize(slow, "oidc", "erin");
      skew = 11 * 60_000;
      try {
        const late = await slow.request(slowAttempt.callback.href, { headers: json });
        expect(late.status).toBe(401);
        expect(((await late.json()) as { code: string }).code).toBe("ERR_PASSPORT_STATE_EXPIRED");
      } finally {
        skew = 0;
      }
    });

    it("an error callback (access_denied) uses the state up: ERR_PASSPORT_DENIED, then STATE_USED; a browser is sent to errorRedirect", async () => {
      const client = browser();
      const start = await client.request(`${server.url}/auth/passport/oidc`);
      const state = new URL(start.headers.get("location")!).searchParams.get("state")!;
      const denied = await client.request(`${server.url}/auth/passport/oidc/callback?error=access_denied&state=${state}`);
      expect(denied.status).toBe(302);
      expect(denied.headers.get("location")).toBe("/signin-error?error=ERR_PASSPORT_DENIED");
      const again = await client.request(`${server.url}/auth/passport/oidc/callback?error=access_denied&state=${state}`, { headers: json });
      expect(((await again.json()) as { code: string }).code).toBe("ERR_PASSPORT_STATE_USED");
    });

    it("found by the fuzz test: an error callback other than access_denied, without error_description, is 502 ERR_PASSPORT_STRATEGY_ERROR (was a 500)", async () => {
      const client = browser();
      const start = await client.request(`${server.url}/auth/passport/oidc`);
      const state = new URL(start.headers.get("location")!).searchParams.get("state")!;
      const res = await client.request(`${server.url}/auth/passport/oidc/callback?error=server_error&state=${state}`, { headers: json });
      expect(res.status).toBe(502);
      expect(((await res.json()) as { code: string }).code).toBe("ERR_PASSPORT_STRATEGY_ERROR");
      // The start takes no callback parameters (the strategy would treat it as a callback).
      const onStart = await client.request(`${server.url}/auth/passport/oidc?error=x`, { headers: json });
      expect(onStart.status).toBe(400);
      expect(((await onStart.json()) as { code: string }).code).toBe("ERR_PASSPORT_CALLBACK_INVALID");
    });

    it("link intent: a signed-in person starts ?intent=link and the other strategy's identity joins the person (no new session); one of another person is 409", async () => {
      const client = browser();
      const first = await authorize(client, "oidc", "frank");
      expect((await client.request(first.callback.href)).status).toBe(302);
      const before = (await session(client)) as unknown as { user: { id: string; person_id: string }; session: { id: string } };
      // Log out at the OP (its cookies), so the next login there is a new account.
      const opHost = new URL(op.issuer).host;
      client.jar.delete(opHost);
      const started = await client.request(`${server.url}/auth/passport/oauth2?intent=link`);
      expect(started.status).toBe(302);
      const callback = await loginAndConsent(client, started.headers.get("location")!, "frank-github", isCallback);
      const linked = await client.request(callback.href, { headers: json });
      expect(linked.status).toBe(200);
      const after = (await (await client.request(`${server.url}/auth/session`)).json()) as { user: { id: string }; person: { id: string; identities: { source_identifier: string }[] }; session: { id: string } };
      expect(after.user.id).toBe(before.user.id);
      expect(after.session.id).toBe(before.session.id);
      expect(after.person.identities.map((i) => i.source_identifier).sort()).toEqual(["oauth2:frank-github", "oidc:frank"]);
      // An identity that is already another person's: 409 unless merge.
      const other = browser();
      const greta = await authorize(other, "oidc", "greta");
      expect((await other.request(greta.callback.href)).status).toBe(302);
      client.jar.delete(opHost);
      const again = await client.request(`${server.url}/auth/passport/oidc?intent=link`);
      const cb = await loginAndConsent(client, again.headers.get("location")!, "greta", isCallback);
      const refused = await client.request(cb.href, { headers: json });
      expect(refused.status).toBe(409);
      expect(((await refused.json()) as { code: string }).code).toBe("ERR_IDENTITY_LINKED_ELSEWHERE");
      // Attack: a link started by a session that has since ended (signed out) does not attach.
      client.jar.delete(opHost);
      const ended = await client.request(`${server.url}/auth/passport/oidc?intent=link`);
      const endedCallback = await loginAndConsent(client, ended.headers.get("location")!, "hugo", isCallback);
      expect((await client.request(`${server.url}/auth/sign-out`, { method: "POST", headers: { origin: server.url } })).status).toBe(204);
      const afterSignOut = await client.request(endedCallback.href, { headers: json });
      expect(afterSignOut.status).toBeGreaterThanOrEqual(401);
      expect(afterSignOut.status).toBeLessThan(500);
      expect((await db.query("SELECT 1 FROM user_references WHERE source_identifier = 'oidc:hugo'")).rows).toEqual([]);
      // Without a session, a link intent is 401 before anyone is sent to the identity provider.
      const anonymous = await browser().request(`${server.url}/auth/passport/oidc?intent=link`, { headers: json });
      expect(anonymous.status).toBe(401);
    });

    it("returnTo must be a path on this site", async () => {
      for (const target of ["//evil.example/", "https://evil.example/", "/\\evil.example", "javascript:alert(1)"]) {
        const res = await fetch(`${server.url}/auth/passport/oidc?returnTo=${encodeURIComponent(target)}`, { redirect: "manual", headers: json });
        expect(res.status, target).toBe(400);
        expect(((await res.json()) as { code: string }).code).toBe("ERR_PASSPORT_RETURN_TO_INVALID");
      }
    });

    it("fuzz: NUL and lone surrogates in every query field of both routes: 4xx, 0 × 5xx, 0 rows", async () => {
      const client = browser();
      await client.request(`${server.url}/auth/passport/oidc`); // a binding cookie, so requests get past the browser check
      const before = await counts();
      const bad = fc.tuple(fc.string({ maxLength: 8 }), fc.constantFrom("\u0000", "\ud800", "\udfff", "a\u0000b", "\udfff\ud800"), fc.string({ maxLength: 8 })).map(([a, b, c]) => `${a}${b}${c}`);
      let fiveHundreds = 0;
      await fc.assert(
        fc.asyncProperty(fc.constantFrom("code", "state", "error", "error_description", "returnTo"), bad, fc.boolean(), async (field, value, onStart) => {
          const path = onStart ? "/auth/passport/oidc" : "/auth/passport/oidc/callback";
          const query = onStart ? `${encodeRaw(field)}=${encodeRaw(value)}` : `state=${"B".repeat(43)}&code=x&${encodeRaw(field)}=${encodeRaw(value)}`;
          const res = await client.request(`${server.url}${path}?${query}`, { headers: json });
          if (res.status >= 500) fiveHundreds++;
          // The start ignores fields it does not know (OAuth clients add their own); every refusal is a 4xx problem.
          if (res.status !== 302) {
            expect(res.status).toBeGreaterThanOrEqual(400);
            expect(res.status).toBeLessThan(500);
            expect(res.headers.get("content-type")).toMatch(/^application\/problem\+json/);
          }
        }),
        { numRuns: 80 },
      );
      expect(fiveHundreds).toBe(0);
      const after = await counts();
      // Starts issue attempts (that is what a start is); nothing else moves.
      expect({ ...after, erebus_verifications: 0 }).toEqual({ ...before, erebus_verifications: 0 });
    });
  });
}
