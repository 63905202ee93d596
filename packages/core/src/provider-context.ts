import * as z from "zod";
import type { People } from "./people.js";
import type { Database, Queryable } from "./db/types.js";
import { AuthError } from "./errors.js";
import type { VerifiedIdentity } from "./identities.js";
import type { Logger } from "./logger.js";
import type { ResolvedOptions } from "./options.js";
import { findPgUnsafeString, PG_TEXT_MESSAGE } from "./pg-text.js";
import type { ErebusProvider, ProviderContext } from "./provider.js";
import type { RateLimitFactory } from "./rate-limit.js";
import { noResponse } from "./session-transport.js";
import type { Authentication } from "./authentication.js";
import type { createSignIn } from "./sign-in.js";
import type { UserStore } from "./users.js";
import { createVerifications, randomOf, sha256, type BrowserCookie } from "./verifications.js";

export interface ContextDeps {
  options: ResolvedOptions;
  db: Database;
  users: UserStore;
  signIn: ReturnType<typeof createSignIn>;
  rateLimit: RateLimitFactory;
  authentication: Authentication;
  browserCookie: BrowserCookie;
  people: People;
  sessions: import("./sessions.js").SessionStore;
}

/** A logger that names the provider in every entry. */
function providerLogger(logger: Logger, id: string): Logger {
  return {
    debug: (m, f) => logger.debug(m, { provider: id, ...f }),
    info: (m, f) => logger.info(m, { provider: id, ...f }),
    warn: (m, f) => logger.warn(m, { provider: id, ...f }),
    error: (m, f) => logger.error(m, { provider: id, ...f }),
  };
}

/** Everything core hands one provider: its database, clock, secrets store, limits, and sign-in. */
export function createProviderContext(provider: ErebusProvider, deps: ContextDeps): ProviderContext {
  const { options, db, users, rateLimit, authentication } = deps;
  const { clock, random } = options;
  const emits = new Set(provider.emits);
  const mount = options.basePath === "/" ? "" : options.basePath;

  /** `emits` is a promise the provider makes: resolving any other type is a bug in the provider, said at once. */
  const checkEmits = (type: unknown) => {
    if (typeof type === "string" && !emits.has(type)) {
      throw new TypeError(`provider "${provider.id}" resolved an identity of source type "${type}", which is not in its emits (${[...emits].join(", ") || "none"})`);
    }
  };
  const upsert = async (identity: VerifiedIdentity, opts?: { db?: Queryable; personId?: string }) => {
    checkEmits((identity as { sourceType?: { type?: unknown } } | null)?.sourceType?.type);
    return users.upsertIdentity(identity, opts);
  };
  const resolve = async (identity: VerifiedIdentity, opts?: { db?: Queryable; personId?: string }) => (await upsert(identity, opts)).user;

  return {
    providerId: provider.id,
    db,
    clock,
    random,
    logger: providerLogger(options.logger, provider.id),
    baseURL: options.baseURL,
    basePath: options.basePath,
    production: options.production,
    url(path: string) {
      if (typeof path !== "string" || !path.startsWith("/") || path.startsWith("//")) throw new TypeError(`ctx.url: path must start with one "/" (got ${JSON.stringify(path)})`);
      const url = new URL(`${mount}${path}`, options.baseURL.origin);
      // The URL parser drops tabs and newlines and reads a backslash as "/": "/" + backslash + "evil.example" is another host.
      if (url.origin !== options.baseURL.origin) throw new TypeError(`ctx.url: path must stay on the app's origin (got ${JSON.stringify(path)})`);
      return url.toString();
    },
    hash: sha256,
    randomToken(spec) {
      if (spec && "alphabet" in spec) return randomOf(random, spec.alphabet, spec.length);
      const bytes = spec?.bytes ?? 32;
      if (!Number.isInteger(bytes) || bytes < 16 || bytes > 1024) throw new TypeError("ctx.randomToken: bytes must be an integer from 16 to 1024");
      return random(bytes).toString("base64url");
    },
    verifications: createVerifications({ db, provider: provider.id, clock, random, browserCookie: deps.browserCookie }),
    resolveIdentity: resolve,
    revokeSessions: (userId, opts) => deps.sessions.revokeAll(userId, opts?.db),
    async registerSystemAgent(input, opts) {
      checkEmits("system_agent");
      return users.registerSystemAgent(input, opts);
    },
    getUser: users.getUser,
    findUser: users.findUser,
    signIn: deps.signIn.signIn,
    signInOnce: (req, res, attempt) => deps.signIn.signInOnce(req, res, attempt, upsert),
    linkIntent: (req, input, res) => deps.people.linkIntent(req, res ?? noResponse, input),
    lockPerson: (tx, auth) => deps.people.lockPerson(tx, auth),
    async requireFresh(req, res, opts) {
      // A NaN window would make every session fresh (no age is greater than NaN): a bug, said at once.
      if (opts?.maxAge !== undefined && (!Number.isInteger(opts.maxAge) || opts.maxAge < 1)) throw new TypeError("ctx.requireFresh: maxAge must be a positive whole number of seconds");
      return deps.people.requireFreshSession(req, res, opts?.maxAge);
    },
    rateLimit: (rule) => rateLimit({ ...rule, name: `${provider.id}:${rule.name}` }),
    parse: parseWith,
    async authenticate(req, res) {
      await authentication.authenticate(req, res);
      return req.auth ?? null;
    },
    requireUser: async (req, res) => authentication.requireAuth(req, res),
  };
}

/** Parses a request part with a zod schema; 400 naming the field otherwise. */
export function parseWith<S extends z.ZodType>(schema: S, value: unknown, part: "body" | "query" = "body"): z.infer<S> {
  const invalid = (path: readonly PropertyKey[] | undefined, message: string) => {
    const field = path?.length ? path.map(String).join(".") : part;
    return AuthError.of(part === "body" ? "ERR_BODY_INVALID" : "ERR_QUERY_INVALID", { detail: `${field}: ${message}`, extensions: { field } });
  };
  // Whatever a route does with the parsed value, it may reach PostgreSQL, which refuses U+0000 and
  // unpaired surrogates (a 500 otherwise, or a silent U+FFFD): refused here, before any schema runs.
  const unsafe = findPgUnsafeString(value);
  if (unsafe) throw invalid(unsafe, PG_TEXT_MESSAGE);
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  throw invalid(issue?.path, issue?.message ?? "invalid");
}
