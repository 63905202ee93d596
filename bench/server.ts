// One scenario's HTTP server, run as its own process by bench/run.ts so its CPU time can be read from
// /proc on its own:  node --import tsx bench/server.ts <scenario> <database url>
// Prints one line `READY {"port":…,"path":…,"headers":{…}}` once it answers, and serves until killed.
// Every scenario answers the same JSON from the same kind of route; what differs is who checks the caller.
import { createHash, randomBytes } from "node:crypto";
import express, { type Express } from "express";
import pg from "pg";
import { createAuth, silentLogger } from "@erebus/core";
import { apiKeyProvider } from "@erebus/provider-apikey";
import { walletProvider } from "@erebus/provider-wallet";

export interface Ready {
  port: number;
  path: string;
  headers: Record<string, string>;
}

const [scenario, databaseUrl] = process.argv.slice(2) as [string, string];
const BASE = "http://127.0.0.1";

async function erebus(kind: "cookie" | "bearer" | "apikey" | "apikey-nocache" | "wallet"): Promise<{ app: Express; headers: Record<string, string> }> {
  const keys = apiKeyProvider({ pepper: "bench-pepper-0123456789abcdef0123456789", cacheTtl: kind === "apikey-nocache" ? 0 : 10 });
  const wallet = walletProvider({ rateLimit: { nonce: 1_000_000, verify: 1_000_000 } });
  const auth = createAuth({
    database: databaseUrl,
    baseURL: BASE,
    providers: kind === "wallet" ? [wallet] : [keys],
    migrate: true,
    logger: silentLogger,
    production: false,
  });
  await auth.ready;
  const app = express();
  app.disable("x-powered-by");
  if (kind === "wallet") {
    // BENCH_CLIENT_ADDRESSES=1: each sign-in client is its own address (X-Forwarded-For from the
    // loopback proxy it pretends to be), so per-address limit counters are not one shared row.
    if (process.env.BENCH_CLIENT_ADDRESSES === "1") app.set("trust proxy", "loopback");
    app.use("/auth", auth.router);
    return { app, headers: {} };
  }
  if (kind === "apikey" || kind === "apikey-nocache") {
    const { key } = await keys.keys(auth).create({ name: "bench", scopes: ["read"], ownerId: null, createdBy: "bench" });
    app.get("/api/data", auth.requireUser(), (req, res) => res.json({ ok: true, user: req.auth!.user.id }));
    return { app, headers: { "x-api-key": key } };
  }
  const user = await auth.api.registerSystemAgent({ agentId: "bench", agentType: "bench", capabilities: [] });
  const { token } = await auth.api.createSession(user.id);
  app.get("/api/data", auth.requireUser(), (req, res) => res.json({ ok: true, user: req.auth!.user.id }));
  return { app, headers: kind === "cookie" ? { cookie: `erebus_session=${token}` } : { authorization: `Bearer ${token}` } };
}

async function betterAuthApp(kind: "session" | "session-cookie-cache" | "apikey" | "siwe"): Promise<{ app: Express; headers: Record<string, string> }> {
  const { betterAuth } = await import("better-auth");
  const { getMigrations } = await import("better-auth/db/migration");
  const { toNodeHandler, fromNodeHeaders } = await import("better-auth/node");
  const { siwe } = await import("better-auth/plugins");
  const { apiKey } = await import("@better-auth/api-key");
  const { verifyMessage } = await import("viem");
  const options = {
    database: new pg.Pool({ connectionString: databaseUrl, max: 10 }),
    baseURL: BASE,
    secret: "bench-secret-0123456789abcdef0123456789abcdef",
    emailAndPassword: { enabled: true },
    rateLimit: { enabled: false },
    telemetry: { enabled: false },
    logger: { disabled: true },
    session: kind === "session-cookie-cache" ? { cookieCache: { enabled: true, maxAge: 300 } } : {},
    plugins: [
      apiKey(),
      // As the plugin's documentation sets it up: a random nonce, viem's verifyMessage.
      siwe({
        domain: "127.0.0.1",
        anonymous: true,
        getNonce: async () => randomBytes(16).toString("hex"),
        verifyMessage: async ({ message, signature, address }) =>
          verifyMessage({ address: address as `0x${string}`, message, signature: signature as `0x${string}` }),
      }),
    ],
  };
  const auth = betterAuth(options as never) as ReturnType<typeof betterAuth> & { api: Record<string, (input: unknown) => Promise<unknown>> };
  const { runMigrations } = await getMigrations(auth.options);
  await runMigrations();
  const app = express();
  app.disable("x-powered-by");
  app.all("/api/auth/{*rest}", toNodeHandler(auth));
  if (kind === "siwe") return { app, headers: {} };
  const signUp = (await auth.api.signUpEmail({ body: { email: `bench-${randomBytes(4).toString("hex")}@example.com`, password: "bench-password-123", name: "bench" }, asResponse: true })) as Response;
  const cookie = signUp.headers.getSetCookie().map((c) => c.split(";")[0]).join("; ");
  const { user } = (await signUp.json()) as { user: { id: string } };
  if (kind === "apikey") {
    const created = (await auth.api.createApiKey({ body: { userId: user.id, rateLimitEnabled: false } })) as { key: string };
    app.get("/api/data", async (req, res) => {
      const result = (await auth.api.verifyApiKey({ body: { key: String(req.headers["x-api-key"] ?? "") } })) as { valid: boolean; key: { userId: string } | null };
      if (!result.valid) return void res.status(401).json({ error: "unauthorized" });
      res.json({ ok: true, user: result.key!.userId });
    });
    return { app, headers: { "x-api-key": created.key } };
  }
  app.get("/api/data", async (req, res) => {
    const session = (await auth.api.getSession({ headers: fromNodeHeaders(req.headers) })) as { user: { id: string } } | null;
    if (!session) return void res.status(401).json({ error: "unauthorized" });
    res.json({ ok: true, user: session.user.id });
  });
  return { app, headers: { cookie } };
}

