import { createHash } from "node:crypto";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import express, { type RequestHandler } from "express";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createAuth, silentLogger, type Database } from "@erebus/core";
import { engines } from "../../../test/engines.js";
import { listen, type Running } from "../../../test/http.js";
import { browser } from "../../../test/oidc.js";
import { oauthProvider } from "./oauth-provider.js";
import { discord, github, microsoft } from "./presets.js";

/**
 * GitHub and Discord cannot be reached from the test machine; this server speaks their authorize,
 * token and user endpoints as their documentation describes them, checking the client credentials,
 * the redirect URI and the PKCE verifier like the real ones.
 */
async function startFakeProviders() {
  const codes = new Map<string, { challenge: string; redirect: string; user: string }>();
  const tokens = new Map<string, string>();
  let githubEmails: unknown[] = [];
  let discordVerified = true;
  const server = createServer(async (req, res) => {
    const url = new URL(req.url!, "http://x");
    const json = (status: number, body: unknown) => {
      res.writeHead(status, { "content-type": "application/json" });
      res.end(JSON.stringify(body));
    };
    if (req.method === "GET" && (url.pathname === "/login/oauth/authorize" || url.pathname === "/oauth2/authorize")) {
      if (url.searchParams.get("code_challenge_method") !== "S256" || !url.searchParams.get("state")) return json(400, { error: "invalid_request" });
      const code = `code-${codes.size + 1}`;
      codes.set(code, { challenge: url.searchParams.get("code_challenge")!, redirect: url.searchParams.get("redirect_uri")!, user: url.searchParams.get("login_hint") ?? "octo" });
      const back = new URL(url.searchParams.get("redirect_uri")!);
      back.searchParams.set("code", code);
      back.searchParams.set("state", url.searchParams.get("state")!);
      res.writeHead(302, { location: back.href });
      return res.end();
    }
    if (req.method === "POST" && (url.pathname === "/login/oauth/access_token" || url.pathname === "/api/oauth2/token")) {
      let raw = "";
      for await (const chunk of req) raw += chunk;
      const form = new URLSearchParams(raw);
      const grant = codes.get(form.get("code") ?? "");
      const verifier = form.get("code_verifier") ?? "";
      const challenge = createHash("sha256").update(verifier).digest("base64url");
      if (!grant || grant.challenge !== challenge || grant.redirect !== form.get("redirect_uri") || form.get("client_secret") !== "fake-secret") {
        return json(400, { error: "invalid_grant" });
      }
      codes.delete(form.get("code")!);
      const token = `token-${tokens.size + 1}`;
      tokens.set(token, grant.user);
      return json(200, { access_token: token, token_type: "bearer", scope: "read:user user:email" });
    }
    const user = tokens.get((req.headers.authorization ?? "").replace(/^(Bearer|token) /i, ""));
    if (!user) return json(401, { message: "Bad credentials" });
    if (url.pathname === "/api/v3/user") return json(200, { id: 583231, login: "octocat", name: "The Octocat", avatar_url: "https://avatars.example/u/583231" });
    if (url.pathname === "/api/v3/user/emails") return json(200, githubEmails);
    if (url.pathname === "/api/users/@me") return json(200, { id: "80351110224678912", username: "nelly", global_name: "Nelly", email: "nelly@discord.example", verified: discordVerified });
    json(404, {});
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    setGithubEmails: (emails: unknown[]) => (githubEmails = emails),
    setDiscordVerified: (value: boolean) => (discordVerified = value),
    close: () => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); }),
  };
}

const engine = engines()[0]!;
describe("GitHub and Discord presets (OAuth 2.0, not OIDC) against local stand-ins", () => {
  let db: Database;
  let server: Running;
  let fake: Awaited<ReturnType<typeof startFakeProviders>>;
  let inner: RequestHandler = (_req, _res, next) => next();

  beforeAll(async () => {
    fake = await startFakeProviders();
    const app = express();
    app.use((req, res, next) => inner(req, res, next));
    server = await listen(app);
    db = await engine.create();
    const auth = createAuth({
      database: db,
      baseURL: server.url,
      logger: silentLogger,
      migrate: true,
      providers: [
        oauthProvider({
          providers: {
            github: github({ clientId: "fake-client", clientSecret: "fake-secret", baseUrl: fake.url, apiUrl: `${fake.url}/api/v3` }),
            discord: discord({ clientId: "fake-client", clientSecret: "fake-secret", baseUrl: fake.url }),
          },
        }),
      ],
    });
    await auth.ready;
    const router = express.Router();
    router.use("/auth", auth.router);
    inner = router;
  });
  afterAll(async () => {
    await server?.close();
    await fake?.close();
    await db?.close();
  });

  async function signIn(id: "github" | "discord") {
    const client = browser();
    const { res } = await client.follow(`${server.url}/auth/oauth/${id}`, (u) => u.origin === server.url && u.pathname === "/");
    expect(res.status).toBe(302);
    const me = await client.request(`${server.url}/auth/session`);
    return (await me.json()) as { user: Record<string, unknown> };
  }

  it("GitHub: the user from /user, the email only when primary and verified", async () => {
    fake.setGithubEmails([
      { email: "old@example.com", primary: false, verified: true },
      { email: "octocat@github.example", primary: true, verified: true },
    ]);
    const first = await signIn("github");
    expect(first.user).toMatchObject({
      network: "oauth",
      source_identifier: "github:583231",
      email: "octocat@github.example",
      source_type: { type: "oauth", provider: "github", user_id: "583231", metadata: { issuer: fake.url, username: "octocat", name: "The Octocat" } },
    });
    await db.query("UPDATE user_references SET email = NULL WHERE id = $1", [first.user.id]);
    fake.setGithubEmails([{ email: "unverified@github.example", primary: true, verified: false }, { email: "other@example.com", primary: false, verified: true }]);
    const again = await signIn("github");
    expect(again.user).toMatchObject({ id: first.user.id, email: null });
  });

  it("Discord: the email only when verified", async () => {
    fake.setDiscordVerified(false);
    expect((await signIn("discord")).user).toMatchObject({ source_identifier: "discord:80351110224678912", email: null, source_type: { metadata: { username: "nelly" } } });
    fake.setDiscordVerified(true);
    expect((await signIn("discord")).user).toMatchObject({ email: "nelly@discord.example" });
  });

  it("Microsoft: the tenant goes into the issuer openid-client discovers from", () => {
    expect(microsoft({ clientId: "c", clientSecret: "s" }).issuer).toBe("https://login.microsoftonline.com/common/v2.0");
    expect(microsoft({ clientId: "c", clientSecret: "s", tenant: "organizations" }).issuer).toBe("https://login.microsoftonline.com/organizations/v2.0");
    expect(() => microsoft({ clientId: "c", clientSecret: "s", tenant: "../evil" })).toThrow(TypeError);
  });
});
