import type { Request, Response, Router } from "express";
import type * as z from "zod";
import type { Database, Queryable } from "./db/types.js";
import type { VerifiedIdentity } from "./identities.js";
import type { Logger } from "./logger.js";
import type { Migration } from "./migrate.js";
import type { RateLimiter, RateLimitRule } from "./rate-limit.js";
import type { Session } from "./sessions.js";
import type { SourceTypeDefinition } from "./source-types.js";
import type { SystemAgentInput, UserReference } from "./users.js";
import type { Verifications, VerificationResult, LinkIntent } from "./verifications.js";

/** Who made a request, as core's middleware puts it on `req.auth`. */
export interface RequestAuth {
  /** The identity that made the request (the one that signed in, or an API key's own row). */
  user: UserReference;
  /** The person that identity belongs to: key your app's own data by this. */
  personId: string;
  /** `session` for a session token (cookie or Bearer); `api_key` (or a provider's own word) for header credentials. */
  via: "session" | "api_key" | (string & {});
  /** What the credential may do. A session carries `["*"]`: a signed-in person may do everything their account may. */
  scopes: string[];
  /** The session, when `via` is `session`. */
  session?: Session;
  /** The credential's public id (an API key id), when there is one. */
  credentialId?: string;
}

/** What a provider's `authenticate` returns for a credential it recognises and has verified. */
export type ProviderAuthResult = Omit<RequestAuth, "session" | "personId"> & { personId?: string };

/** What `ctx.signIn` answers with; send it as the body of a sign-in route. */
export interface SignInResult {
  /** The identity that signed in (for a link: the identity the session belongs to). */
  user: UserReference;
  session: { id: string; expiresAt: string; token?: string };
  /** After a link-intent proof: the person as it is now, the identity proven, and what happened. */
  person?: { id: string; identities: import("./people.js").PersonIdentity[] };
  linked?: UserReference;
  outcome?: import("./people.js").LinkOutcome;
}

/** One sign-in attempt for {@link ProviderContext.signInOnce}. */
export interface SignInAttempt {
  /** Checks the proof (signature, code) and returns the identity; throws its AuthError. Writes nothing. */
  verify(): Promise<VerifiedIdentity> | VerifiedIdentity;
  /**
   * Marks the single-use secret (nonce, code, state) used on `q`; throws its AuthError when it cannot
   * be used. Return the consumed verification (from `ctx.verifications`): when it carries a link
   * intent, the identity is attached to the asking person instead of starting a session.
   */
  consume(q: Queryable): Promise<void | VerificationResult>;
  /** The provider's own rows that belong to this sign-in, written in the same commit. */
  bind?(q: Queryable, user: UserReference): Promise<void>;
  /**
   * A link intent taken in this same request (`ctx.linkIntent(req, body)`), for a provider whose
   * proof needs no start step (a signed widget payload): the proof then attaches to the session's
   * person instead of signing in. A link intent stored with the consumed secret takes precedence.
   */
  link?: LinkIntent;
  /**
   * The client's limit on the shared counter: `signInOnce` counts one hit (`limiter.consume`, a
   * statement of its own that waits for no fsync) before the proof is checked, so every attempt
   * counts on every instance, whatever its outcome, and a client past the limit costs no signature
   * check or RPC. Count it in memory first, with `limiter.consumeLocal`, before any parsing, so
   * malformed attempts count too.
   */
  limit?: { limiter: RateLimiter; key: string };
}

/**
 * Everything core hands a provider. Providers keep no globals: all their state comes from here.
 */
