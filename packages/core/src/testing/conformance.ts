import assert from "node:assert/strict";
import type { Router } from "express";
import type * as z from "zod";
import type { ErebusAuth } from "../create-auth.js";
import type { Database } from "../db/types.js";
import { coreErrors } from "../errors.js";
import { silentLogger } from "../logger.js";
import { collectRoutes, type CollectedRoute } from "../openapi.js";
import type { AuthOptions } from "../options.js";
import { findPgUnsafeString } from "../pg-text.js";
import type { ErebusProvider } from "../provider.js";
import { SourceTypeRegistry, type JsonKind, type SourceTypeDefinition } from "../source-types.js";
import { engines as defaultEngines, tableRowCounts, type Engine } from "./engines.js";
import { startAuthServer, type Running } from "./http.js";

/**
 * The test functions the kit registers its checks with. vitest's (and node:test's `describe`, `it`,
 * `before` as `beforeAll`, `after` as `afterAll`) fit: the kit imports no test runner, so
 * `@erebus/core/testing` needs none at run time.
 */
export interface ConformanceTestApi {
  describe(name: string, fn: () => void): unknown;
  it(name: string, fn: () => Promise<void>, timeout?: number): unknown;
  beforeAll(fn: () => Promise<void>, timeout?: number): unknown;
  afterAll(fn: () => Promise<void>, timeout?: number): unknown;
}

/** An answer of the app under test, body already read (JSON parsed when it is JSON). */
export interface ConformanceResponse {
  status: number;
  headers: Headers;
  /** The parsed JSON body, or the text when the body is not JSON, or null when empty. */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- a test step reads whatever the route answered
  body: any;
  text: string;
}

export interface ConformanceRequest {
  method?: string;
  /** Sent as JSON (with `content-type: application/json`). */
  json?: unknown;
  /** Sent as `application/x-www-form-urlencoded`. */
  form?: Record<string, string>;
  /** Sent as it is (set the content type yourself). */
  raw?: string;
  /** Extra headers; `origin` defaults to the app's own origin on every request. */
  headers?: Record<string, string>;
}

/** What the kit hands a provider's sign-in steps: the running app of one engine. */
export interface ConformanceHarness {
  readonly engine: Engine["name"];
  /** The listening server's root URL (`http://127.0.0.1:<port>`). */
  readonly url: string;
  /** The app's public origin (`baseURL`), sent as `Origin` by {@link ConformanceHarness.request}. */
  readonly origin: string;
  readonly auth: ErebusAuth;
  readonly db: Database;
  /**
   * Sends a request to `<url>/auth<path>`. Every problem+json answer is recorded for the error-table
   * check, so steps should use it (not `fetch`) for requests to the auth router.
   */
  request(path: string, init?: ConformanceRequest): Promise<ConformanceResponse>;
}

/** The provider's sign-in steps, for the identity, concurrency and replay checks. */
export interface ConformanceSignIn<Identity> {
  /** A fresh identity no one has signed in with (a new wallet, a new address). */
  identity(h: ConformanceHarness): Identity | Promise<Identity>;
  /** One complete sign-in of `identity` (fetch a nonce, sign, verify…); answers the final response, whose body has `user.id`. */
  signIn(h: ConformanceHarness, identity: Identity): Promise<ConformanceResponse>;
  /**
   * Signs `identity` in once with a credential (it must succeed) and returns a function that sends the
   * very same credential again, which must be refused with a 4xx and write nothing.
   */
  replay?(h: ConformanceHarness, identity: Identity): Promise<() => Promise<ConformanceResponse>>;
  /** How many first sign-ins of one identity run at once (default 5). */
  concurrency?: number;
}

/** Examples of one source type; invalid ones must be refused by zod and by the database trigger alike. */
export interface SourceTypeExamples {
  valid?: readonly unknown[];
  invalid?: readonly unknown[];
}

