import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { networkInterfaces, tmpdir } from "node:os";
import { join } from "node:path";
import { exportJWK, generateKeyPair, SignJWT, decodeJwt, type JWK } from "jose";
import Provider from "oidc-provider";

const listenOn = (server: Server) =>
  new Promise<number>((resolve) => server.listen(0, "127.0.0.1", () => resolve((server.address() as AddressInfo).port)));

export interface TestOp {
  issuer: string;
  clientId: string;
  clientSecret: string;
  privateJwk: JWK;
  close(): Promise<void>;
}

/**
 * A real OpenID Provider (node-oidc-provider) on 127.0.0.1 with its development login and consent
 * pages: any login name works, the password is ignored. `email_verified` is false for the account
 * named "unverified".
 */
export async function startOpenIdProvider(redirectUris: string[]): Promise<TestOp> {
  const { privateKey } = await generateKeyPair("RS256", { extractable: true });
  const privateJwk = { ...(await exportJWK(privateKey)), kid: "test-key-1", alg: "RS256", use: "sig" };
  const server = createServer();
  const port = await listenOn(server);
  const issuer = `http://127.0.0.1:${port}`;
  const clientId = "erebus-test-client";
  const clientSecret = "erebus-test-secret-0123456789";
  const provider = new Provider(issuer, {
    clients: [{ client_id: clientId, client_secret: clientSecret, redirect_uris: redirectUris, grant_types: ["authorization_code", "refresh_token"], response_types: ["code"] }],
    jwks: { keys: [privateJwk] },
    cookies: { keys: ["erebus-test-cookie-key-0123456789"] },
    claims: { openid: ["sub"], email: ["email", "email_verified"], profile: ["name", "preferred_username"] },
    scopes: ["openid", "email", "profile", "offline_access"],
    features: { devInteractions: { enabled: true } },
    issueRefreshToken: async () => true,
    async findAccount(_ctx: unknown, id: string) {
      return {
        accountId: id,
        async claims() {
          return { sub: id, email: `${id}@example.com`, email_verified: id !== "unverified", name: `User ${id}`, preferred_username: id };
        },
      };
    },
  } as never);
  server.on("request", provider.callback());
  return {
    issuer,
    clientId,
    clientSecret,
    privateJwk,
    close: () => new Promise((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
}

export type IdTokenMutation =
  | "none"
  | "nonce"
  | "issuer"
  | "audience"
  | "expired"
  | "foreign-key"
  /** Validly signed, but with characters PostgreSQL refuses in a claim: NUL or a lone surrogate. */
  | "sub-nul"
  | "sub-surrogate"
  | "name-nul"
  | "name-surrogate"
  | "email-nul";

/**
 * A token endpoint in front of the OP's that can rewrite the ID token it returns, re-signed with the
 * OP's own key (or another key): how a tampered or mixed-up token response looks to the client.
 */
export async function startTokenProxy(op: TestOp) {
  let mode: IdTokenMutation = "none";
  const { privateKey: foreignKey } = await generateKeyPair("RS256");
  const { importJWK } = await import("jose");
  const opKey = await importJWK(op.privateJwk, "RS256");
  const server = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const upstream = await fetch(`${op.issuer}/token`, {
      method: "POST",
      headers: { "content-type": String(req.headers["content-type"]), authorization: String(req.headers.authorization ?? ""), accept: "application/json" },
      body: Buffer.concat(chunks),
    });
    const body = (await upstream.json()) as Record<string, unknown>;
    if (upstream.ok && typeof body.id_token === "string" && mode !== "none") {
      const claims = decodeJwt(body.id_token);
      const now = Math.floor(Date.now() / 1000);
      if (mode === "nonce") claims.nonce = "not-the-nonce-this-browser-was-given";
      if (mode === "issuer") claims.iss = "http://127.0.0.1:1/another-issuer";
      if (mode === "audience") claims.aud = "another-client";
      if (mode === "expired") Object.assign(claims, { iat: now - 7200, exp: now - 3600 });
      if (mode === "sub-nul") claims.sub = `${claims.sub}\u0000x`;
      if (mode === "sub-surrogate") claims.sub = `${claims.sub}\ud800`;
      if (mode === "name-nul") Object.assign(claims, { name: "Mallory\u0000", preferred_username: "mal\u0000lory", picture: "https://pic.example/\u0000", email: `${claims.sub}@example.com`, email_verified: true });
      if (mode === "name-surrogate") Object.assign(claims, { name: "Mallory\udfff", preferred_username: "\ud800mal", picture: "javascript:alert(document.domain)", email: `${claims.sub}@example.com`, email_verified: true });
      if (mode === "email-nul") Object.assign(claims, { email: `${claims.sub}\u0000@example.com`, email_verified: true });
      body.id_token = await new SignJWT(claims)
        .setProtectedHeader({ alg: "RS256", kid: "test-key-1" })
        .sign(mode === "foreign-key" ? foreignKey : opKey);
    }
    res.writeHead(upstream.status, { "content-type": "application/json" });
    res.end(JSON.stringify(body));
  });
  const port = await listenOn(server);
  return {
    tokenEndpoint: `http://127.0.0.1:${port}/token`,
    setMode: (next: IdTokenMutation) => {
      mode = next;
    },
    close: () => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
}

/** A cookie-keeping HTTP client that follows redirects by hand, as a browser would. */
export function browser() {
  const jar = new Map<string, Map<string, string>>();
  const cookieHeader = (url: URL) => [...(jar.get(url.host) ?? new Map())].map(([k, v]) => `${k}=${v}`).join("; ");
  const keep = (url: URL, res: Response) => {
    const cookies = jar.get(url.host) ?? new Map<string, string>();
    for (const header of res.headers.getSetCookie()) {
      const [pair] = header.split(";");
      const index = pair!.indexOf("=");
      const name = pair!.slice(0, index);
      const value = pair!.slice(index + 1);
      if (/max-age=0|expires=thu, 01 jan 1970/i.test(header) || value === "") cookies.delete(name);
      else cookies.set(name, value);
    }
    jar.set(url.host, cookies);
  };
  async function request(url: string, init: { method?: string; form?: Record<string, string>; headers?: Record<string, string> } = {}) {
    const target = new URL(url);
    const res = await fetch(target, {
      method: init.method ?? (init.form ? "POST" : "GET"),
      redirect: "manual",
      headers: {
        cookie: cookieHeader(target),
        ...(init.form ? { "content-type": "application/x-www-form-urlencoded", origin: target.origin } : {}),
        ...init.headers,
      },
      ...(init.form ? { body: new URLSearchParams(init.form).toString() } : {}),
    });
    keep(target, res);
    return res;
  }
  return {
    jar,
    request,
    /** GETs `url` and follows redirects until a response that is not one, or until `stop(url)` says so. */
    async follow(url: string, stop: (next: URL) => boolean = () => false): Promise<{ res: Response; url: URL }> {
      let current = new URL(url);
      for (let hops = 0; hops < 20; hops++) {
        const res = await request(current.href);
        const location = res.headers.get("location");
        if (res.status < 300 || res.status >= 400 || !location) return { res, url: current };
        const next = new URL(location, current);
        if (stop(next)) return { res, url: next };
        current = next;
      }
      throw new Error("too many redirects");
    },
  };
}

/** Drives node-oidc-provider's development login and consent pages for `login`. */
export async function loginAndConsent(client: ReturnType<typeof browser>, authorizeUrl: string, login: string, isCallback: (u: URL) => boolean): Promise<URL> {
  let { res, url } = await client.follow(authorizeUrl, isCallback);
  for (let step = 0; step < 4 && !isCallback(url); step++) {
    const html = await res.text();
    const action = /<form[^>]*action="([^"]+)"/.exec(html)?.[1];
    if (!action) throw new Error(`no form on ${url.href}: ${html.slice(0, 200)}`);
    const uid = /name="uid" value="([^"]+)"/.exec(html)?.[1];
    const form: Record<string, string> = html.includes('name="login"') ? { login, password: "any" } : {};
    if (uid) form.uid = uid;
    if (html.includes('name="prompt"')) form.prompt = /name="prompt" value="([^"]+)"/.exec(html)![1]!;
    const posted = await client.request(new URL(action, url).href, { form });
    const location = posted.headers.get("location");
    if (!location) throw new Error(`interaction POST answered ${posted.status}`);
    const next = new URL(location, url);
    if (isCallback(next)) return next;
    ({ res, url } = await client.follow(next.href, isCallback));
  }
  if (!isCallback(url)) throw new Error(`never reached the callback (at ${url.href})`);
  return url;
}

