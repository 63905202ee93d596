import { readFileSync } from "node:fs";
import express, { type Express } from "express";
import { createAuth, type ErebusAuth, type Logger } from "@erebus/core";
import type { AppConfig } from "./config.js";
import { providersFor } from "./providers.js";

const page = (name: string) => readFileSync(new URL(`../public/${name}`, import.meta.url), "utf8");

/**
 * The example app: Erebus mounted at /auth, `GET /api/me` for signed-in callers, and a page at `/`
 * showing who is signed in. Outside production it also offers a development sign-in (core's test
 * provider) so the session flow can be tried before any real provider is configured.
 */
export async function createApp(config: AppConfig, options: { logger?: Logger; database?: string } = {}): Promise<{ app: Express; auth: ErebusAuth }> {
  const { providers } = providersFor(config);
  if (config.production && !config.apiKeyPepper) {
    (options.logger ?? console).warn("API_KEY_PEPPER is not set: API keys are stored as plain SHA-256 hashes");
  }

  const auth = createAuth({
    database: options.database ?? config.databaseUrl,
    baseURL: config.publicUrl,
    basePath: "/auth",
    providers,
    migrate: true,
    production: config.production,
    ...(options.logger ? { logger: options.logger } : {}),
  });
  await auth.ready;

  const app = express();
  app.disable("x-powered-by");
  app.use((_req, res, next) => {
    res.setHeader("Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'");
    res.setHeader("X-Content-Type-Options", "nosniff");
    res.setHeader("Referrer-Policy", "same-origin");
    next();
  });

  app.use("/auth", auth.router);
  app.use(auth.middleware);

  app.get("/api/me", auth.requireUser(), (req, res) => {
    res.json(req.auth);
  });
  // A route for programs: an API key (or a session) with the "trade" scope.
  app.get("/api/trade", auth.requireScope("trade"), (req, res) => {
    res.json({ ok: true, tradedBy: req.auth!.user.id, via: req.auth!.via });
  });

  const html = page("index.html");
  const script = page("app.js");
  const styles = page("styles.css");
  app.get("/", (_req, res) => {
    res.type("html").send(html.replace("{{DEV_SIGN_IN}}", config.production ? "" : page("dev-sign-in.html")));
  });
  app.get("/app.js", (_req, res) => res.type("text/javascript").send(script));
  app.get("/styles.css", (_req, res) => res.type("text/css").send(styles));

  app.use((_req, res) => {
    res.status(404).type("application/problem+json").send(JSON.stringify({ type: "about:blank", title: "Not Found", status: 404, code: "ERR_NOT_FOUND" }));
  });
  app.use(auth.errorHandler);
  return { app, auth };
}