export interface ProviderConformanceOptions<Identity = unknown> {
  /** `describe`, `it`, `beforeAll`, `afterAll` of the test runner (pass vitest's). */
  test: ConformanceTestApi;
  /** What the suites are called (`<name> conformance on pglite`); default `provider`. */
  name?: string;
  /** Makes the provider under test (called once per engine). */
  provider: () => ErebusProvider;
  /** Other providers mounted in the same app: their migrations apply alongside, their routes are not checked. */
  alongside?: () => ErebusProvider[];
  /**
   * More createAuth options (a clock, trustedOrigins, …). Default: `baseURL` `http://app.test`, a
   * silent logger, core's rate limiter off (the kit sends hundreds of requests from one address).
   */
  auth?: Partial<Omit<AuthOptions, "database" | "providers">>;
  /** The engines to run on (default {@link engines}()); pass `engines({ postgresUrl })` to reuse a server. */
  engines?: Engine[];
  /** Examples per source type the provider emits; the kit derives a valid and invalid ones from each type's rule too. */
  sourceTypes?: Readonly<Record<string, SourceTypeExamples>>;
  /** Values for route path parameters (`{ provider: "google" }` for `/oauth/:provider`); default `x`. */
  pathParams?: Readonly<Record<string, string>>;
  /** Routes the malformed-input check leaves out, as `METHOD /path` (`GET /email/verify`), each for a reason you can state. */
  skipRoutes?: readonly string[];
  /** Tables the "no row written" checks do not count (core's `erebus_rate_limits` is never counted). */
  ignoreTables?: readonly string[];
  signIn?: ConformanceSignIn<Identity>;
  /**
   * Headers of a signed-in caller (`{ authorization: "Bearer …" }`), sent with the malformed input to
   * routes documented with `auth`, so it reaches their validation instead of stopping at the 401.
   */
  authHeaders?: (h: ConformanceHarness) => Promise<Record<string, string>>;
  /** Per-test timeout in ms (default 60 000). */
  timeout?: number;
}

interface RouteUnderTest {
  method: string;
  /** Express path with parameters filled in. */
  path: string;
  template: string;
  body?: z.ZodType;
  query?: z.ZodType;
  form: boolean;
  /** Documented as needing a signed-in caller. */
  guarded: boolean;
  /** Documented as answering an HTML page (`contentType: "text/html"`): it may refuse with a 4xx page. */
  page: boolean;
}

interface Case {
  name: string;
  /** A plain HTML form's submission: a page may answer it. */
  page?: boolean;
  headers: Record<string, string>;
  body?: string;
  query?: string;
}

/** Codes core answers before a route runs: a request refused with one of these never reached the route's validation. */
const FRONT_DOOR = new Set([
  "ERR_ORIGIN_FORBIDDEN", "ERR_UNSUPPORTED_MEDIA_TYPE", "ERR_BODY_MALFORMED", "ERR_BODY_TOO_LARGE",
  "ERR_UNAUTHENTICATED", "ERR_SESSION_INVALID", "ERR_CREDENTIAL_INVALID", "ERR_NOT_FOUND",
]);
const CROSS_SITE_ORIGIN = "https://evil.example";
const HOSTILE_STRINGS = ["a\u0000b", "\ud800", "x\udfff", "\udbff\u0000"];
const WRONG_VALUES: readonly unknown[] = [12345, -1.5, true, null, [], {}, "x", ["x"]];

/** Every route of the app's router and the routers mounted in it, with the zod schemas from `describeRoute`. */
export function routesOf(router: Router): CollectedRoute[] {
  const out = collectRoutes(router, "core");
  for (const layer of (router as unknown as { stack: { route?: unknown; handle?: { stack?: unknown } }[] }).stack) {
    if (!layer.route && Array.isArray(layer.handle?.stack)) out.push(...routesOf(layer.handle as unknown as Router));
  }
  return out;
}

/** A value of a JSON kind, for deriving source-type examples. */
function sampleOfKind(kind: JsonKind): unknown {
  switch (kind) {
    case "string": return "conformance";
    case "number": return 1.5;
    case "integer": return 7;
    case "boolean": return true;
    case "object": return { note: "conformance" };
    case "array": return ["conformance"];
    default: return [sampleOfKind(kind.slice("array:".length) as JsonKind)];
  }
}
const wrongKind = (kind: JsonKind): unknown => (kind === "string" || kind.startsWith("array:string") ? 12345 : kind === "object" ? ["not", "an", "object"] : "not-a-" + kind);

