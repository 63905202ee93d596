import type { Request } from "express";
import { checkMigrationSet } from "./migrate.js";
import type { CollectedRoute } from "./openapi.js";
import type { ErebusProvider, ProviderAuthResult, ProviderCommand, ProviderContext, ProviderSetup } from "./provider.js";
import type { SourceTypeRegistry } from "./source-types.js";

const PROVIDER_ID = /^[a-z][a-z0-9-]{0,31}$/;
const FORM_PATH = /^\/[A-Za-z0-9/_-]+$/;

/** Checks the providers' static parts and registers their source types; throws a TypeError naming the provider. */
export function checkProviders(providers: readonly ErebusProvider[], registry: SourceTypeRegistry, production: boolean): void {
  const ids = new Set<string>();
  for (const [index, provider] of providers.entries()) {
    const where = `providers[${index}]${typeof provider?.id === "string" ? ` ("${provider.id}")` : ""}`;
    if (!provider || typeof provider !== "object") throw new TypeError(`createAuth: ${where} must be a provider object`);
    if (production && provider.developmentOnly === true) {
      throw new TypeError(
        `createAuth: ${where} is for development only and production is on; set NODE_ENV=development (or EREBUS_DEV=1), or pass production: false, only where it is not a deployment`,
      );
    }
    if (typeof provider.id !== "string" || !PROVIDER_ID.test(provider.id)) {
      throw new TypeError(`createAuth: ${where}.id must be a lower-case token matching ${PROVIDER_ID}`);
    }
    if (provider.id === "core") throw new TypeError(`createAuth: ${where}.id "core" is reserved`);
    if (ids.has(provider.id)) throw new TypeError(`createAuth: ${where}.id "${provider.id}" is used by two providers`);
    ids.add(provider.id);
    for (const field of ["setup", "routes", "authenticate"] as const) {
      if (provider[field] !== undefined && typeof provider[field] !== "function") throw new TypeError(`createAuth: ${where}.${field} must be a function`);
    }
    if (provider.setup && (provider.routes || provider.authenticate || provider.commands)) {
      throw new TypeError(`createAuth: ${where} has both setup() and top-level routes/authenticate/commands: return them from setup()`);
    }
    if (!provider.setup && !provider.routes && !provider.authenticate && !provider.migrations?.length && !provider.commands) {
      throw new TypeError(`createAuth: ${where} has no setup, routes, authenticate, migrations or commands: it can do nothing`);
    }
    if (!Array.isArray(provider.emits)) throw new TypeError(`createAuth: ${where}.emits must list the source types it emits`);
    for (const path of provider.formRoutes ?? []) {
      if (typeof path !== "string" || !FORM_PATH.test(path)) throw new TypeError(`createAuth: ${where}.formRoutes must be paths like /email/verify`);
    }
    if (provider.errors !== undefined) {
      for (const [code, entry] of Object.entries(provider.errors)) {
        if (!/^ERR_[A-Z0-9_]+$/.test(code) || !entry || !Number.isInteger(entry.status) || entry.status < 400 || entry.status > 599) {
          throw new TypeError(`createAuth: ${where}.errors.${code} must be { status: 4xx|5xx, title } under an ERR_* code (use defineErrors)`);
        }
      }
    }
    for (const definition of provider.sourceTypes ?? []) {
      if (!definition || typeof definition.type !== "string" || !definition.schema || !definition.rule) {
        throw new TypeError(`createAuth: ${where}.sourceTypes must be made with defineSourceType()`);
      }
      registry.add(definition, provider.id);
    }
    checkMigrationSet({ owner: provider.id, migrations: provider.migrations ?? [] }, `createAuth: ${where}`);
  }
  for (const [index, provider] of providers.entries()) {
    for (const type of provider.emits) {
      if (!registry.get(type)) throw new TypeError(`createAuth: providers[${index}] ("${provider.id}") emits unknown source type "${type}"; register it in sourceTypes`);
    }
  }
}

/** A provider once set up: what it offers, in the one shape core works with. */
export interface ProviderInstance {
  provider: ErebusProvider;
  ctx: ProviderContext;
  routes?: ProviderSetup["routes"];
  authenticate?: (req: Request) => ProviderAuthResult | null | Promise<ProviderAuthResult | null>;
  commands: Readonly<Record<string, ProviderCommand>>;
  api: unknown;
}

