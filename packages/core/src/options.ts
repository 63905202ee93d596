import { randomBytes } from "node:crypto";
import * as z from "zod";
import type { Database, Queryable } from "./db/types.js";
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

/**
 * Why `value` is not an origin (`scheme://host[:port]`, an optional trailing `/`), or undefined when it
 * is one. A path would be dropped silently (links and the CSRF check use the origin only), so it is
 * refused rather than guessed at: the router's path is `basePath`.
 */
function originProblem(value: string): string | undefined {
  if (!/^https?:\/\//i.test(value)) return `"${value}" must start with http:// or https://`;
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return `"${value}" is not a URL`;
  }
  if (url.username || url.password) return "must not carry a user name or password";
  if (url.pathname !== "/") return `must not have a path ("${url.pathname}"); mount the router at basePath instead`;
  if (url.search || value.includes("?")) return "must not have a query";
  if (url.hash || value.includes("#")) return "must not have a fragment";
  return undefined;
}

/** Every option of `createAuth()`, with its default. Defaults live here and nowhere else. */
export const optionsSchema = z.strictObject({
  /** A {@link Database}, or a URL: `postgres://…`, `pglite://<dir>`, `pglite://memory`. */
  database: z.union([
    z.string().regex(/^(postgres|postgresql|pglite):\/\//, "must be a postgres://, postgresql:// or pglite:// URL"),
    z.custom<Database>(isDatabase, "must be a Database (see connectDatabase) or a URL"),
  ]),
  /** The app's public origin (`https://app.example.com`): domain binding, links, CSRF checks and cookie security derive from it. */
  baseURL: z.string().transform((value, ctx) => {
    const problem = originProblem(value);
    if (problem === undefined) return new URL(value);
    ctx.issues.push({ code: "custom", input: value, message: `${problem}: use an origin such as "https://app.example.com" or "http://localhost:3000"` });
    return z.NEVER;
  }),
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
      /**
       * Seconds a session look-up may be served from this process's memory (0: a query on every
       * request). Revocation, sign-out, deactivation and user changes reach every instance at once
       * (LISTEN/NOTIFY) and always within this time; expiry is checked on every request.
       */
      cacheTtl: z.number().int().nonnegative().max(3600).default(30),
      /** Most sessions cached per process (least recently looked up go first). */
      cacheSize: z.number().int().nonnegative().default(10_000),
    })
    .default({ maxAge: 7 * DAY, updateAge: DAY, absoluteMaxAge: 30 * DAY, cacheTtl: 30, cacheSize: 10_000 })
    .refine((s) => s.updateAge <= s.maxAge, { message: "updateAge must not exceed maxAge", path: ["updateAge"] })
    .refine((s) => s.maxAge <= s.absoluteMaxAge, { message: "maxAge must not exceed absoluteMaxAge", path: ["maxAge"] }),
  rateLimit: z.strictObject({ enabled: z.boolean().default(true) }).default({ enabled: true }),
  /** People: several identities linked to one person (DESIGN.md, "People"). */
  people: z
    .strictObject({
      /** Seconds since a session last proved a credential within which link, unlink and merge are allowed. */
      freshAge: z.number().int().positive().max(86_400).default(600),
      /** Most identities one person may have (API keys not counted). */
      maxIdentities: z.number().int().min(2).max(1000).default(50),
      /** Link attempts started per session per hour (and per client address: twice that). */
      linksPerHour: z.number().int().positive().default(30),
      /**
       * Called inside the merge transaction: move your app's rows keyed by `from` to `into` with
       * `db` (throwing rolls the whole merge back).
       */
      onMerge: z
        .custom<(from: string, into: string, context: { db: Queryable }) => Promise<void> | void>(isFunction, "must be a function (from, into, { db }) => Promise<void>")
        .optional(),
    })
    .default({ freshAge: 600, maxIdentities: 50, linksPerHour: 30 }),
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
 * the factory and the option by its full path (`walletProvider: option "ethereum.chains.0" …`, also
 * inside a union), and for a misspelt key the closest valid one (`did you mean "baseURL"?`).
 * Providers use it too.
 *
 * @example
 * const options = parseOptions(myOptionsSchema, input ?? {}, "passkeyProvider");
 */
export function parseOptions<S extends z.ZodType>(schema: S, input: unknown, factory: string, describe: (path: PropertyKey[]) => string = (path) => path.join(".")): z.output<S> {
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  const { issue, path } = innermostIssue(result.error.issues, []);
  const name = (p: PropertyKey[]) => (p.length ? describe(p) : "(options)");
  if (issue.code === "unrecognized_keys") {
    const key = issue.keys[0]!;
    const valid = keysAt(schema, path);
    const guess = closest(key, valid);
    const hint = guess !== undefined ? `; did you mean "${name([...path, guess])}"?` : valid.length ? ` (options: ${valid.join(", ")})` : "";
    throw new TypeError(`${factory}: option "${name([...path, key])}" is not an option${hint}`);
  }
  throw new TypeError(`${factory}: option "${name(path)}" ${issue.message}`);
}

type Issue = z.core.$ZodIssue;

/**
 * The issue to report and its full path. A misspelt key comes first (it usually explains a
 * "required" one next to it); a union's issue is replaced by the issue of the branch that got
 * furthest into the value, so the path goes down to the field that is wrong.
 */
function innermostIssue(issues: readonly Issue[], base: PropertyKey[]): { issue: Issue; path: PropertyKey[] } {
  const issue = issues.find((i) => i.code === "unrecognized_keys") ?? issues[0]!;
  const path = [...base, ...issue.path];
  if (issue.code !== "invalid_union" || issue.errors.length === 0) return { issue, path };
  const depth = (branch: readonly Issue[]) => Math.max(0, ...branch.map((i) => i.path.length + (i.code === "unrecognized_keys" || i.code === "invalid_union" ? 1 : 0)));
  const best = issue.errors.reduce((a, b) => (depth(b) > depth(a) ? b : a));
  if (depth(best) > 0) return innermostIssue(best, path);
  // Every branch refused the value as a whole: say what each would have taken.
  const wanted = issue.errors.map((branch) => branch[0]?.message.replace(/^Invalid input: /, "") ?? "something else");
  return { issue: { ...issue, message: `Invalid input: must be one of: ${wanted.join("; or ")}` }, path };
}

/** The keys an object schema at `path` accepts (through defaults, optionals, pipes and unions). */
function keysAt(schema: z.core.$ZodType, path: readonly PropertyKey[]): string[] {
  const def = schema._zod.def as z.core.$ZodTypeDef & { innerType?: z.core.$ZodType; in?: z.core.$ZodType; options?: z.core.$ZodType[]; shape?: Record<string, z.core.$ZodType>; element?: z.core.$ZodType; valueType?: z.core.$ZodType };
  if (def.innerType && ["default", "prefault", "optional", "nullable", "readonly", "catch", "nonoptional"].includes(def.type)) return keysAt(def.innerType, path);
  if (def.type === "pipe" && def.in) return keysAt(def.in, path);
  if (def.type === "union" && def.options) return [...new Set(def.options.flatMap((option) => keysAt(option, path)))];
  if (def.type === "object" && def.shape) {
    if (path.length === 0) return Object.keys(def.shape);
    const next = def.shape[String(path[0])];
    return next ? keysAt(next, path.slice(1)) : [];
  }
  if ((def.type === "array" && def.element) || (def.type === "record" && def.valueType)) return path.length ? keysAt((def.element ?? def.valueType)!, path.slice(1)) : [];
  return [];
}

/** The valid key a misspelt one most likely meant: same letters in another case, or at most a third of its letters off. */
function closest(key: string, valid: readonly string[]): string | undefined {
  let best: { key: string; distance: number } | undefined;
  for (const candidate of valid) {
    const distance = candidate.toLowerCase() === key.toLowerCase() ? 0 : editDistance(key.toLowerCase(), candidate.toLowerCase());
    if (best === undefined || distance < best.distance) best = { key: candidate, distance };
  }
  return best && best.distance <= Math.max(1, Math.floor(key.length / 3)) ? best.key : undefined;
}

/** Levenshtein distance. */
function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min(previous[j]! + 1, current[j - 1]! + 1, previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    previous = current;
  }
  return previous[b.length]!;
}

/** Validates createAuth's options once; a bad option is a TypeError naming it. */
export const resolveOptions = (input: unknown): ResolvedOptions => parseOptions(optionsSchema, input, "createAuth");