/** A valid example from a rule, and invalid ones: the type dropped, each required key missing, each key of the wrong kind. */
function deriveExamples(definition: SourceTypeDefinition): { valid: Record<string, unknown>; invalid: unknown[] } {
  const valid: Record<string, unknown> = { type: definition.type };
  for (const [key, kind] of Object.entries(definition.rule.required)) valid[key] = sampleOfKind(kind);
  const invalid: unknown[] = [[definition.type], { ...valid, type: 5 }];
  for (const key of Object.keys(definition.rule.required)) {
    const { [key]: _drop, ...rest } = valid;
    invalid.push(rest);
  }
  for (const [key, kind] of [...Object.entries(definition.rule.required), ...Object.entries(definition.rule.optional)]) {
    invalid.push({ ...valid, [key]: wrongKind(kind) });
  }
  return { valid, invalid };
}

/** A plausible value for a JSON schema (the first option of an enum, a string for a string…). */
function sampleOfSchema(schema: Record<string, unknown> | undefined): unknown {
  if (!schema) return "x";
  if ("const" in schema) return schema.const;
  if (Array.isArray(schema.enum)) return schema.enum[0];
  const options = (schema.anyOf ?? schema.oneOf) as Record<string, unknown>[] | undefined;
  if (options?.length) return sampleOfSchema(options[0]);
  const type = Array.isArray(schema.type) ? schema.type[0] : schema.type;
  switch (type) {
    case "integer": return typeof schema.minimum === "number" ? schema.minimum : 1;
    case "number": return 1;
    case "boolean": return true;
    case "array": return [];
    case "object": return sampleObject(schema);
    default: return "x";
  }
}
function sampleObject(schema: Record<string, unknown>): Record<string, unknown> {
  const properties = (schema.properties ?? {}) as Record<string, Record<string, unknown>>;
  return Object.fromEntries(Object.entries(properties).map(([key, property]) => [key, sampleOfSchema(property)]));
}

/** Variants of an object that break it: each field missing, of each wrong type, hostile, huge; an extra field; not an object. */
function malformedObjects(schema: Record<string, unknown>): [string, unknown][] {
  const properties = (schema.properties ?? {}) as Record<string, Record<string, unknown>>;
  const required = (schema.required ?? []) as string[];
  const sample = sampleObject(schema);
  const out: [string, unknown][] = [["empty object", {}], ["an array", []], ["a number", 5], ["null", null], ["extra field", { ...sample, conformanceExtra: "x" }]];
  out.push(["NUL in a key", { ...sample, "a\u0000": "x" }], ["lone surrogate in a key", { ...sample, "\ud800": "x" }]);
  for (const key of required) {
    const { [key]: _drop, ...rest } = sample;
    out.push([`missing ${key}`, rest]);
  }
  for (const key of Object.keys(properties)) {
    for (const value of WRONG_VALUES) out.push([`${key} = ${JSON.stringify(value)}`, { ...sample, [key]: value }]);
    for (const value of HOSTILE_STRINGS) out.push([`${key} = ${JSON.stringify(value)}`, { ...sample, [key]: value }]);
    out.push([`${key} huge (12 000 chars)`, { ...sample, [key]: "a".repeat(12_000) }]);
    out.push([`${key} nested NUL`, { ...sample, [key]: { deep: ["\u0000"] } }]);
  }
  return out;
}

/** Whether a route refuses a parsed value before doing anything: core's NUL/surrogate check or the route's own schema. */
function refuses(schema: z.ZodType, value: unknown): boolean {
  if (findPgUnsafeString(value)) return true;
  try {
    return !schema.safeParse(value).success;
  } catch {
    return true;
  }
}