async function passportApp(): Promise<{ app: Express; headers: Record<string, string> }> {
  const { default: passport } = await import("passport");
  const { HeaderAPIKeyStrategy } = (await import("passport-headerapikey")) as unknown as { HeaderAPIKeyStrategy: new (...args: unknown[]) => passport.Strategy };
  const pool = new pg.Pool({ connectionString: databaseUrl, max: 10 });
  await pool.query("CREATE TABLE api_keys (key_hash TEXT PRIMARY KEY, user_id TEXT NOT NULL, scopes TEXT[] NOT NULL)");
  const key = randomBytes(24).toString("base64url");
  const sha = (value: string) => createHash("sha256").update(value).digest("hex");
  await pool.query("INSERT INTO api_keys VALUES ($1, 'bench-user', '{read}')", [sha(key)]);
  passport.use(
    new HeaderAPIKeyStrategy({ header: "X-API-Key", prefix: "" }, false, (apikey: string, done: (error: unknown, user?: unknown) => void) => {
      pool.query("SELECT user_id, scopes FROM api_keys WHERE key_hash = $1", [sha(apikey)]).then(
        ({ rows }) => done(null, rows[0] ?? false),
        (error) => done(error),
      );
    }),
  );
  const app = express();
  app.disable("x-powered-by");
  app.use(passport.initialize());
  app.get("/api/data", passport.authenticate("headerapikey", { session: false }), (req, res) => res.json({ ok: true, user: (req.user as { user_id: string }).user_id }));
  return { app, headers: { "x-api-key": key } };
}

async function expressSessionApp(): Promise<{ app: Express; headers: Record<string, string> }> {
  const { default: session } = await import("express-session");
  const { default: connectPg } = await import("connect-pg-simple");
  const Store = connectPg(session);
  const pool = new pg.Pool({ connectionString: databaseUrl, max: 10 });
  const app = express();
  app.disable("x-powered-by");
  app.use(session({ store: new Store({ pool, createTableIfMissing: true }), secret: "bench-secret-0123456789", resave: false, saveUninitialized: false, cookie: { httpOnly: true, sameSite: "lax" } }));
  app.post("/login", (req, res) => {
    (req.session as unknown as { userId: string }).userId = "bench-user";
    res.json({ ok: true });
  });
  app.get("/api/data", (req, res) => {
    const userId = (req.session as unknown as { userId?: string }).userId;
    if (!userId) return void res.status(401).json({ error: "unauthorized" });
    res.json({ ok: true, user: userId });
  });
  return { app, headers: {} };
}

async function main(): Promise<void> {
  let built: { app: Express; headers: Record<string, string> };
  switch (scenario) {
    case "bare": {
      const app = express();
      app.disable("x-powered-by");
      app.get("/api/data", (_req, res) => res.json({ ok: true, user: "nobody" }));
      built = { app, headers: {} };
      break;
    }
    case "erebus-cookie": built = await erebus("cookie"); break;
    case "erebus-bearer": built = await erebus("bearer"); break;
    case "erebus-apikey": built = await erebus("apikey"); break;
    case "erebus-apikey-nocache": built = await erebus("apikey-nocache"); break;
    case "erebus-wallet": built = await erebus("wallet"); break;
    case "better-auth-session": built = await betterAuthApp("session"); break;
    case "better-auth-session-cookie-cache": built = await betterAuthApp("session-cookie-cache"); break;
    case "better-auth-apikey": built = await betterAuthApp("apikey"); break;
    case "better-auth-siwe": built = await betterAuthApp("siwe"); break;
    case "passport-apikey": built = await passportApp(); break;
    case "express-session": built = await expressSessionApp(); break;
    default: throw new Error(`unknown scenario ${scenario}`);
  }
  const server = built.app.listen(0, "127.0.0.1");
  await new Promise<void>((resolve) => server.once("listening", resolve));
  const port = (server.address() as { port: number }).port;
  if (scenario === "express-session") {
    const res = await fetch(`http://127.0.0.1:${port}/login`, { method: "POST" });
    built.headers.cookie = res.headers.getSetCookie().map((c) => c.split(";")[0]).join("; ");
  }
  // One request through the real stack before READY: a scenario that cannot authenticate fails here, not in the numbers.
  if (scenario !== "erebus-wallet" && scenario !== "better-auth-siwe") {
    const res = await fetch(`http://127.0.0.1:${port}/api/data`, { headers: built.headers });
    if (res.status !== 200) throw new Error(`${scenario}: probe answered ${res.status} ${await res.text()}`);
  }
  const ready: Ready = { port, path: "/api/data", headers: built.headers };
  process.stdout.write(`READY ${JSON.stringify(ready)}\n`);
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
