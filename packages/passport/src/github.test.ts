import { createHash } from "node:crypto";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import express, { type RequestHandler } from "express";
// @ts-expect-error -- passport-github2 ships no types (tests are not type-checked by tsc -b)
import { Strategy as GitHubStrategy } from "passport-github2";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { createAuth, silentLogger, type Database, type ErebusAuth } from "@erebus/core";
import { engines, listen, tableRowCounts, type Running } from "@erebus/core/testing";
import { browser } from "../../../test/oidc.js";
import { passportProvider } from "./index.js";

/**
 * GitHub cannot be reached from the test machine: this server speaks its authorize, token, /user and
 * /user/emails endpoints as its documentation describes them, checking the client secret, the
 * redirect URI and the PKCE verifier (S256) like the real one (as provider-oauth's presets test does).
 */
async function startFakeGitHub() {
  const codes = new Map<string, { challenge: string; redirect: string }>();
  const tokens = new Set<string>();
  let emails: unknown[] = [];
  const server = createServer(async (req, res) => {
    const url = new URL(req.url!, "http://x");
    const json = (status: number, body: unknown) => {
      res.writeHead(status, { "content-type": "application/json" });
      res.end(JSON.stringify(body));
    };
    if (req.method === "GET" && url.pathname === "/login/oauth/authorize") {
      if (url.searchParams.get("code_challenge_method") !== "S256" || !url.searchParams.get("state")) return json(400, { error: "invalid_request" });
      const code = `code-${codes.size + 1}`;
      codes.set(code, { challenge: url.searchParams.get("code_challenge")!, redirect: url.searchParams.get("redirect_uri")! });
      const back = new URL(url.searchParams.get("redirect_uri")!);
      back.searchParams.set("code", code);
      back.searchParams.set("state", url.searchParams.get("state")!);
      res.writeHead(302, { location: back.href });
      return res.end();
    }
    if (req.method === "POST" && url.pathname === "/login/oauth/access_token") {
      let raw = "";
      for await (const chunk of req) raw += chunk;
      const form = new URLSearchParams(raw);
      const grant = codes.get(form.get("code") ?? "");
      const challenge = createHash("sha256").update(form.get("code_verifier") ?? "").digest("base64url");
      if (!grant || grant.challenge !== challenge || grant.redirect !== form.get("redirect_uri") || form.get("client_secret") !== "fake-secret") return json(400, { error: "invalid_grant" });
      codes.delete(form.get("code")!);
      const token = `token-${tokens.size + 1}`;
      tokens.add(token);
      return json(200, { access_token: token, token_type: "bearer", scope: "read:user,user:email" });
    }
    if (!tokens.has((req.headers.authorization ?? "").replace(/^(Bearer|token) /i, ""))) return json(401, { message: "Bad credentials" });
    if (url.pathname === "/api/v3/user") return json(200, { id: 583231, login: "octocat", name: "The Octocat\u0000", avatar_url: "https://avatars.example/u/583231", email: "public@example.com" });
    if (url.pathname === "/api/v3/user/emails") return json(200, emails);
    json(404, {});
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    setEmails: (next: unknown[]) => (emails = next),
    close: () => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); }),
  };
}