/** The generated malformed requests for one route. */
function casesFor(route: RouteUnderTest, openApi: OpenApiDoc, basePath: string, origin: string): Case[] {
  // The kit asks as an API client does (Accept: application/json): a route may answer a browser's
  // malformed request with a redirect or a page (the OAuth callback does), never an API client's.
  const accept = "application/json";
  const json = { "content-type": "application/json", origin, accept };
  const cases: Case[] = [];
  const operation = openApi.paths[`${basePath}${route.template}`.replace(/:([A-Za-z0-9_]+)/g, "{$1}")]?.[route.method];
  if (route.method !== "get" && route.method !== "head") {
    const bodySchema = operation?.requestBody?.content?.["application/json"]?.schema;
    if (route.body && bodySchema) {
      // A route whose body is optional may read an empty `{}` or `[]` as "no body" (the wallet's nonce routes do).
      const optional = !refuses(route.body, undefined);
      for (const [name, value] of malformedObjects(bodySchema)) {
        if (optional && (name === "empty object" || name === "an array")) continue;
        if (refuses(route.body, value)) cases.push({ name, headers: json, body: JSON.stringify(value) });
      }
      const sample = JSON.stringify(sampleObject(bodySchema));
      cases.push({ name: "a body over the size limit", headers: json, body: JSON.stringify({ pad: "a".repeat(1024 * 1024 + 1) }) });
      cases.push({ name: "wrong content type (text/plain)", headers: { "content-type": "text/plain", origin }, body: sample });
      cases.push({ name: "wrong content type (multipart)", headers: { "content-type": "multipart/form-data; boundary=x", origin }, body: "--x--" });
      const form = { "content-type": "application/x-www-form-urlencoded", origin };
      if (!route.form) cases.push({ name: "wrong content type (urlencoded)", headers: form, body: "a=b" });
      else {
        // A form route takes urlencoded fields too: the same checks, as a plain HTML form would send them.
        for (const [name, fields] of [["form: unknown field only", { conformanceExtra: "x" }], ...Object.keys(sampleObject(bodySchema)).map((key) => [`form: NUL in ${key}`, { ...sampleObject(bodySchema), [key]: "a\u0000b" }])] as [string, Record<string, unknown>][]) {
          if (refuses(route.body, fields)) cases.push({ name, headers: form, page: true, body: new URLSearchParams(Object.entries(fields).map(([k, v]) => [k, String(v)])).toString() });
        }
      }
      cases.push({ name: "cross-site Origin", headers: { ...json, origin: CROSS_SITE_ORIGIN }, body: sample });
      cases.push({ name: "cross-site Sec-Fetch-Site without Origin", headers: { "content-type": "application/json", "sec-fetch-site": "cross-site" }, body: sample });
    }
    cases.push({ name: "malformed JSON", headers: json, body: '{"a":' });
    cases.push({ name: "JSON declared in a charset other than UTF-8", headers: { "content-type": "application/json; charset=utf-16", origin }, body: "{}" });
  }
  if (route.query) {
    const parameters = (operation?.parameters ?? []).filter((p) => p.in === "query");
    const sample = Object.fromEntries(parameters.map((p) => [p.name, String(sampleOfSchema(p.schema))]));
    const variants: [string, Record<string, string | string[]>][] = [["no query", {}]];
    for (const { name } of parameters) {
      const { [name]: _drop, ...rest } = sample;
      variants.push([`missing ${name}`, rest]);
      for (const hostile of HOSTILE_STRINGS) variants.push([`${name} = ${JSON.stringify(hostile)}`, { ...sample, [name]: hostile.replace(/[\ud800-\udfff]/g, "\u0000") }]);
      variants.push([`${name} huge`, { ...sample, [name]: "a".repeat(6_000) }]);
      variants.push([`${name} twice`, { ...sample, [name]: ["a", "b"] }]);
    }
    for (const [name, value] of variants) {
      if (!refuses(route.query, value)) continue;
      const query = new URLSearchParams();
      for (const [key, v] of Object.entries(value)) for (const item of [v].flat()) query.append(key, item);
      cases.push({ name: `query: ${name}`, headers: { origin, accept }, query: query.toString() });
    }
  }
  return cases;
}

interface OpenApiDoc {
  paths: Record<string, Record<string, {
    tags?: string[];
    parameters?: { name: string; in: string; schema?: Record<string, unknown> }[];
    requestBody?: { content?: Record<string, { schema?: Record<string, unknown> }> };
    responses?: Record<string, { content?: Record<string, { schema?: { allOf?: { properties?: { code?: { enum?: string[] } } }[] } }> }>;
  }>>;
}

