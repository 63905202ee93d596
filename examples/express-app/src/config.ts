import * as z from "zod";

const envSchema = z.object({
  PORT: z.coerce.number().int().min(0).max(65_535).default(3000),
  HOST: z.string().default("localhost"),
  PUBLIC_URL: z.url({ protocol: /^https?$/ }).optional(),
  DATABASE_URL: z.string().default("pglite://.data/erebus"),
  AGENTS_DATABASE_URL: z.string().regex(/^(postgres|postgresql|pglite):\/\//, "must be a postgres:// or pglite:// URL").default("pglite://.data/agents"),
  SYNC: z.enum(["on", "off"]).default("on"),
  NODE_ENV: z.string().default("development"),
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
  SOLANA_CHAINS: z.string().regex(/^[a-z0-9:-]+(,[a-z0-9:-]+)*$/, "must be comma-separated clusters, like mainnet,devnet").default("mainnet"),
});

export interface AppConfig {
  port: number;
  host: string;
  publicUrl: string;
  databaseUrl: string;
  /** The agents database, kept in sync with user_references by an in-process relay (SYNC=off turns it off). */
  agentsDatabaseUrl: string | undefined;
  production: boolean;
  ethereum: { chains: number[]; rpc: Record<string, string> };
  solana: { chains: string[] };
  apiKeyPepper: string | undefined;
  appName: string;
  /** SMTP for sign-in mail; without it (outside production) mail goes to the development mailbox. */
  smtp: { url: string; from: string } | undefined;
  /** OAuth client credentials from the environment; with none (outside production) a built-in development IdP is used. */
  oauth: { google?: { clientId: string; clientSecret: string }; github?: { clientId: string; clientSecret: string } };
}

/** Reads the example app's configuration from the environment; every setting has a working default. */
export function configFromEnv(env: NodeJS.ProcessEnv = process.env): AppConfig {
  const parsed = envSchema.safeParse(env);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new TypeError(`environment variable ${issue.path.join(".")}: ${issue.message}`);
  }
  const { PORT, HOST, PUBLIC_URL, DATABASE_URL, AGENTS_DATABASE_URL, SYNC, NODE_ENV, ETHEREUM_CHAINS, ETHEREUM_RPC_URLS, SOLANA_CHAINS, API_KEY_PEPPER, SMTP_URL, SMTP_FROM, APP_NAME } = parsed.data;
  const pair = (id: string | undefined, secret: string | undefined, name: string) => {
    if (!id !== !secret) throw new TypeError(`environment variables ${name}_CLIENT_ID and ${name}_CLIENT_SECRET: set both or neither`);
    return id && secret ? { clientId: id, clientSecret: secret } : undefined;
  };
  const google = pair(parsed.data.GOOGLE_CLIENT_ID, parsed.data.GOOGLE_CLIENT_SECRET, "GOOGLE");
  const github = pair(parsed.data.GITHUB_CLIENT_ID, parsed.data.GITHUB_CLIENT_SECRET, "GITHUB");
  const production = NODE_ENV === "production";
  if (production && !SMTP_URL) throw new TypeError("environment variable SMTP_URL: required in production (sign-in mail has nowhere to go)");
  return {
    port: PORT,
    host: HOST,
    publicUrl: (PUBLIC_URL ?? `http://localhost:${PORT}`).replace(/\/+$/, ""),
    databaseUrl: DATABASE_URL,
    agentsDatabaseUrl: SYNC === "on" ? AGENTS_DATABASE_URL : undefined,
    production,
    ethereum: {
      chains: ETHEREUM_CHAINS.split(",").map(Number),
      rpc: Object.fromEntries((ETHEREUM_RPC_URLS ?? "").split(",").filter(Boolean).map((pair) => pair.split(/=(.*)/s).slice(0, 2) as [string, string])),
    },
    solana: { chains: SOLANA_CHAINS.split(",") },
    apiKeyPepper: API_KEY_PEPPER,
    appName: APP_NAME,
    smtp: SMTP_URL ? { url: SMTP_URL, from: SMTP_FROM } : undefined,
    oauth: { ...(google ? { google } : {}), ...(github ? { github } : {}) },
  };
}