/** Runs a provider's `setup` (or adapts the older top-level shape) and checks what it returned. */
export function setUpProvider(provider: ErebusProvider, ctx: ProviderContext): ProviderInstance {
  const where = `createAuth: provider "${provider.id}"`;
  let offered: ProviderSetup;
  if (provider.setup) {
    offered = provider.setup(ctx);
    if (!offered || typeof offered !== "object") throw new TypeError(`${where}: setup() must return an object ({ routes?, authenticate?, commands?, api? })`);
    if (offered instanceof Promise) throw new TypeError(`${where}: setup() must not be async; do start-up work in a migration or lazily`);
    const unknown = Object.keys(offered).filter((key) => !["routes", "authenticate", "commands", "api"].includes(key));
    if (unknown.length) throw new TypeError(`${where}: setup() returned unknown field(s) ${unknown.join(", ")}; it may return routes, authenticate, commands and api`);
  } else {
    const legacy = provider;
    offered = {
      ...(legacy.routes ? { routes: (router) => legacy.routes!(router, ctx) } : {}),
      ...(legacy.authenticate ? { authenticate: (req) => legacy.authenticate!(req, ctx) } : {}),
      ...(legacy.commands ? { commands: legacy.commands } : {}),
    };
  }
  for (const field of ["routes", "authenticate"] as const) {
    if (offered[field] !== undefined && typeof offered[field] !== "function") throw new TypeError(`${where}: setup().${field} must be a function`);
  }
  for (const [name, command] of Object.entries(offered.commands ?? {})) {
    if (!/^[a-z][a-z0-9-]*$/.test(name) || typeof command?.run !== "function") throw new TypeError(`${where}: command "${name}" must be a lower-case word with a run() function`);
  }
  return {
    provider,
    ctx,
    ...(offered.routes ? { routes: offered.routes.bind(offered) } : {}),
    ...(offered.authenticate ? { authenticate: offered.authenticate.bind(offered) } : {}),
    commands: offered.commands ?? {},
    api: offered.api,
  };
}

/**
 * `/a/:id/b` and `/a/:key/b` are the same route to Express, and so are `/a/b`, `/A/B` and `/a/b/`
 * (its routers are case-insensitive and not strict): compare with parameter names erased, in lower
 * case, without a trailing slash.
 */
const routeKey = (route: CollectedRoute) => `${route.method.toUpperCase()} ${route.path.replace(/:[A-Za-z0-9_]+/g, ":").toLowerCase().replace(/(.)\/+$/, "$1")}`;

/**
 * Whether some request path matches both routes: the same number of segments, each equal (in lower
 * case) or a parameter in either (`/a/:x` and `/:y/b` both match `/a/b`). Paths with Express 5's
 * other syntax (wildcards, optional groups) are compared as whole keys.
 */
function overlap(a: CollectedRoute, b: CollectedRoute): boolean {
  if (a.method.toUpperCase() !== b.method.toUpperCase()) return false;
  const segments = (path: string) => path.toLowerCase().replace(/(.)\/+$/, "$1").split("/");
  const x = segments(a.path);
  const y = segments(b.path);
  // A parameter is a whole segment (`:id`); one inside a segment (`/file-:id`, `:id.json`), and
  // wildcards or groups, are compared as whole keys.
  const param = /^:[a-z0-9_]+$/;
  const plain = (s: string) => param.test(s) || !/[:*{}()?+]/.test(s);
  if (![...x, ...y].every(plain)) return routeKey(a) === routeKey(b);
  return x.length === y.length && x.every((s, i) => s === y[i] || param.test(s) || param.test(y[i]!));
}

/**
 * Refuses two owners (core or providers) registering routes one request could match: the same
 * method and path, or paths that overlap through a parameter. Express would send every such request
 * to whichever was mounted first.
 */
export function checkRouteCollisions(routes: readonly CollectedRoute[]): void {
  for (let i = 0; i < routes.length; i++) {
    for (let j = 0; j < i; j++) {
      const [earlier, route] = [routes[j]!, routes[i]!];
      if (earlier.owner === route.owner || !overlap(earlier, route)) continue;
      const same = routeKey(earlier) === routeKey(route);
      throw new TypeError(
        same
          ? `createAuth: ${route.method.toUpperCase()} ${route.path} is registered by both "${earlier.owner}" and "${route.owner}"; give one of them another path`
          : `createAuth: ${route.method.toUpperCase()} ${route.path} ("${route.owner}") and ${earlier.path} ("${earlier.owner}") match the same requests (through a parameter); give one of them another path`,
      );
    }
  }
}

/** Commands of every provider, refusing two providers (or core) claiming one name. */
export function collectCommands(instances: readonly ProviderInstance[], reserved: readonly string[]): Map<string, { providerId: string; command: ProviderCommand }> {
  const out = new Map<string, { providerId: string; command: ProviderCommand }>();
  for (const instance of instances) {
    for (const [name, command] of Object.entries(instance.commands)) {
      if (reserved.includes(name)) throw new TypeError(`createAuth: provider "${instance.provider.id}" command "${name}" is one of core's`);
      const taken = out.get(name);
      if (taken) throw new TypeError(`createAuth: command "${name}" is registered by both "${taken.providerId}" and "${instance.provider.id}"`);
      out.set(name, { providerId: instance.provider.id, command });
    }
  }
  return out;
}