/**
 * Registers the provider conformance suite: one `describe` per engine (PGlite, and a real PostgreSQL
 * server when there is one) checking, for the provider `options.provider()` makes:
 *
 * - its migrations apply alongside core's (and `alongside` providers'), twice (the second run applies
 *   nothing and leaves the schema as it was), and from two instances at once;
 * - each source type it emits gets the same verdict from zod and from the database trigger, for a
 *   valid example and invalid ones (given in `sourceTypes` and derived from the type's rule);
 * - every route it adds answers a generated set of malformed requests (from the route's
 *   `describeRoute` schemas, kept to what the route's own zod schema refuses: missing, extra and
 *   wrongly typed fields, NUL and lone surrogates, huge strings, over-size bodies, wrong content
 *   types, cross-site requests) with a 4xx `application/problem+json`, and writes no row in any table;
 * - every POST route refuses a cross-site request (403 `ERR_ORIGIN_FORBIDDEN`), signed in or not;
 * - with `signIn` steps: one identity signed in twice is one row; N concurrent first sign-ins of one
 *   identity are one row; a replayed credential is refused (4xx, no row);
 * - every error code the app answered with during the run is in core's or the provider's `errors`
 *   table with the status it answered, and documented on the route that sent it.
 *
 * The kit imports no test runner: pass yours in `test`.
 *
 * @example
 * import { afterAll, beforeAll, describe, it } from "vitest";
 * import { testProviderConformance } from "@erebus/core/testing";
 *
 * testProviderConformance({
 *   test: { describe, it, beforeAll, afterAll },
 *   provider: () => telegramProvider({ botToken: "123:abc" }),
 *   sourceTypes: { telegram: { valid: [{ type: "telegram", id: 1 }], invalid: [{ type: "telegram", id: "1" }] } },
 *   signIn: { identity: () => newTelegramUser(), signIn: (h, user) => h.request("/telegram/verify", { json: signWidget(user) }) },
 * });
 */
