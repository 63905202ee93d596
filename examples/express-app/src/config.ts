import { isIPv4 } from "node:net";
import * as z from "zod";

const envSchema = z.object({
  PORT: z.coerce.number().int().min(0).max(65_535).default(3000),
  HOST: z.string().default("localhost"),
  PUBLIC_URL: z.url({ protocol: /^https?$/ }).optional(),
  DATABASE_URL: z.string().default("pglite://.data/erebus"),
  AGENTS_DATABASE_URL: z.string().regex(/^(postgres|postgresql|pglite):\/\//, "must be a postgres:// or pglite:// URL").default("pglite://.data/agents"),
  SYNC: z.enum(["on", "off"]).default("on"),
  NODE_ENV: z.string().optional(),
  EREBUS_DEV: z.enum(["0", "1"], "must be 1 (development helpers on) or 0 (off)").optional(),
  ETHEREUM_CHAINS: z.string().regex(/^\d+(,\d+)*$/, "must be comma-separated chain ids, like 1,8453").default("1"),
  ETHEREUM_RPC_URLS: z.string().regex(/^(\d+=https?:\/\/[^,\s]+)(,\d+=https?:\/\/[^,\s]+)*$/, "must look like 1=https://rpc.example,8453=https://…").optional(),
  SMTP_URL: z.string().regex(/^smtps?:\/\//, "must be an smtp:// or smtps:// URL").optional(),
  SMTP_FROM: z.string().default("Erebus example <login@localhost>"),
  APP_NAME: z.string().min(1).max(64).default("Erebus example"),
  GOOGLE_CLIENT_ID: z.string().min(1).optional(),
  GOOGLE_CLIENT_SECRET: z.string().min(1).optional(),
  GITHUB_CLIENT_ID: z.string().min(1).optional(),
  GITHUB_CLIENT_SECRET: z.string().min(1).optional(),
  API_KEY_PEPPER: z.string().min(32, "must be at least 32 characters").optional(),
  TELEGRAM_BOT_TOKEN: z.string().regex(/^\d{1,20}:[A-Za-z0-9_-]{20,100}$/, "must be a bot token from @BotFather, like 123456789:AAH…").optional(),
  TELEGRAM_BOT_USERNAME: z.string().regex(/^[A-Za-z][A-Za-z0-9_]{3,31}$/, "must be the bot's username without @, like ExampleLoginBot").optional(),
  SOLANA_CHAINS: z.string().regex(/^[a-z0-9:-]+(,[a-z0-9:-]+)*$/, "must be comma-separated clusters, like mainnet,devnet").default("mainnet"),
});

export interface AppConfig {
  port: number;
  host: string;
  publicUrl: string;
  databaseUrl: string;
  /** The agents database, kept in sync with user_references by an in-process relay (SYNC=off turns it off). */
  agentsDatabaseUrl: string | undefined;
  /**
   * Development helpers: the development sign-in (core's test provider and its `X-Test-Key`), the
   * development mailbox, the development IdP and /dev/agents-cache. Only when asked for
   * (`NODE_ENV=development` or `EREBUS_DEV=1`), and only on loopback (see `assertSafeToServe`).
   */
  development: boolean;
  /** Everything that is not development is treated as production (Secure cookies, SMTP required). */
  production: boolean;
  ethereum: { chains: number[]; rpc: Record<string, string> };
  solana: { chains: string[] };
  apiKeyPepper: string | undefined;
  appName: string;
  /** SMTP for sign-in mail; without it (development only) mail goes to the development mailbox. */
  smtp: { url: string; from: string } | undefined;
  /** OAuth client credentials from the environment; with none (in development) a built-in development IdP is used. */
  oauth: { google?: { clientId: string; clientSecret: string }; github?: { clientId: string; clientSecret: string } };
  /** The Telegram bot the Login Widget signs for; with none (in development) a development bot and a stand-in widget at /dev/telegram. */
  telegram: { botToken: string; botUsername: string } | undefined;
}

/** Reads the example app's configuration from the environment; every setting has a working default. */
export function configFromEnv(env: NodeJS.ProcessEnv = process.env): AppConfig {
  const parsed = envSchema.safeParse(env);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new TypeError(`environment variable ${issue.path.join(".")}: ${issue.message}`);
  }
  const { PORT, HOST, PUBLIC_URL, DATABASE_URL, AGENTS_DATABASE_URL, SYNC, NODE_ENV, EREBUS_DEV, ETHEREUM_CHAINS, ETHEREUM_RPC_URLS, SOLANA_CHAINS, API_KEY_PEPPER, SMTP_URL, SMTP_FROM, APP_NAME } = parsed.data;
  const pair = (id: string | undefined, secret: string | undefined, name: string) => {
    if (!id !== !secret) throw new TypeError(`environment variables ${name}_CLIENT_ID and ${name}_CLIENT_SECRET: set both or neither`);
    return id && secret ? { clientId: id, clientSecret: secret } : undefined;
  };
  const google = pair(parsed.data.GOOGLE_CLIENT_ID, parsed.data.GOOGLE_CLIENT_SECRET, "GOOGLE");
  const github = pair(parsed.data.GITHUB_CLIENT_ID, parsed.data.GITHUB_CLIENT_SECRET, "GITHUB");
  const { TELEGRAM_BOT_TOKEN, TELEGRAM_BOT_USERNAME } = parsed.data;
  // The widget is rendered for a bot username and verified with its token: one without the other cannot work.
  if (!TELEGRAM_BOT_TOKEN !== !TELEGRAM_BOT_USERNAME) throw new TypeError("environment variables TELEGRAM_BOT_TOKEN and TELEGRAM_BOT_USERNAME: set both or neither");
  // Inverted on purpose (issue 10, finding 2): a deployment that forgot NODE_ENV, or spells it
  // "prod" or "staging", must not get a sign-in-as-anyone route.
  if (EREBUS_DEV === "1" && NODE_ENV === "production") {
    throw new TypeError("environment variables EREBUS_DEV=1 and NODE_ENV=production contradict each other: unset EREBUS_DEV in production");
  }
  // EREBUS_DEV says it explicitly either way (0: no helpers even with NODE_ENV=development).
  const development = EREBUS_DEV === undefined ? NODE_ENV === "development" : EREBUS_DEV === "1";
  return {
    port: PORT,
    host: HOST,
    publicUrl: (PUBLIC_URL ?? `http://localhost:${PORT}`).replace(/\/+$/, ""),
    databaseUrl: DATABASE_URL,
    agentsDatabaseUrl: SYNC === "on" ? AGENTS_DATABASE_URL : undefined,
    development,
    production: !development,
    ethereum: {
      chains: ETHEREUM_CHAINS.split(",").map(Number),
      rpc: Object.fromEntries((ETHEREUM_RPC_URLS ?? "").split(",").filter(Boolean).map((pair) => pair.split(/=(.*)/s).slice(0, 2) as [string, string])),
    },
    solana: { chains: SOLANA_CHAINS.split(",") },
    apiKeyPepper: API_KEY_PEPPER,
    appName: APP_NAME,
    smtp: SMTP_URL ? { url: SMTP_URL, from: SMTP_FROM } : undefined,
    oauth: { ...(google ? { google } : {}), ...(github ? { github } : {}) },
    telegram: TELEGRAM_BOT_TOKEN && TELEGRAM_BOT_USERNAME ? { botToken: TELEGRAM_BOT_TOKEN, botUsername: TELEGRAM_BOT_USERNAME } : undefined,
  };
}

/** `localhost`, 127.0.0.0/8 and ::1: addresses only this machine can reach. */
function isLoopback(host: string): boolean {
  const h = host.toLowerCase().replace(/^\[(.*)\]$/, "$1");
  return h === "localhost" || h === "::1" || (isIPv4(h) && h.startsWith("127."));
}

/**
 * Whether a request's `Host` header names this machine by a loopback name (`localhost`,
 * 127.0.0.0/8, `[::1]`, with or without a port). Parsed as a URL authority, so userinfo or a path
 * smuggled into the header does not pass.
 */
export function isLoopbackHostHeader(host: string | undefined): boolean {
  if (!host || !/^[A-Za-z0-9.\-]+(:\d{1,5})?$|^\[[0-9A-Fa-f:.]+\](:\d{1,5})?$/.test(host)) return false;
  try {
    return isLoopback(new URL(`http://${host}`).hostname);
  } catch {
    return false;
  }
}

/**
 * Start-up checks that concern serving (the app calls it first; the CLI, which serves nothing, does
 * not). Development helpers let anyone sign in as anyone and read everyone's sign-in mail, so they
 * run only where nobody else can reach them; outside development sign-in mail needs a real server.
 */
export function assertSafeToServe(config: AppConfig): void {
  if (config.development) {
    const why = "development helpers (NODE_ENV=development or EREBUS_DEV=1) let anyone sign in as anyone and read every sign-in mail, so they only run on loopback";
    if (!isLoopback(config.host)) {
      throw new TypeError(`refusing to start: ${why}, but HOST=${config.host}. Set HOST=localhost, or deploy without them (NODE_ENV=production, EREBUS_DEV unset).`);
    }
    const publicHost = new URL(config.publicUrl).hostname;
    if (!isLoopback(publicHost)) {
      throw new TypeError(`refusing to start: ${why}, but PUBLIC_URL=${config.publicUrl}. Use http://localhost:${config.port}, or deploy without them (NODE_ENV=production, EREBUS_DEV unset).`);
    }
  } else if (!config.smtp) {
    throw new TypeError("environment variable SMTP_URL: required outside development (sign-in mail has nowhere to go; NODE_ENV=development uses the development mailbox)");
  }
}
