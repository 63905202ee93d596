import * as z from "zod";

const envSchema = z.object({
  PORT: z.coerce.number().int().min(0).max(65_535).default(3000),
  HOST: z.string().default("localhost"),
  PUBLIC_URL: z.url({ protocol: /^https?$/ }).optional(),
  DATABASE_URL: z.string().default("pglite://.data/erebus"),
  NODE_ENV: z.string().default("development"),
});

export interface AppConfig {
  port: number;
  host: string;
  publicUrl: string;
  databaseUrl: string;
  production: boolean;
}

/** Reads the example app's configuration from the environment; every setting has a working default. */
export function configFromEnv(env: NodeJS.ProcessEnv = process.env): AppConfig {
  const parsed = envSchema.safeParse(env);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new TypeError(`environment variable ${issue.path.join(".")}: ${issue.message}`);
  }
  const { PORT, HOST, PUBLIC_URL, DATABASE_URL, NODE_ENV } = parsed.data;
  return {
    port: PORT,
    host: HOST,
    publicUrl: (PUBLIC_URL ?? `http://localhost:${PORT}`).replace(/\/+$/, ""),
    databaseUrl: DATABASE_URL,
    production: NODE_ENV === "production",
  };
}