export function testProviderConformance<Identity>(options: ProviderConformanceOptions<Identity>): void {
  if (typeof options?.test?.describe !== "function" || typeof options.test.it !== "function") {
    throw new TypeError("testProviderConformance: pass your test runner's functions as test: { describe, it, beforeAll, afterAll }");
  }
  if (typeof options.provider !== "function") throw new TypeError("testProviderConformance: provider must be a function that returns the provider");
  const { describe, it, beforeAll, afterAll } = options.test;
  const timeout = options.timeout ?? 60_000;
  const ignore = ["erebus_rate_limits", ...(options.ignoreTables ?? [])];
  for (const engine of options.engines ?? defaultEngines()) {
    // The provider is made in beforeAll, not here: it may need what the caller's own beforeAll starts (an SMTP server, an IdP).
    describe(`${options.name ?? "provider"} conformance on ${engine.name}`, () => {
      let id: string;
      let db: (Database & { url?: string }) | undefined;
      let server: Running | undefined;
      let auth: ErebusAuth;
      let provider: ErebusProvider;
      let alongside: ErebusProvider[] = [];
      let openApi: OpenApiDoc;
      let routes: RouteUnderTest[] = [];
      let origin: string;
      let basePath: string;
      /** Every problem+json answer: route, status, code. */
      const answered: { route: string; status: number; code: string }[] = [];
      let harness: ConformanceHarness;
      const counts = () => tableRowCounts(db!, { ignore });
      const tablesOf = (set: Record<string, number>) => Object.keys(set);

      async function send(path: string, init: { method: string; headers: Record<string, string>; body?: string }): Promise<ConformanceResponse> {
        const res = await fetch(`${server!.url}${basePath}${path}`, { method: init.method, headers: init.headers, body: init.body, redirect: "manual" });
        const text = await res.text();
        let body: unknown = text === "" ? null : text;
        if (/json/.test(res.headers.get("content-type") ?? "")) {
          try {
            body = JSON.parse(text);
          } catch {
            // Left as text: the checks that need JSON say so.
          }
        }
        if (/^application\/problem\+json/.test(res.headers.get("content-type") ?? "") && typeof (body as { code?: unknown })?.code === "string") {
          answered.push({ route: `${init.method.toLowerCase()} ${path.split("?")[0]}`, status: res.status, code: (body as { code: string }).code });
        }
        return { status: res.status, headers: res.headers, body, text };
      }

      beforeAll(async () => {
        provider = options.provider();
        id = provider.id;
        alongside = options.alongside?.() ?? [];
        db = await engine.create({ max: 20 });
        ({ auth, server } = await startAuthServer({
          baseURL: "http://app.test",
          logger: silentLogger,
          rateLimit: { enabled: false },
          ...options.auth,
          migrate: false,
          database: db,
          providers: [provider, ...alongside],
        }));
        origin = new URL(String(options.auth?.baseURL ?? "http://app.test")).origin;
        basePath = "/auth";
        harness = {
          engine: engine.name,
          url: server.url,
          origin,
          auth,
          db,
          request(path, init = {}) {
            const headers: Record<string, string> = { origin, ...init.headers };
            let body: string | undefined = init.raw;
            if (init.json !== undefined) {
              headers["content-type"] ??= "application/json";
              body = JSON.stringify(init.json);
            } else if (init.form !== undefined) {
              headers["content-type"] ??= "application/x-www-form-urlencoded";
              body = new URLSearchParams(init.form).toString();
            }
            return send(path, { method: init.method ?? (body === undefined ? "GET" : "POST"), headers, body });
          },
        };
      }, timeout * 2);
      afterAll(async () => {
        await server?.close();
        await db?.close();
      }, timeout);

      it("applies its migrations alongside core's, twice (the second applies nothing), and from two instances at once", async () => {
        const first = await auth.api.migrate();
        assert.ok(first.applied.some((key) => key.startsWith("core/")), "core's migrations applied");
        for (const migration of provider.migrations ?? []) assert.ok(first.applied.includes(`${id}/${migration.id}`), `${id}/${migration.id} applied`);
        const schema = async () =>
          (await db!.query<{ t: string; c: string; d: string }>(
            "SELECT table_name AS t, column_name AS c, data_type AS d FROM information_schema.columns WHERE table_schema = 'public' ORDER BY 1, 2",
          )).rows;
        const before = await schema();
        const again = await Promise.all([auth.api.migrate(), auth.api.migrate()]);
        assert.deepEqual(again.map((r) => r.applied), [[], []], "a second run applies nothing");
        assert.deepEqual(await schema(), before, "a second run leaves the schema as it was");
        openApi = (await harness.request("/openapi.json")).body as OpenApiDoc;
        assert.ok(openApi?.paths, "GET /auth/openapi.json answers the OpenAPI document");
        routes = ownRoutes(auth, openApi, basePath, id, options.pathParams ?? {});
      }, timeout);

      it("gives the same verdict in zod and in the database trigger for each source type it emits", async () => {
        const registry = new SourceTypeRegistry(auth.sourceTypes);
        const verdicts: string[] = [];
        let n = 0;
        for (const type of provider.emits) {
          const definition = registry.get(type);
          assert.ok(definition, `emitted type ${type} is registered`);
          const derived = deriveExamples(definition);
          const given = options.sourceTypes?.[type];
          const valid = [...(given?.valid ?? []), ...(given?.valid?.length ? [] : [derived.valid])];
          const invalid = [...(given?.invalid ?? []), ...derived.invalid];
          for (const [expected, examples] of [[true, valid], [false, invalid]] as const) {
            for (const example of examples) {
              const zodSays = registry.parse(example).success;
              let dbSays = true;
              await db!.transaction(async (tx) => {
                try {
                  await tx.query("SAVEPOINT conformance");
                  await tx.query("INSERT INTO user_references (source_identifier, network, source_type) VALUES ($1, 'conformance', $2::jsonb)", [
                    `conformance-${n++}`,
                    JSON.stringify(example),
                  ]);
                } catch {
                  dbSays = false;
                } finally {
                  await tx.query("ROLLBACK TO SAVEPOINT conformance");
                }
              });
              if (zodSays !== expected || dbSays !== expected) {
                verdicts.push(`${JSON.stringify(example)}: expected ${expected ? "valid" : "invalid"}, zod says ${zodSays}, the trigger says ${dbSays}`);
              }
            }
          }
        }
        assert.deepEqual(verdicts, [], `source type verdicts differ:\n${verdicts.join("\n")}${verdicts.length ? "\n(a derived valid example failing zod means the schema is stricter than its kinds: give a valid example in sourceTypes)" : ""}`);
      }, timeout);

      it("answers generated malformed input on every route it adds with a 4xx problem+json, writing no row", async () => {
        assert.ok(routes.length > 0 || !provider.routes, "the provider's routes were found");
        const failures: string[] = [];
        let sent = 0;
        const signedIn = options.authHeaders ? await options.authHeaders(harness) : undefined;
        for (const route of routes) {
          if (options.skipRoutes?.includes(`${route.method.toUpperCase()} ${route.template}`)) continue;
          const before = await counts();
          let reached = 0;
          for (const c of casesFor(route, openApi, basePath, origin)) {
            const path = c.query === undefined ? route.path : `${route.path}?${c.query}`;
            const headers = route.guarded && signedIn ? { ...signedIn, ...c.headers } : c.headers;
            const res = await send(path, { method: route.method.toUpperCase(), headers, body: c.body });
            sent++;
            if (!FRONT_DOOR.has(res.body?.code)) reached++;
            const type = res.headers.get("content-type") ?? "";
            // A page for people (the email confirm page), or a plain form's submission, may be refused with a
            // page; everything else with problem+json.
            const fitting = type.startsWith("application/problem+json") || ((route.page || c.page) && type.startsWith("text/html"));
            if (res.status < 400 || res.status >= 500 || !fitting) {
              failures.push(`${route.method.toUpperCase()} ${route.template} (${c.name}): ${res.status} ${type} ${res.text.slice(0, 200)}`);
            }
          }
          if ((route.body || route.query) && reached === 0) {
            failures.push(`${route.method.toUpperCase()} ${route.template}: no malformed request got past core's front door to the route's own validation${route.guarded ? " (it needs a signed-in caller: pass authHeaders)" : ""}`);
          }
          const after = await counts();
          for (const table of tablesOf(after)) {
            if (after[table] !== before[table]) failures.push(`${route.method.toUpperCase()} ${route.template}: malformed input wrote ${after[table]! - before[table]!} row(s) in ${table}`);
          }
        }
        assert.deepEqual(failures, [], `${failures.length} of ${sent} malformed requests were not refused cleanly:\n${failures.join("\n")}`);
      }, timeout);

      it("refuses cross-site POSTs to every route, signed in or not (403 ERR_ORIGIN_FORBIDDEN), writing no row", async () => {
        const headers: Record<string, string>[] = [
          { "content-type": "application/json", origin: CROSS_SITE_ORIGIN },
          { "content-type": "application/x-www-form-urlencoded", origin: CROSS_SITE_ORIGIN },
          { "content-type": "application/json", "sec-fetch-site": "cross-site" },
          { "content-type": "application/json", origin: "null", "sec-fetch-site": "cross-site" },
        ];
        // A signed-in browser: its cookie rides along on cross-site requests.
        const user = await auth.api.registerSystemAgent({ agentType: "conformance", capabilities: [] });
        const { token } = await auth.api.createSession(user.id);
        const cookieName = new URL(origin).protocol === "https:" ? "__Host-erebus_session" : "erebus_session";
        const before = await counts();
        const failures: string[] = [];
        const posts = [...routes.filter((r) => r.method === "post"), { method: "post", path: "/sign-out", template: "/sign-out", form: false }];
        for (const route of posts) {
          for (const h of headers) {
            for (const cookie of [undefined, `${options.auth?.session?.cookieName ?? cookieName}=${token}`]) {
              const res = await send(route.path, { method: "POST", headers: cookie ? { ...h, cookie } : h, body: h["content-type"]!.includes("json") ? "{}" : "a=b" });
              if (res.status !== 403 || res.body?.code !== "ERR_ORIGIN_FORBIDDEN") failures.push(`POST ${route.template} ${JSON.stringify(h)}${cookie ? " with a session cookie" : ""}: ${res.status} ${res.text.slice(0, 160)}`);
            }
          }
        }
        assert.deepEqual(failures, [], failures.join("\n"));
        assert.deepEqual(await counts(), before, "a refused cross-site request wrote a row");
        assert.equal((await auth.api.checkSession(token)).ok, true, "a cross-site sign-out did not end the session");
      }, timeout);

      const flow = options.signIn;
      if (flow) {
        const userIdOf = (res: ConformanceResponse, what: string): string => {
          assert.ok(res.status >= 200 && res.status < 300, `${what}: sign-in answered ${res.status} ${res.text.slice(0, 300)}`);
          const userId = res.body?.user?.id;
          assert.equal(typeof userId, "string", `${what}: the sign-in answer has user.id`);
          return userId as string;
        };
        const users = async () => (await db!.query<{ n: number }>("SELECT count(*)::int AS n FROM user_references")).rows[0]!.n;

        it("resolves one identity signed in twice to one user_references row", async () => {
          const identity = await flow.identity(harness);
          const before = await users();
          const a = userIdOf(await flow.signIn(harness, identity), "first sign-in");
          const b = userIdOf(await flow.signIn(harness, identity), "second sign-in");
          assert.equal(b, a, "both sign-ins resolve to the same user");
          assert.ok((await users()) - before <= 1, "at most one user_references row was written");
        }, timeout);

        it(`resolves ${flow.concurrency ?? 5} concurrent first sign-ins of one identity to one row (failures are 4xx, never 5xx)`, async () => {
          const identity = await flow.identity(harness);
          const before = await users();
          const results = await Promise.all(Array.from({ length: flow.concurrency ?? 5 }, () => flow.signIn(harness, identity)));
          const ids = new Set<string>();
          for (const res of results) {
            if (res.status < 300) ids.add(userIdOf(res, "a concurrent sign-in"));
            else assert.ok(res.status >= 400 && res.status < 500, `a concurrent sign-in answered ${res.status} ${res.text.slice(0, 300)}`);
          }
          assert.equal(ids.size, 1, `the concurrent sign-ins resolved to ${ids.size} users: ${[...ids].join(", ")} (statuses ${results.map((r) => r.status).join(", ")})`);
          assert.ok((await users()) - before <= 1, "at most one user_references row was written");
        }, timeout);

        if (flow.replay) {
          it("refuses a credential replayed after use (4xx problem+json, no row written)", async () => {
            const again = await flow.replay!(harness, await flow.identity(harness));
            const before = await counts();
            const res = await again();
            assert.ok(res.status >= 400 && res.status < 500, `the replay answered ${res.status} ${res.text.slice(0, 300)}`);
            assert.match(res.headers.get("content-type") ?? "", /^application\/problem\+json/);
            assert.deepEqual(await counts(), before, "the replay wrote a row");
          }, timeout);
        }
      }

      it("answered only error codes in its errors tables, with the declared status, each documented on its route", async () => {
        const tables: Record<string, { status: number }> = { ...coreErrors };
        for (const p of [provider, ...alongside]) Object.assign(tables, p.errors ?? {});
        const problems = new Set<string>();
        for (const { route, status, code } of answered) {
          const entry = tables[code];
          if (!entry) problems.add(`${code} (${status}, from ${route}) is in no errors table`);
          else if (entry.status !== status) problems.add(`${code} was answered with ${status}, declared ${entry.status} (from ${route})`);
          const documented = documentedCodes(openApi, basePath, route, routes);
          if (documented && !documented.has(code)) problems.add(`${code} (from ${route}) is not documented on the route (describeRoute errors)`);
        }
        assert.ok(answered.length > 0, "the run saw error answers");
        assert.deepEqual([...problems], [], [...problems].join("\n"));
      }, timeout);
    });
  }
}

