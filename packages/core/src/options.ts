import { randomBytes } from "node:crypto";
import * as z from "zod";
import type { Database } from "./db/types.js";
import { consoleLogger, type Logger } from "./logger.js";
import type { ErebusProvider } from "./provider.js";

const isFunction = (value: unknown) => typeof value === "function";
const isDatabase = (value: unknown): value is Database =>
  typeof value === "object" && value !== null && ["query", "exec", "transaction", "listen", "close"].every((k) => isFunction((value as Record<string, unknown>)[k]));

const DAY = 86_400;

/**
 * The default of `production`: on, unless the environment explicitly asks for development
 * (`NODE_ENV=development` or `test`, or `EREBUS_DEV=1`). A deployment with `NODE_ENV` unset, `prod`
 * or `staging` is production: development helpers (the test provider, mailboxes, sign-in-as-anyone)
 * must be asked for, never left on by omission. `NODE_ENV=production` wins over `EREBUS_DEV`.
 */
export function productionFromEnv(env: Readonly<Record<string, string | undefined>> = process.env): boolean {
  if (env.NODE_ENV === "production") return true;
  return !(env.NODE_ENV === "development" || env.NODE_ENV === "test" || env.EREBUS_DEV === "1");
}

/** Every option of `createAuth()`, with its default. Defaults live here and nowhere else. */
export const optionsSchema = z.strictObject({
  /** A {@link Database}, or a URL: `postgres://…`, `pglite://<dir>`, `pglite://memory`. */
  database: z.union([
    z.string().regex(/^(postgres|postgresql|pglite):\/\//, "must be a postgres://, postgresql:// or pglite:// URL"),
    z.custom<Database>(isDatabase, "must be a Database (see connectDatabase) or a URL"),
  ]),
  /** The app's public origin (`https://app.example.com`): domain binding, links, CSRF checks and cookie security derive from it. */
  baseURL: z.url({ protocol: /^https?$/ }).transform((value) => new URL(value)),
  /** Where the app mounts `auth.router`. */
  basePath: z
    .string()
    .regex(/^\/[A-Za-z0-9/_-]*$/, "must be a path such as /auth")
    .transform((value) => value.replace(/\/+$/, "") || "/")
    .default("/auth"),
  providers: z.array(z.custom<ErebusProvider>((value) => typeof value === "object" && value !== null, "must be a provider object")).default([]),
  /** Run pending migrations when `createAuth` is called; `auth.ready` settles when they are done. */
  migrate: z.boolean().default(false),
  /** Other origins allowed to send state-changing requests with the session cookie. */
  trustedOrigins: z.array(z.url().transform((value) => new URL(value).origin)).default([]),
  /** Production mode: Secure cookies, no development helpers. Default: {@link productionFromEnv}, read at each createAuth call. */
  production: z.boolean().default(() => productionFromEnv()),
  session: z
    .strictObject({
      /** Seconds without use after which a session expires. */
      maxAge: z.number().int().positive().default(7 * DAY),
      /** Seconds after which a used session's expiry is pushed out again. */
      updateAge: z.number().int().nonnegative().default(DAY),
      /** Seconds after sign-in after which a session ends however it is used. */
      absoluteMaxAge: z.number().int().positive().default(30 * DAY),
      /** Cookie name; defaults to `__Host-erebus_session` on https, `erebus_session` on http. */
      cookieName: z.string().regex(/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/, "must be a cookie-name token").optional(),
    })
    .default({ maxAge: 7 * DAY, updateAge: DAY, absoluteMaxAge: 30 * DAY })
    .refine((s) => s.updateAge <= s.maxAge, { message: "updateAge must not exceed maxAge", path: ["updateAge"] })
    .refine((s) => s.maxAge <= s.absoluteMaxAge, { message: "maxAge must not exceed absoluteMaxAge", path: ["maxAge"] }),
  rateLimit: z.strictObject({ enabled: z.boolean().default(true) }).default({ enabled: true }),
  /** Largest JSON body the auth router accepts, in bytes. */
  bodyLimit: z.number().int().min(1024).max(1024 * 1024).default(16 * 1024),
  clock: z.custom<() => Date>(isFunction, "must be a function returning a Date").default(() => () => new Date()),
  random: z.custom<(bytes: number) => Buffer>(isFunction, "must be a function (bytes) => Buffer").default(() => randomBytes),
  logger: z
    .custom<Logger>((value) => typeof value === "object" && value !== null && ["debug", "info", "warn", "error"].every((k) => isFunction((value as Record<string, unknown>)[k])), "must have debug, info, warn and error methods")
    .default(() => consoleLogger()),
});

export type AuthOptions = z.input<typeof optionsSchema>;
export type ResolvedOptions = z.output<typeof optionsSchema>;

/**
 * Validates a factory's options once with its zod schema; a bad option is a TypeError that names
 * the factory and the option (`walletProvider: option "ethereum.chains" …`). Providers use it too.
 *
 * @example
 * const options = parseOptions(myOptionsSchema, input ?? {}, "passkeyProvider");
 */
export function parseOptions<S extends z.ZodType>(schema: S, input: unknown, factory: string, describe: (path: PropertyKey[]) => string = (path) => path.join(".")): z.output<S> {
  const result = schema.safeParse(input);
  if (!result.success) {
    const issue = result.error.issues[0]!;
    throw new TypeError(`${factory}: option "${issue.path.length ? describe(issue.path) : "(options)"}" ${issue.message}`);
  }
  return result.data;
}

/** Validates createAuth's options once; a bad option is a TypeError naming it. */
export const resolveOptions = (input: unknown): ResolvedOptions => parseOptions(optionsSchema, input, "createAuth");