export interface ProviderContext {
  readonly providerId: string;
  /** The database, for the provider's own tables. Never write `user_references`: return identities to `resolveIdentity`. */
  readonly db: Database;
  /** The current time (injectable in tests). */
  readonly clock: () => Date;
  /** `n` bytes from a CSPRNG (injectable in tests). */
  readonly random: (bytes: number) => Buffer;
  readonly logger: Logger;
  /** The app's public origin, from `createAuth({ baseURL })`: use it for domain binding and links, never the Host header. */
  readonly baseURL: URL;
  /** Where the auth router is mounted (`/auth`). */
  readonly basePath: string;
  readonly production: boolean;
  /** An absolute URL under the mount point: `ctx.url("/oauth/x/callback")` → `https://app.example/auth/oauth/x/callback`. */
  url(path: string): string;
  /** SHA-256, hex: how to store a secret you must recognise later. */
  hash(value: string): string;
  /** A random token: 32 CSPRNG bytes as base64url by default, or `length` characters of `alphabet` (uniform). */
  randomToken(options?: { bytes?: number } | { alphabet: string; length: number }): string;
  /**
   * The store for single-use secrets (nonces, links, codes, OAuth state, challenges): issue with a TTL
   * and a purpose (only a hash is kept), consume exactly once, and learn why a consume failed.
   */
  readonly verifications: Verifications;
  /**
   * Persists a verified identity into `user_references` and returns its row (403 for a deactivated
   * user). Pass `{ db: tx }` to run it inside the provider's own transaction (`ctx.db.transaction`),
   * so the identity and the provider's rows are written together or not at all.
   */
  resolveIdentity(identity: VerifiedIdentity, options?: { db?: Queryable; personId?: string }): Promise<UserReference>;
  /** Registers (or updates) a system agent's row (`{ db: tx }` as for resolveIdentity). */
  registerSystemAgent(input: SystemAgentInput, options?: { db?: Queryable }): Promise<UserReference>;
  /**
   * Ends every session of an identity (a credential deleted because its device was lost), on
   * `{ db: tx }` to be part of your commit; every instance's session cache drops them (NOTIFY at commit).
   */
  revokeSessions(userId: string, options?: { db?: Queryable }): Promise<number>;
  /** Looks a user up by id. */
  getUser(id: string): Promise<UserReference | null>;
  /** Looks a user up by identity (`network`, canonical `sourceIdentifier`). */
  findUser(network: string, sourceIdentifier: string): Promise<UserReference | null>;
  /**
   * Starts a session for `user` on this response: revokes the session the request came with
   * (sign-in rotates the session), sets the cookie, or, when the client sent
   * `Erebus-Session-Transport: bearer`, returns the token in the body instead.
   */
  signIn(req: Request, res: Response, user: UserReference): Promise<SignInResult>;
  /**
   * A whole sign-in in one commit (one fsync): counts the client's limit hit, checks the proof,
   * then uses the single-use secret up, resolves the identity and starts the session (as `signIn`)
   * in one transaction. A failed attempt still uses the secret up, so each gets exactly one try.
   */
  signInOnce(req: Request, res: Response, attempt: SignInAttempt): Promise<SignInResult>;
  /** A Postgres-backed limiter shared by every instance of the app; `name` is namespaced by the provider id. */
  rateLimit(rule: RateLimitRule): RateLimiter;
  /**
   * For a start route (nonce, challenge, OAuth start): `undefined` for a plain sign-in; for
   * `{ intent: "link" }` checks the session is signed in and fresh (else 401 / 403
   * `ERR_REAUTH_REQUIRED`) and returns the intent to pass as `link` to `verifications.issue`. The
   * proof, consumed in `signInOnce`, then attaches the identity to that person instead of signing in.
   * `{ intent: "reauthenticate" }` (step-up) needs a session of any age: the proof must be of an
   * identity the person already has (else 403 `ERR_REAUTH_IDENTITY_FOREIGN`) and makes the session fresh.
   */
  linkIntent(req: Request, input: { intent?: unknown; merge?: unknown }, res?: Response): Promise<LinkIntent | undefined>;
  /** 401 / 403 `ERR_REAUTH_REQUIRED` unless a signed-in session proved a credential within `maxAge` seconds (default the app's people.freshAge). */
  requireFresh(req: Request, res: Response, options?: { maxAge?: number }): Promise<RequestAuth>;
  /**
   * In a transaction of yours that takes away one of a person's ways to sign in (deleting a
   * passkey): takes core's lock of the session's person until `tx` ends (core's link, merge and
   * unlink take the same one, so two sessions of one person cannot each remove the other's way in),
   * then reads the session and its person again. 401 `ERR_SESSION_INVALID` when the session ended
   * meanwhile, 409 `ERR_LINK_CONFLICT` when its identity moved to another person, 403
   * `ERR_REAUTH_REQUIRED` for a request that is not a session's (an API key). Returns the person's
   * identities (`user_references` rows, without its API keys' rows) as they are now: make your checks
   * on these, and never remove the session's own identity (`auth.user.id`).
   */
  lockPerson(tx: Queryable, auth: RequestAuth): Promise<{ personId: string; identities: UserReference[] }>;
  /** Who made the request (runs core's authentication once per request), or `null`. */
  authenticate(req: Request, res: Response): Promise<RequestAuth | null>;
  /** Like `authenticate`, but 401 (or the session's own error, e.g. 403 deactivated) when nobody is signed in. */
  requireUser(req: Request, res: Response): Promise<RequestAuth>;
  /** Parses a request part with a zod schema; 400 `ERR_BODY_INVALID` / `ERR_QUERY_INVALID` naming the field otherwise. */
  parse<S extends z.ZodType>(schema: S, value: unknown, part?: "body" | "query"): z.infer<S>;
}

