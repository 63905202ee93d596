import { parseOptions, type SourceTypeDefinition } from "@erebus/core/provider";
import * as z from "zod";
import type { PassportStrategy } from "./drive.js";
import { oauthProfileIdentity, type ToIdentity } from "./identity.js";

export type PassportKind = "redirect" | "form" | "header";

const fn = <T>(what: string) => z.custom<T>((v) => typeof v === "function", `must be a function (${what})`);
const path = z.string().regex(/^\/(?![/\\])[^\s\\]*$/, "must be a same-origin path like /account").max(512);

/** Every option of `passportProvider()`, with its default. */
export const passportOptionsSchema = z.strictObject({
  /** The strategy's name in this app: in the URLs (`/auth/passport/<id>`), the provider id (`passport-<id>`) and the default `source_identifier` (`<id>:<profile id>`). */
  id: z.string().regex(/^[a-z][a-z0-9-]{0,22}$/, "must be a short lower-case token like github (at most 23 characters)"),
  /** A Passport strategy instance (`new LocalStrategy(verify)`, `new GitHubStrategy({...}, verify)`). Erebus calls its `authenticate` itself. */
  strategy: z.custom<PassportStrategy>((v) => typeof (v as PassportStrategy | null)?.authenticate === "function", "must be a Passport strategy (an object with authenticate(req, options))"),
  /** How the strategy is reached; guessed from the strategy when left out (OAuth → redirect, passport-local → form, bearer/API key → header). */
  kind: z.enum(["redirect", "form", "header"]).optional(),
  /** Maps the verify callback's user (and info) to a verified identity. Default, for redirect strategies: the OAuth profile mapping. Required for form and header strategies. */
  toIdentity: fn<ToIdentity>("user, info → identity").optional(),
  /** Source types the mapping emits (core's or `sourceTypes`'). Default: the types in `sourceTypes`, else `oauth`. */
  emits: z.array(z.string()).min(1).optional(),
  /** New source types the mapping emits, from core's `defineSourceType`. */
  sourceTypes: z.array(z.custom<SourceTypeDefinition>((v) => typeof (v as SourceTypeDefinition | null)?.type === "string", "must be made with defineSourceType()")).optional(),
  /** More options for `strategy.authenticate(req, options)` (`scope`, `prompt`, …). `callbackURL` and `state` are Erebus's. */
  authenticateOptions: z.record(z.string(), z.unknown()).default({}),
  /** Milliseconds before a strategy that took no action is given up on (503 ERR_PASSPORT_TIMEOUT). */
  timeout: z.number().int().min(10).max(120_000).default(15_000),
  /** Seconds between the redirect to the identity provider and the callback. */
  stateTtl: z.number().int().min(60).max(3600).default(600),
  /** Where a browser lands after signing in (redirect strategies: unless the start said `returnTo`; form strategies: after an HTML form post). */
  successRedirect: path.default("/"),
  /** Where a browser is sent when sign-in fails, with `?error=<code>`. */
  errorRedirect: path.default("/"),
  /** Sign-in attempts (form posts, redirect starts) per client address per minute, shared by every instance. */
  attemptsPerMinute: z.number().int().min(1).default(30),
  /** Form strategies: the zod schema of the posted fields. Default for passport-local: its username and password fields, strings, nothing else. */
  body: z.custom<z.ZodType>((v) => v instanceof z.ZodType, "must be a zod schema").optional(),
  /** Header strategies: the request header that carries the credential (lower-case). Guessed for passport-http-bearer and passport-headerapikey. */
  header: z.string().regex(/^[a-z0-9-]{1,64}$/, "must be a lower-case header name").optional(),
  /** Header strategies: the scheme the header value starts with (`Bearer`), if any. */
  scheme: z.string().regex(/^[A-Za-z0-9-]{1,32}$/).optional(),
  /** Header strategies: when the strategy refuses a credential, leave it to the next authenticator (and core's Bearer sessions) instead of 401. Default: on for the Authorization header, which core's sessions share. */
  fallThrough: z.boolean().optional(),
  /** Header strategies: the scopes of an authenticated request. Default: the verify callback's `info.scope` (a string or strings), else none. */
  scopes: fn<(user: unknown, info: unknown) => string[]>("user, info → scopes").optional(),
});

export type PassportProviderOptions = z.input<typeof passportOptionsSchema>;

export interface ResolvedPassportOptions extends Omit<z.output<typeof passportOptionsSchema>, "kind" | "toIdentity" | "emits" | "header" | "fallThrough"> {
  kind: PassportKind;
  toIdentity: ToIdentity;
  emits: string[];
  header: { name: string; scheme: string | undefined } | undefined;
  fallThrough: boolean;
}

type Guessable = PassportStrategy & { _oauth2?: unknown; _usernameField?: unknown; apiKeyHeader?: { header?: unknown } };

function guessKind(strategy: Guessable): PassportKind | undefined {
  if (strategy._oauth2) return "redirect"; // passport-oauth2 and everything on it, passport-openidconnect
  if (typeof strategy._usernameField === "string") return "form"; // passport-local
  if (strategy.name === "bearer" || strategy.apiKeyHeader) return "header";
  return undefined;
}

/** Validates once, at construction: a bad option is a TypeError that says what to change. */
export function resolvePassportOptions(input: PassportProviderOptions): ResolvedPassportOptions {
  const options = parseOptions(passportOptionsSchema, input, "passportProvider");
  const strategy = options.strategy as Guessable;
  const kind = options.kind ?? guessKind(strategy);
  const where = `passportProvider("${options.id}")`;
  if (!kind) throw new TypeError(`${where}: cannot tell how strategy "${strategy.name ?? "?"}" is reached; set kind: "redirect", "form" or "header"`);
  if (kind !== "redirect" && !options.toIdentity) {
    throw new TypeError(`${where}: a ${kind} strategy needs toIdentity(user, info) → { network, sourceIdentifier, sourceType }; the default mapping is for OAuth profiles`);
  }
  if (kind === "redirect" && !strategy._oauth2 && !options.toIdentity) {
    throw new TypeError(`${where}: this redirect strategy is not OAuth-based; give toIdentity(user, info)`);
  }
  if (options.body && kind !== "form") throw new TypeError(`${where}: body is for form strategies`);
  let header: ResolvedPassportOptions["header"];
  if (kind === "header") {
    const apiKeyHeader = typeof strategy.apiKeyHeader?.header === "string" ? strategy.apiKeyHeader.header.toLowerCase() : undefined;
    const name = options.header ?? apiKeyHeader ?? (strategy.name === "bearer" ? "authorization" : undefined);
    if (!name) throw new TypeError(`${where}: a header strategy needs header: "<the request header it reads>"`);
    header = { name, scheme: options.scheme ?? (options.header === undefined && strategy.name === "bearer" ? "Bearer" : undefined) };
  } else if (options.header || options.scheme || options.fallThrough !== undefined || options.scopes) {
    throw new TypeError(`${where}: header, scheme, fallThrough and scopes are for header strategies`);
  }
  for (const key of ["callbackURL", "state", "session"]) {
    if (key in options.authenticateOptions) throw new TypeError(`${where}: authenticateOptions.${key} is set by Erebus`);
  }
  const emits = options.emits ?? (options.sourceTypes?.length ? options.sourceTypes.map((t) => t.type) : ["oauth"]);
  return {
    ...options,
    kind,
    toIdentity: options.toIdentity ?? oauthProfileIdentity(options.id),
    emits,
    header,
    fallThrough: options.fallThrough ?? header?.name === "authorization",
  };
}