/**
 * The first non-loopback IPv4 address of this machine (a "remote" host that tests can still reach),
 * or undefined (the caller then skips), which CI=true never lets happen.
 */
export function nonLoopbackAddress(): string | undefined {
  for (const list of Object.values(networkInterfaces())) {
    for (const entry of list ?? []) if (entry.family === "IPv4" && !entry.internal) return entry.address;
  }
  if (process.env.CI === "true") throw new Error("CI=true: no non-loopback IPv4 address, which the OAuth https-enforcement tests need as a remote host");
  return undefined;
}

/**
 * A plain-http server on a non-loopback address of this machine that answers every request with
 * 404 and remembers it: what an attacker's host on the network would see if a client talked to it.
 */
export async function startRecordingServer(address: string) {
  const requests: { method: string; url: string; body: string }[] = [];
  const server = createServer(async (req, res) => {
    let body = "";
    for await (const chunk of req) body += chunk;
    requests.push({ method: req.method ?? "", url: req.url ?? "", body });
    res.writeHead(404, { "content-type": "application/json" });
    res.end("{}");
  });
  const port = await new Promise<number>((resolve) => server.listen(0, address, () => resolve((server.address() as AddressInfo).port)));
  return {
    url: `http://${address}:${port}`,
    requests,
    close: () => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
}

/**
 * An issuer on 127.0.0.1 whose discovery document is the real OP's, with its own `issuer` and the
 * fields in `overrides` replaced: a loopback issuer whose metadata sends the client elsewhere.
 */
export async function startDiscoveryProxy(op: TestOp, overrides: Record<string, unknown>) {
  const server = createServer(async (req, res) => {
    if (req.url !== "/.well-known/openid-configuration") {
      res.writeHead(404);
      return res.end();
    }
    const upstream = (await (await fetch(`${op.issuer}/.well-known/openid-configuration`)).json()) as Record<string, unknown>;
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify({ ...upstream, issuer, ...overrides }));
  });
  const port = await listenOn(server);
  const issuer = `http://127.0.0.1:${port}`;
  return {
    issuer,
    close: () => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
}

/**
 * A self-signed certificate (openssl) for `names`, for https servers on loopback that a browser
 * launched with `ignoreHTTPSErrors` talks to; undefined when openssl is not installed (the caller
 * then skips), which CI=true never lets happen: .ci/run installs openssl for this.
 */
export function selfSignedCertificate(names: string[]): { key: string; cert: string } | undefined {
  const dir = mkdtempSync(join(tmpdir(), "erebus-tls-"));
  try {
    execFileSync("openssl", [
      "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "1",
      "-keyout", join(dir, "key.pem"), "-out", join(dir, "cert.pem"),
      "-subj", `/CN=${names[0]}`, "-addext", `subjectAltName=${names.map((n) => `DNS:${n}`).join(",")}`,
    ], { stdio: "ignore" });
    return { key: readFileSync(join(dir, "key.pem"), "utf8"), cert: readFileSync(join(dir, "cert.pem"), "utf8") };
  } catch (error) {
    if (process.env.CI === "true") throw new Error("CI=true: openssl could not make a test certificate (apt-get install -y openssl)", { cause: error });
    return undefined;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