/** The provider's own routes (tagged with its id in the OpenAPI document), path parameters filled in. */
function ownRoutes(auth: ErebusAuth, openApi: OpenApiDoc, basePath: string, id: string, pathParams: Readonly<Record<string, string>>): RouteUnderTest[] {
  return routesOf(auth.router)
    .filter((route) => openApi.paths[`${basePath}${route.path}`.replace(/:([A-Za-z0-9_]+)/g, "{$1}")]?.[route.method]?.tags?.includes(id))
    .map((route) => ({
      method: route.method,
      template: route.path,
      path: route.path.replace(/:([A-Za-z0-9_]+)/g, (_m, name: string) => encodeURIComponent(pathParams[name] ?? "x")),
      body: route.doc?.body,
      query: route.doc?.query,
      form: route.doc?.form === true,
      guarded: (route.doc?.auth?.length ?? 0) > 0,
      page: Object.values(route.doc?.responses ?? {}).some((response) => response.contentType?.startsWith("text/html")),
    }));
}

/** The codes the OpenAPI document lists for the route that answered, or undefined when it is not a known route. */
function documentedCodes(openApi: OpenApiDoc | undefined, basePath: string, answered: string, routes: RouteUnderTest[]): Set<string> | undefined {
  if (!openApi) return undefined;
  const [method, path] = answered.split(" ") as [string, string];
  const route = routes.find((r) => r.method === method && r.path === path);
  if (!route) return undefined;
  const operation = openApi.paths[`${basePath}${route.template}`.replace(/:([A-Za-z0-9_]+)/g, "{$1}")]?.[method];
  if (!operation) return undefined;
  const codes = new Set<string>();
  for (const response of Object.values(operation.responses ?? {})) {
    for (const code of response.content?.["application/problem+json"]?.schema?.allOf?.[1]?.properties?.code?.enum ?? []) codes.add(code);
  }
  return codes;
}
