import express, { type RequestHandler } from "express";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createAuth, silentLogger, type Database, type ErebusAuth } from "@erebus/core";
import { engines } from "../../../test/engines.js";
import { listen, type Running } from "../../../test/http.js";
import { browser, loginAndConsent, startOpenIdProvider, startTokenProxy, type TestOp } from "../../../test/oidc.js";
import { oauthProvider } from "./oauth-provider.js";
import { google, oidc } from "./presets.js";

const KEY = Buffer.alloc(32, 7).toString("base64");

for (const engine of engines()) {
  describe(`OpenID Connect sign-in against a real OpenID Provider on ${engine.name}`, () => {
    let db: Database;
    let server: Running;
    let op: TestOp;
    let proxy: Awaited<ReturnType<typeof startTokenProxy>>;
    let auth: ErebusAuth;
    let provider: ReturnType<typeof oauthProvider>;
    let inner: RequestHandler = (_req, _res, next) => next();

    const isCallback = (u: URL) => u.origin === server.url && /\/auth\/oauth\/[a-z]+\/callback$/.test(u.pathname);
    /** Starts a sign-in in `client`, logs in at the OP, and returns the callback URL the OP sent the browser to. */
    async function authorize(client: ReturnType<typeof browser>, login = "alice", providerId = "dev", returnTo?: string) {
      const start = await client.request(`${server.url}/auth/oauth/${providerId}${returnTo === undefined ? "" : `?returnTo=${encodeURIComponent(returnTo)}`}`);
      expect(start.status).toBe(302);
      const authorizeUrl = new URL(start.headers.get("location")!);
      return { authorizeUrl, callback: await loginAndConsent(client, authorizeUrl.href, login, isCallback) };
    }
    const session = async (client: ReturnType<typeof browser>) => {
      const res = await client.request(`${server.url}/auth/session`);
      return res.status === 200 ? ((await res.json()) as { user: { id: string; source_identifier: string; email: string | null; source_type: Record<string, unknown> } }) : null;
    };
    const errorOf = (res: Response) => new URL(res.headers.get("location") ?? "http://x/", server.url).searchParams.get("error");

    beforeAll(async () => {
      const app = express();
      app.use((req, res, next) => inner(req, res, next));
      server = await listen(app);
      op = await startOpenIdProvider([`${server.url}/auth/oauth/dev/callback`, `${server.url}/auth/oauth/proxied/callback`]);
      proxy = await startTokenProxy(op);
      db = await engine.create();
      provider = oauthProvider({
        providers: {
          dev: oidc({ issuer: op.issuer, clientId: op.clientId, clientSecret: op.clientSecret, label: "Dev IdP" }),
          // The same OP, but its token responses pass through a proxy that can tamper with the ID token.
          proxied: oidc({ issuer: op.issuer, clientId: op.clientId, clientSecret: op.clientSecret, endpoints: { authorization: `${op.issuer}/auth`, token: proxy.tokenEndpoint, jwks: `${op.issuer}/jwks`, userinfo: `${op.issuer}/me` } }),
          down: oidc({ issuer: "http://127.0.0.1:9/nowhere", clientId: "x", clientSecret: "y" }),
        },
        refreshTokenKey: KEY,
        errorRedirect: "/signin-error",
      });
      auth = createAuth({ database: db, baseURL: server.url, providers: [provider], migrate: true, logger: silentLogger });
      await auth.ready;
      const router = express.Router();
      router.use("/auth", auth.router);
      inner = router;
    });
    afterAll(async () => {
      await server?.close();
      await proxy?.close();
      await op?.close();
      await db?.close();
    });

    it("runs the whole flow: authorize (PKCE S256, state, nonce) → login → consent → callback → session", async () => {
      const client = browser();
      const { authorizeUrl, callback } = await authorize(client, "alice", "dev", "/account?tab=keys");
      const params = authorizeUrl.searchParams;
      expect(params.get("code_challenge_method")).toBe("S256");
      expect(params.get("code_challenge")).toMatch(/^[A-Za-z0-9_-]{43}$/);
      expect(params.get("state")).toMatch(/^[A-Za-z0-9_-]{43}$/);
      expect(params.get("nonce")).toMatch(/^[A-Za-z0-9_-]{43}$/);
      expect(params.get("redirect_uri")).toBe(`${server.url}/auth/oauth/dev/callback`);
      const done = await client.request(callback.href);
      expect(done.status).toBe(302);
      expect(done.headers.get("location")).toBe("/account?tab=keys");
      const me = await session(client);
      expect(me!.user).toMatchObject({
        network: "oauth",
        source_identifier: "dev:alice",
        email: "alice@example.com",
        source_type: { type: "oauth", provider: "dev", user_id: "alice", metadata: { issuer: op.issuer, name: "User alice", username: "alice" } },
      });
      // Nothing secret at rest: states are hashes; the refresh token is sealed with AES-256-GCM.
      const dump = JSON.stringify((await db.query("SELECT * FROM erebus_oauth_states")).rows);
      expect(dump).not.toContain(params.get("state")!);
      const stored = await provider.refreshTokens(auth).get(me!.user.id, "dev");
      expect(stored).toEqual(expect.any(String));
      const sealed = JSON.stringify((await db.query("SELECT * FROM erebus_oauth_refresh_tokens")).rows);
      expect(sealed).not.toContain(stored!);
    });

    it("sets the email column only from a verified address", async () => {
      const client = browser();
      const { callback } = await authorize(client, "unverified");
      await client.request(callback.href);
      const me = await session(client);
      expect(me!.user).toMatchObject({ source_identifier: "dev:unverified", email: null });
    });

    it("refuses a return path that leaves the site (no open redirect)", async () => {
      for (const returnTo of ["https://evil.test/", "//evil.test/x", "/\\evil.test", "javascript:alert(1)", "/ok\nSet-Cookie:x"]) {
        const res = await fetch(`${server.url}/auth/oauth/dev?returnTo=${encodeURIComponent(returnTo)}`, { redirect: "manual" });
        expect(res.status).toBe(400);
        expect((await res.json()).code).toBe("ERR_OAUTH_RETURN_TO_INVALID");
      }
    });

    describe("attacks on the callback, each refused with its own code and no session", () => {
      it("wrong state", async () => {
        const client = browser();
        const { callback } = await authorize(client);
        callback.searchParams.set("state", "A".repeat(43));
        const res = await client.request(callback.href);
        expect([res.status, errorOf(res)]).toEqual([302, "ERR_OAUTH_STATE_INVALID"]);
        expect(new URL(res.headers.get("location")!, server.url).pathname).toBe("/signin-error");
        expect(await session(client)).toBeNull();
      });

      it("missing state (API client: problem+json)", async () => {
        const client = browser();
        const { callback } = await authorize(client);
        callback.searchParams.delete("state");
        const res = await client.request(callback.href, { headers: { accept: "application/json" } });
        expect(res.status).toBe(400);
        expect(res.headers.get("content-type")).toMatch(/problem\+json/);
        expect((await res.json()).code).toBe("ERR_OAUTH_STATE_MISSING");
      });

      it("a replayed callback", async () => {
        const client = browser();
        const { callback } = await authorize(client);
        expect((await client.request(callback.href)).status).toBe(302);
        const again = await client.request(callback.href);
        expect(errorOf(again)).toBe("ERR_OAUTH_STATE_USED");
      });

      it("a used code presented again under a fresh state (code reuse)", async () => {
        const client = browser();
        const first = await authorize(client);
        expect(errorOf(await client.request(first.callback.href))).toBeNull();
        const second = await authorize(client, "alice");
        const forged = new URL(second.callback);
        forged.searchParams.set("code", first.callback.searchParams.get("code")!);
        const res = await client.request(forged.href);
        expect(errorOf(res)).toBe("ERR_OAUTH_CODE_INVALID");
      });

      it("a callback in a browser that did not start the sign-in", async () => {
        const victim = browser();
        const { callback } = await authorize(victim);
        const attacker = browser();
        expect(errorOf(await attacker.request(callback.href))).toBe("ERR_OAUTH_BROWSER_MISMATCH");
        // Even one that started a sign-in of its own.
        await attacker.request(`${server.url}/auth/oauth/dev`);
        expect(errorOf(await attacker.request(callback.href))).toBe("ERR_OAUTH_BROWSER_MISMATCH");
        expect(await session(attacker)).toBeNull();
        // The victim's callback still works: the attempts did not burn it.
        expect(errorOf(await victim.request(callback.href))).toBeNull();
      });

      it("an error answer from the provider (the person cancelled)", async () => {
        const client = browser();
        const start = await client.request(`${server.url}/auth/oauth/dev`);
        const state = new URL(start.headers.get("location")!).searchParams.get("state")!;
        const res = await client.request(`${server.url}/auth/oauth/dev/callback?error=access_denied&state=${state}`);
        expect(errorOf(res)).toBe("ERR_OAUTH_DENIED");
      });

      for (const mode of ["nonce", "issuer", "audience", "expired", "foreign-key"] as const) {
        it(`an ID token with ${mode === "foreign-key" ? "a signature from another key" : `another ${mode === "expired" ? "expiry (expired)" : mode}`}`, async () => {
          proxy.setMode(mode);
          try {
            const client = browser();
            const { callback } = await authorize(client, "mallory", "proxied");
            const res = await client.request(callback.href);
            expect(errorOf(res)).toBe("ERR_OAUTH_ID_TOKEN_INVALID");
            expect(await session(client)).toBeNull();
          } finally {
            proxy.setMode("none");
          }
        });
      }

      it("(control) the same proxy, untouched, signs in", async () => {
        const client = browser();
        const { callback } = await authorize(client, "carol", "proxied");
        expect(errorOf(await client.request(callback.href))).toBeNull();
        expect((await session(client))!.user.source_identifier).toBe("proxied:carol");
      });
    });

    it("answers an unreachable issuer with 503, an unknown provider with 404", async () => {
      const down = await fetch(`${server.url}/auth/oauth/down`, { redirect: "manual" });
      expect([down.status, (await down.json()).code]).toEqual([503, "ERR_OAUTH_PROVIDER_UNAVAILABLE"]);
      const unknown = await fetch(`${server.url}/auth/oauth/nope`, { redirect: "manual" });
      expect([unknown.status, (await unknown.json()).code]).toEqual([404, "ERR_OAUTH_PROVIDER_UNKNOWN"]);
      const list = await (await fetch(`${server.url}/auth/oauth`)).json();
      expect(list.providers.map((p: { id: string }) => p.id)).toEqual(["dev", "proxied", "down"]);
    });

    it("answers 200 fuzzed callbacks with no 5xx and no session", async () => {
      const before = (await db.query<{ n: number }>("SELECT count(*)::int AS n FROM erebus_sessions")).rows[0]!.n;
      const client = browser();
      await client.request(`${server.url}/auth/oauth/dev`);
      await fc.assert(
        fc.asyncProperty(
          fc.dictionary(fc.constantFrom("state", "code", "error", "iss", "session_state", "x"), fc.string({ maxLength: 60 }), { maxKeys: 5 }),
          fc.constantFrom("dev", "proxied", "nope"),
          async (query, id) => {
            const res = await client.request(`${server.url}/auth/oauth/${id}/callback?${new URLSearchParams(query)}`, { headers: { accept: "application/json" } });
            expect(res.status).toBeGreaterThanOrEqual(400);
            expect(res.status).toBeLessThan(500);
          },
        ),
        { numRuns: 200, seed: 4 },
      );
      expect((await db.query<{ n: number }>("SELECT count(*)::int AS n FROM erebus_sessions")).rows[0]!.n).toBe(before);
    });
  });
}

describe("oauthProvider options", () => {
  it("fails at construction with a TypeError naming the misconfigured provider", () => {
    expect(() => oauthProvider({ providers: {} })).toThrow(/name at least one provider/);
    expect(() => oauthProvider({ providers: { google: google({ clientId: "", clientSecret: "s" }) } })).toThrow(/providers\.google \("google"\)\.clientId/);
    expect(() => oauthProvider({ providers: { corp: oidc({ issuer: "not a url", clientId: "c" }) } })).toThrow(/providers\.corp \("corp"\)\.issuer/);
    expect(() => oauthProvider({ providers: { corp: oidc({ issuer: "https://id.example", clientId: "c", scopes: ["email"] }) } })).toThrow(/must include openid/);
    expect(() => oauthProvider({ providers: { corp: oidc({ issuer: "https://id.example", clientId: "c" }) }, refreshTokenKey: "short" })).toThrow(/refreshTokenKey/);
    expect(() => oauthProvider({ providers: { "Bad Id": oidc({ issuer: "https://id.example", clientId: "c" }) } })).toThrow(TypeError);
  });
});
