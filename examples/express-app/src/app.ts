import { existsSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import express, { type Express } from "express";
import { createAuth, type Database, type ErebusAuth, type Logger } from "@erebus/core";
import { escapeHtml } from "@erebus/provider-email";
import { signTelegramAuthData } from "@erebus/provider-telegram";
import { apiReference } from "@scalar/express-api-reference";
import { createSyncRelay, postgresCacheSink, type SyncRelay } from "@erebus/sync";
import { assertSafeToServe, isLoopbackHostHeader, type AppConfig } from "./config.js";
import { openDatabase } from "./embedded.js";
import { providersFor } from "./providers.js";

const page = (name: string) => readFileSync(new URL(`../public/${name}`, import.meta.url), "utf8");
const require = createRequire(import.meta.url);
/** The page runs on @erebus/client: its built ES modules, served as they are (no bundler). */
const clientDist = join(dirname(require.resolve("@erebus/client/package.json")), "dist");
/** @simplewebauthn/browser's UMD bundle (a global SimpleWebAuthnBrowser) for the passkey buttons. */
const webauthnScript = join(dirname(require.resolve("@simplewebauthn/browser")), "..", "dist", "bundle", "index.umd.min.js");
/** Scalar's API reference, from its package: the page loads nothing from a CDN. */
const scalarScript = require.resolve("@scalar/api-reference/browser/standalone.js");

/**
 * The example app: Erebus mounted at /auth, `GET /api/me` for signed-in callers, and a page at `/`
 * showing who is signed in. In development (and only on loopback) it also offers a development
 * sign-in (core's test provider) so the session flow can be tried before any real provider is configured.
 */
export async function createApp(config: AppConfig, options: { logger?: Logger; database?: string } = {}): Promise<{ app: Express; auth: ErebusAuth; agentsReady: Promise<void>; close(): Promise<void> }> {
  assertSafeToServe(config);
  const { providers, mailbox, devIdp, devTelegram } = providersFor(config);
  if (config.production && !config.apiKeyPepper) {
    (options.logger ?? console).warn("API_KEY_PEPPER is not set: API keys are stored as plain SHA-256 hashes");
  }

  // A new in-memory database starts from a snapshot instead of initdb (./embedded.ts). Only the
  // main database is waited for: the first request does not need the agents database, and an
  // embedded one opened alongside would only slow the main one down (both run on this thread).
  const auth = createAuth({
    database: await openDatabase(options.database ?? config.databaseUrl),
    baseURL: config.publicUrl,
    basePath: "/auth",
    providers,
    migrate: true,
    production: config.production,
    ...(options.logger ? { logger: options.logger } : {}),
  });
  try {
    await auth.ready;
  } catch (error) {
    await auth.close().catch(() => undefined);
    throw error;
  }

  // The agents database: a read-only copy of user_references, fed by the outbox through a relay.
  // Set up while the app already serves (events wait in the outbox until then); `agentsReady`
  // settles when it is running, or says why not (the server exits then).
  let relay: SyncRelay | undefined;
  let agentsDb: Database | undefined;
  const agentsReady = (async () => {
    if (!config.agentsDatabaseUrl) return;
    agentsDb = await openDatabase(config.agentsDatabaseUrl);
    const sink = postgresCacheSink(agentsDb);
    await sink.migrate();
    relay = createSyncRelay({ source: auth.db, sink, pollInterval: 2000, ...(options.logger ? { logger: options.logger } : {}) });
    relay.start();
  })();
  agentsReady.catch(() => undefined); // its caller handles a failure; this only keeps it from being "unhandled"
  async function close() {
    await agentsReady.catch(() => undefined);
    await relay?.stop();
    await agentsDb?.close();
    await auth.close();
  }

  const app = express();
  app.disable("x-powered-by");
  if (config.development) {
    // Loopback binding keeps other machines out, not a page in the developer's own browser: DNS
    // rebinding points attacker.example at 127.0.0.1, and its script would read /dev/mailbox.json
    // or sign in as anyone with X-Test-Key. Such requests (and a local reverse proxy's) name
    // another host; development helpers answer only requests addressed to a loopback name.
    app.use((req, res, next) => {
      if (isLoopbackHostHeader(req.headers.host)) return next();
      res.status(421).type("application/problem+json").send(
        JSON.stringify({ type: "about:blank", title: "Development helpers answer only on localhost", status: 421, code: "ERR_HOST_NOT_LOOPBACK" }),
      );
    });
  }
  // Mounted before the page's security headers: it serves its own login pages.
  if (devIdp) {
    // Loaded and made without holding up the start (oidc-provider and the IdP's RSA key cost ~0.3 s):
    // its first request waits for it if it is not ready yet.
    const idp = import("./dev-idp.js").then(({ createDevIdp }) => createDevIdp(devIdp));
    idp.catch(() => undefined); // a failure is the answer to its requests
    app.use("/dev/oidc", async (req, res) => (await idp)(req, res));
  }
  if (config.development) {
    // The API reference of GET /auth/openapi.json (Scalar), before the page's CSP: it runs inline scripts.
    app.get("/dev/api/standalone.js", (_req, res) => res.sendFile(scalarScript));
    app.get("/dev/api", apiReference({ url: "/auth/openapi.json", cdn: "/dev/api/standalone.js", pageTitle: "Erebus API reference" }));
  }
  app.use((_req, res, next) => {
    res.setHeader("Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'");
    res.setHeader("X-Content-Type-Options", "nosniff");
    res.setHeader("Referrer-Policy", "same-origin");
    next();
  });

  if (!existsSync(join(clientDist, "index.js"))) throw new Error(`@erebus/client is not built (${clientDist}): run npm run build`);
  app.use("/vendor/erebus-client", express.static(clientDist, { index: false, fallthrough: false }));
  app.get("/vendor/simplewebauthn-browser.js", (_req, res) => res.sendFile(webauthnScript));
  app.use("/auth", auth.router);
  app.use(auth.middleware);

  app.get("/api/me", auth.requireUser(), (req, res) => {
    res.json(req.auth);
  });
  // A route for programs: an API key (or a session) with the "trade" scope. An action, so POST: core
  // checks the origin of state-changing requests that carry the session cookie, never of a GET
  // (a link or an <img> on another site can make one).
  app.post("/api/trade", auth.requireScope("trade"), (req, res) => {
    res.json({ ok: true, tradedBy: req.auth!.user.id, via: req.auth!.via });
  });

  if (devTelegram) {
    // A stand-in for the Telegram Login Widget (development only, no TELEGRAM_BOT_TOKEN): it signs a
    // demo user's login with the development bot's token, as Telegram would for a real bot, and
    // redirects like the widget's data-auth-url. The provider's confirm page and checks are the real ones.
    app.get("/dev/telegram", (_req, res) => {
      const options = devTelegram.users
        .map((u) => `<option value="${escapeHtml(u.id)}">${escapeHtml([u.first_name, u.last_name].filter(Boolean).join(" "))}${u.username ? ` (@${escapeHtml(u.username)})` : ""}</option>`)
        .join("");
      res.setHeader("Cache-Control", "no-store");
      res.type("html").send(
        `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Development Telegram login</title><link rel="stylesheet" href="/styles.css"></head><body><main>` +
          `<h1>Development Telegram login</h1><p class="muted">A stand-in for the Telegram Login Widget: it signs the login with a development bot token (TELEGRAM_BOT_TOKEN is not set). <a href="/">Back</a></p>` +
          `<form id="dev-telegram" method="get" action="/dev/telegram/sign"><label for="telegram-user">Log in to Telegram as</label><div class="row"><select id="telegram-user" name="user">${options}</select><button type="submit">Log in</button></div></form>` +
          `</main></body></html>`,
      );
    });
    app.get("/dev/telegram/sign", (req, res) => {
      const user = devTelegram.users.find((u) => u.id === req.query.user);
      if (!user) {
        res.status(400).type("application/problem+json").send(JSON.stringify({ type: "about:blank", title: "No such demo user", status: 400, code: "ERR_QUERY_INVALID" }));
        return;
      }
      const fields = Object.fromEntries(Object.entries(user).filter(([, v]) => v !== undefined)) as Record<string, string>;
      const data = signTelegramAuthData(devTelegram.botToken, { ...fields, auth_date: String(Math.floor(Date.now() / 1000)) });
      res.redirect(302, `/auth/telegram/callback?${new URLSearchParams(data)}`);
    });
  }
  if (config.telegram) {
    // The official Login Widget, redirect style: Telegram sends the browser to /auth/telegram/callback,
    // whose confirm page finishes the sign-in. This page alone loads Telegram's script and frame.
    const { botUsername } = config.telegram;
    app.get("/telegram", (_req, res) => {
      res.setHeader("Content-Security-Policy", "default-src 'self'; script-src https://telegram.org; frame-src https://oauth.telegram.org; frame-ancestors 'none'; base-uri 'none'; form-action 'self'");
      res.type("html").send(
        `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Sign in with Telegram</title><link rel="stylesheet" href="/styles.css"></head><body><main>` +
          `<h1>Sign in with Telegram</h1>` +
          `<script async src="https://telegram.org/js/telegram-widget.js?22" data-telegram-login="${escapeHtml(botUsername)}" data-size="large" data-auth-url="${escapeHtml(`${config.publicUrl}/auth/telegram/callback`)}"></script>` +
          `<p><a href="/">Back</a></p></main></body></html>`,
      );
    });
  }

  if (mailbox && config.development) {
    // The development mailbox: where sign-in mail goes when no SMTP server is configured.
    app.get("/dev/mailbox.json", (_req, res) => {
      res.setHeader("Cache-Control", "no-store");
      res.json(mailbox.messages().map(({ to, subject, text, html, sentAt }) => ({ to, subject, text, html, sentAt })));
    });
    app.get("/dev/mailbox", (_req, res) => {
      const linkify = (v: string) => escapeHtml(v).replace(/(https?:\/\/[^\s<]+)/g, '<a href="$1">$1</a>');
      const items = mailbox
        .messages()
        .map((m) => `<article class="mail"><p class="muted">${escapeHtml(m.sentAt)} · to ${escapeHtml(m.to)}</p><h3>${escapeHtml(m.subject)}</h3><pre>${linkify(m.text)}</pre></article>`)
        .join("");
      res.setHeader("Cache-Control", "no-store");
      res.setHeader("Referrer-Policy", "no-referrer");
      res.type("html").send(
        `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Development mailbox</title><link rel="stylesheet" href="/styles.css"></head>` +
          `<body><main><h1>Development mailbox</h1><p class="muted">Sign-in mail lands here because SMTP_URL is not set. Newest first. <a href="/">Back</a></p>` +
          (items || "<p>No mail yet.</p>") +
          `</main></body></html>`,
      );
    });
  }

  if (config.agentsDatabaseUrl && config.development) {
    const running = async () => {
      await agentsReady;
      return { db: agentsDb!, sync: relay! };
    };
    app.get("/dev/agents-cache.json", async (_req, res) => {
      const { db, sync } = await running();
      const { rows } = await db.query("SELECT * FROM user_references_cache ORDER BY erebus_created_at DESC LIMIT 200");
      res.setHeader("Cache-Control", "no-store");
      res.json({ status: await sync.status(), rows });
    });
    app.get("/dev/agents-cache", async (_req, res) => {
      const { db, sync } = await running();
      const { rows } = await db.query<Record<string, unknown>>(
        "SELECT id, network, source_identifier, user_type, email, is_active, erebus_version, synced_at FROM user_references_cache ORDER BY erebus_created_at DESC LIMIT 200",
      );
      const status = await sync.status();
      const cells = (r: Record<string, unknown>) =>
        ["network", "source_identifier", "user_type", "email", "is_active", "erebus_version", "synced_at"].map((k) => `<td>${escapeHtml(String((r[k] instanceof Date ? (r[k] as Date).toISOString() : r[k]) ?? ""))}</td>`).join("");
      res.setHeader("Cache-Control", "no-store");
      res.type("html").send(
        `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Agents cache</title><link rel="stylesheet" href="/styles.css"></head><body><main>` +
          `<h1>Agents database: user_references_cache</h1><p class="muted">A read-only copy kept by the sync relay. Pending events: ${status.pending}, lag: ${status.lagMs} ms. <a href="/">Back</a></p>` +
          `<table><thead><tr><th>network</th><th>identifier</th><th>type</th><th>email</th><th>active</th><th>version</th><th>synced</th></tr></thead><tbody>` +
          rows.map((r) => `<tr>${cells(r)}</tr>`).join("") +
          `</tbody></table></main></body></html>`,
      );
    });
  }

  const html = page("index.html");
  const script = page("app.js");
  const styles = page("styles.css");
  app.get("/", (_req, res) => {
    res.type("html").send(
      html
        .replace("{{DEV_SIGN_IN}}", config.development ? page("dev-sign-in.html") : "")
        .replace("{{TELEGRAM_SIGN_IN}}", devTelegram ? '<a id="telegram" class="button" href="/dev/telegram">Sign in with Telegram</a>' : config.telegram ? '<a id="telegram" class="button" href="/telegram">Sign in with Telegram</a>' : "")
        .replace("{{MAILBOX_LINK}}", mailbox && config.development ? ' <a href="/dev/mailbox" id="mailbox-link">Open the development mailbox</a>.' : ""),
    );
  });
  app.get("/app.js", (_req, res) => res.type("text/javascript").send(script));
  app.get("/styles.css", (_req, res) => res.type("text/css").send(styles));

  app.use((_req, res) => {
    res.status(404).type("application/problem+json").send(JSON.stringify({ type: "about:blank", title: "Not Found", status: 404, code: "ERR_NOT_FOUND" }));
  });
  app.use(auth.errorHandler);
  return { app, auth, agentsReady, close };
}