for (const engine of engines({ postgresUrl: inject("postgresUrl") })) {
  describe(`passport-github2 against a GitHub stand-in on ${engine.name}`, () => {
    let db: Database;
    let server: Running;
    let fake: Awaited<ReturnType<typeof startFakeGitHub>>;
    let inner: RequestHandler = (_req, _res, next) => next();
    let auth: ErebusAuth | undefined;

    beforeAll(async () => {
      fake = await startFakeGitHub();
      const app = express();
      app.use((req, res, next) => inner(req, res, next));
      server = await listen(app);
      db = await engine.create();
      const github = (raw: boolean) =>
        new GitHubStrategy(
          {
            clientID: "fake-client",
            clientSecret: "fake-secret",
            callbackURL: "/auth/passport/github/callback",
            authorizationURL: `${fake.url}/login/oauth/authorize`,
            tokenURL: `${fake.url}/login/oauth/access_token`,
            userProfileURL: `${fake.url}/api/v3/user`,
            userEmailURL: `${fake.url}/api/v3/user/emails`,
            scope: ["user:email"],
            pkce: true,
            state: true,
            // Keeps GitHub's `verified` and `primary` flags on profile.emails (without it, passport-github2
            // picks the primary address and drops the flags).
            allRawEmails: raw,
          },
          (_at: string, _rt: string, profile: unknown, done: (e: unknown, u: unknown) => void) => done(null, profile),
        );
      auth = createAuth({
        database: db,
        baseURL: server.url,
        migrate: true,
        logger: silentLogger,
        providers: [passportProvider({ id: "github", strategy: github(true) }), passportProvider({ id: "githubplain", strategy: github(false) })],
      });
      await auth.ready;
      const router = express.Router();
      router.use("/auth", auth.router);
      inner = router;
    });
    afterAll(async () => {
      // auth.close(): the session cache first, then the database (closing only the database can leave the cache's LISTEN holding the pool).
      await server?.close();
      await fake?.close();
      await (auth ? auth.close() : db?.close());
    });

    /** A whole sign-in in a new browser: the session's user. */
    async function signIn(id = "github") {
      const client = browser();
      const start = await client.request(`${server.url}/auth/passport/${id}`);
      const { res, url } = await client.follow(start.headers.get("location")!, (u) => u.origin === server.url && u.pathname.endsWith("/callback"));
      expect(res.status).toBe(302);
      const done = await client.request(url.href);
      expect(done.status).toBe(302);
      const me = await client.request(`${server.url}/auth/session`);
      expect(me.status).toBe(200);
      return { client, callback: url, user: ((await me.json()) as { user: Record<string, unknown> }).user };
    }

    it("signs in as oauth github:<id> (the same identity provider-oauth's github makes), the email only when primary and verified", async () => {
      fake.setEmails([
        { email: "old@example.com", primary: false, verified: true },
        { email: "octocat@github.example", primary: true, verified: true },
      ]);
      const first = await signIn();
      expect(first.user).toMatchObject({
        network: "oauth",
        source_identifier: "github:583231",
        email: "octocat@github.example",
        // A display name GitHub returned with a NUL is dropped, not a failed sign-in.
        source_type: { type: "oauth", provider: "github", user_id: "583231", metadata: { via: "passport", username: "octocat", picture: "https://avatars.example/u/583231" } },
      });
      expect((first.user.source_type as { metadata: Record<string, unknown> }).metadata.name).toBeUndefined();
      await db.query("UPDATE user_references SET email = NULL WHERE id = $1", [first.user.id]);
      fake.setEmails([{ email: "unverified@github.example", primary: true, verified: false }, { email: "other@example.com", primary: false, verified: true }]);
      const again = await signIn();
      expect(again.user).toMatchObject({ id: first.user.id, email: null });
    });

    it("without allRawEmails passport-github2 drops the verified flag: no email is written", async () => {
      fake.setEmails([{ email: "octocat@github.example", primary: true, verified: false }]);
      const { user } = await signIn("githubplain");
      expect(user).toMatchObject({ source_identifier: "githubplain:583231", email: null });
    });

    it("attack: the callback replayed, and the callback in another browser, are refused and write nothing", async () => {
      const { client, callback } = await signIn();
      const before = await tableRowCounts(db, { ignore: ["erebus_rate_limits"] });
      const replay = await client.request(callback.href, { headers: { accept: "application/json" } });
      expect(((await replay.json()) as { code: string }).code).toBe("ERR_PASSPORT_STATE_USED");
      const victim = browser();
      const start = await victim.request(`${server.url}/auth/passport/github`);
      const { url } = await victim.follow(start.headers.get("location")!, (u) => u.origin === server.url && u.pathname.endsWith("/callback"));
      const stolen = await browser().request(url.href, { headers: { accept: "application/json" } });
      expect(stolen.status).toBe(401);
      expect(((await stolen.json()) as { code: string }).code).toBe("ERR_PASSPORT_BROWSER_MISMATCH");
      expect({ ...(await tableRowCounts(db, { ignore: ["erebus_rate_limits"] })), erebus_verifications: 0 }).toEqual({ ...before, erebus_verifications: 0 });
    });
  });
}