/** What a provider's `setup` returns: what it offers the app. */
export interface ProviderSetup<Api = unknown> {
  /** Adds the provider's routes; the router is mounted under core's auth router (`/auth`). */
  routes?(router: Router): void;
  /**
   * Looks at a request's headers for a credential of this provider's (an API key, say). Returns
   * `null` when there is none of its kind, the verified identity when there is, and throws an
   * `AuthError` when there is one and it is bad. May answer synchronously (a cache hit): core then
   * authenticates the request with no await, which is most of what a cached check costs.
   */
  authenticate?(req: Request): ProviderAuthResult | null | Promise<ProviderAuthResult | null>;
  /** Subcommands of `npx erebus` (`api-keys` → `npx erebus api-keys create …`). */
  commands?: Readonly<Record<string, ProviderCommand>>;
  /** What the app reaches as `auth.providers.<id>` (e.g. creating API keys from code). */
  api?: Api;
}

/**
 * The provider contract. A provider is a plain object that `satisfies ErebusProvider`.
 *
 * @example
 * export function telegramProvider(options: TelegramOptions) {
 *   return {
 *     id: "telegram",
 *     emits: ["telegram"],
 *     sourceTypes: [telegramSourceType],
 *     errors: telegramErrors.codes,
 *     setup(ctx) {
 *       return {
 *         routes(router) {
 *           router.post("/telegram/verify", describeRoute({ summary: "Verify a widget payload", form: true, responses: {} }), async (req, res) => {
 *             const body = ctx.parse(widgetBody, req.body);
 *             res.json(await ctx.signInOnce(req, res, { verify: () => check(body), consume: (q) => remember(body, q) }));
 *           });
 *         },
 *       };
 *     },
 *   } satisfies ErebusProvider;
 * }
 */
export interface ErebusProvider<Api = unknown> {
  /** Lower-case token, unique among the providers of one app: `wallet`, `oauth`, `apikey`. */
  readonly id: string;
  /** Names of the source types this provider emits (core's or its own). */
  readonly emits: readonly string[];
  /** New source types this provider registers: core writes their rules to the database at migration. */
  readonly sourceTypes?: readonly SourceTypeDefinition[];
  /** The provider's own tables, applied in `id` order after core's. Append-only once released. */
  readonly migrations?: readonly Migration[];
  /** Error codes the provider can answer with (`ERR_<AREA>_<REASON>` → status, title), for documentation and checks. */
  readonly errors?: Readonly<Record<string, { status: number; title: string }>>;
  /**
   * Called once per `createAuth` with the provider's context; returns what the provider offers.
   * Keep per-instance state in its closure (never in globals or WeakMaps).
   */
  setup?(ctx: ProviderContext): ProviderSetup<Api>;
  /**
   * @deprecated Mark the route instead: `describeRoute({ ..., form: true })`. Paths of POST routes
   * that also take `application/x-www-form-urlencoded` bodies.
   */
  readonly formRoutes?: readonly string[];
  /** @deprecated Return `routes` from `setup`. Adds the provider's routes under core's auth router. */
  routes?(router: Router, ctx: ProviderContext): void;
  /** @deprecated Return `authenticate` from `setup`. */
  authenticate?(req: Request, ctx: ProviderContext): Promise<ProviderAuthResult | null>;
  /** @deprecated Return `commands` from `setup`. */
  readonly commands?: Readonly<Record<string, ProviderCommand>>;
  /**
   * A development helper (the test provider, a fake IdP): `createAuth` throws when it is given one
   * and `production` is true, so it cannot reach a deployment by accident.
   */
  readonly developmentOnly?: boolean;
}

/** A subcommand a provider adds to the `erebus` CLI. Throw to fail (exit code 1). */
export interface ProviderCommand {
  readonly description: string;
  run(
    args: string[],
    io: { auth: import("./create-auth.js").ErebusAuth; ctx: ProviderContext; out(line: string): void; err(line: string): void },
  ): Promise<void>;
}

export type { LinkIntent, Verifications, VerificationResult };
