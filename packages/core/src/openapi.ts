import type { RequestHandler, Router } from "express";
import * as z from "zod";
import { coreErrors } from "./errors.js";

/** One response of a route: a description and, for JSON, the zod schema of its body. */
export interface ResponseDoc {
  description: string;
  /** The JSON body. Omit for empty (204) or non-JSON answers. */
  schema?: z.ZodType;
  /** Default `application/json` when a schema is given; `text/html` for pages, none for redirects. */
  contentType?: string;
}

/**
 * What a route is, for the OpenAPI document core serves at `GET <basePath>/openapi.json`. Written once,
 * next to the route, with the same zod schemas the route parses with: the document is generated
 * from them, so it cannot drift from what the route accepts.
 */
export interface RouteDoc {
  summary: string;
  description?: string;
  /** The JSON request body (and, with `form: true`, the same fields as a urlencoded form). */
  body?: z.ZodType;
  form?: boolean;
  /** The query string's fields. */
  query?: z.ZodType;
  /** Success (and redirect) responses by status. Error responses come from `errors`. */
  responses: Readonly<Record<number, ResponseDoc>>;
  /**
   * The problem+json codes this route can answer with: core's (`ERR_BODY_INVALID`, …) or the
   * provider's own (from its `errors` table). Core adds what every route can answer
   * (`ERR_ORIGIN_FORBIDDEN`, `ERR_DATABASE_UNAVAILABLE`, …); a code that is in no table is refused at `createAuth`.
   */
  errors?: readonly string[];
  /** Who may call it: `session` (a signed-in person), `apiKey` (a program's key), or nobody in particular (default). */
  auth?: readonly ("session" | "apiKey")[];
}

const DOC = Symbol.for("erebus.routeDoc");

/**
 * Describes the route it is placed in, for the OpenAPI document. A no-op at request time.
 *
 * @example
 * router.post("/siwe/verify", describeRoute({ summary: "Verify a SIWE message", body: siweBody, responses: { 200: { description: "signed in", schema: signInResultSchema } }, errors: ["ERR_SIWE_NONCE_USED"] }), handler);
 */
export function describeRoute(doc: RouteDoc): RequestHandler {
  const handler: RequestHandler = function erebusRouteDoc(_req, _res, next) {
    next();
  };
  Object.defineProperty(handler, DOC, { value: doc });
  return handler;
}

/** A route found on a router: method, Express path, and its doc when it has one. */
export interface CollectedRoute {
  method: string;
  path: string;
  doc: RouteDoc | undefined;
  /** The provider that added it, or `core`. */
  owner: string;
}

interface Layer {
  route?: { path: unknown; methods: Record<string, boolean>; stack: { handle: unknown }[] };
}

/** Every route of an Express router (its own stack, not nested `use`s), with the doc placed in it. */
export function collectRoutes(router: Router, owner: string): CollectedRoute[] {
  const out: CollectedRoute[] = [];
  for (const layer of (router as unknown as { stack: Layer[] }).stack) {
    const route = layer.route;
    if (!route || typeof route.path !== "string") continue;
    const doc = route.stack.map((entry) => (entry.handle as Record<symbol, RouteDoc | undefined>)[DOC]).find(Boolean);
    for (const [method, on] of Object.entries(route.methods)) {
      if (on && method !== "_all") out.push({ method, path: route.path, doc, owner });
    }
  }
  return out;
}

/**
 * Codes every route can answer with, whatever it does. The router's body parsers and its JSON-only
 * check run before any route, so a route that takes no body still refuses a malformed, oversized or
 * non-JSON one.
 */
const COMMON_ERRORS = [
  "ERR_ORIGIN_FORBIDDEN",
  "ERR_RATE_LIMITED",
  "ERR_DATABASE_UNAVAILABLE",
  "ERR_INTERNAL",
  "ERR_BODY_MALFORMED",
  "ERR_BODY_TOO_LARGE",
  "ERR_UNSUPPORTED_MEDIA_TYPE",
] as const;
const AUTH_ERRORS = ["ERR_UNAUTHENTICATED", "ERR_SESSION_INVALID", "ERR_CREDENTIAL_INVALID", "ERR_USER_DEACTIVATED"] as const;

type ErrorTable = Readonly<Record<string, { status: number; title: string }>>;

export interface OpenApiInput {
  title: string;
  version: string;
  baseURL: URL;
  basePath: string;
  cookieName: string;
  routes: readonly CollectedRoute[];
  /** Error tables by owner (`core` and each provider id). */
  errors: Readonly<Record<string, ErrorTable>>;
}

const jsonSchema = (schema: z.ZodType) => {
  const { $schema: _drop, ...rest } = z.toJSONSchema(schema, { io: "input", unrepresentable: "any", target: "draft-2020-12" }) as Record<string, unknown>;
  return rest;
};

/** Whether a body schema accepts no body at all; a schema whose preprocess or refinement throws on `undefined` needs one. */
function acceptsNothing(schema: z.ZodType): boolean {
  try {
    return schema.safeParse(undefined).success;
  } catch {
    return false;
  }
}

/** Every code a route documents, with its status; throws a TypeError naming the route for a code in no table. */
export function routeErrors(route: CollectedRoute, tables: Readonly<Record<string, ErrorTable>>): Map<string, { status: number; title: string }> {
  const table: ErrorTable = { ...coreErrors, ...(tables[route.owner] ?? {}) };
  const codes = new Set<string>(COMMON_ERRORS);
  const doc = route.doc;
  if (doc?.body) codes.add("ERR_BODY_INVALID");
  if (doc?.query) codes.add("ERR_QUERY_INVALID");
  if (doc?.auth?.length) for (const code of AUTH_ERRORS) codes.add(code);
  for (const code of doc?.errors ?? []) codes.add(code);
  const out = new Map<string, { status: number; title: string }>();
  for (const code of codes) {
    const entry = table[code];
    if (!entry) throw new TypeError(`createAuth: route ${route.method.toUpperCase()} ${route.path} (${route.owner}) documents ${code}, which is in neither core's nor ${route.owner}'s errors table`);
    out.set(code, entry);
  }
  return out;
}

/** Builds the OpenAPI 3.1 document of the mounted routes. */
export function buildOpenApiDocument(input: OpenApiInput): Record<string, unknown> {
  const base = input.basePath === "/" ? "" : input.basePath;
  const paths: Record<string, Record<string, unknown>> = {};
  for (const route of input.routes) {
    const doc = route.doc;
    const openApiPath = `${base}${route.path}`.replace(/:([A-Za-z0-9_]+)/g, "{$1}");
    const parameters: unknown[] = [...route.path.matchAll(/:([A-Za-z0-9_]+)/g)].map((match) => ({ name: match[1], in: "path", required: true, schema: { type: "string" } }));
    if (doc?.query) {
      const schema = jsonSchema(doc.query) as { properties?: Record<string, unknown>; required?: string[] };
      for (const [name, property] of Object.entries(schema.properties ?? {})) {
        parameters.push({ name, in: "query", required: schema.required?.includes(name) ?? false, schema: property });
      }
    }
    const responses: Record<string, unknown> = {};
    for (const [status, response] of Object.entries(doc?.responses ?? { 200: { description: "undocumented" } })) {
      const contentType = response.contentType ?? (response.schema ? "application/json" : undefined);
      responses[status] = {
        description: response.description,
        ...(contentType ? { content: { [contentType]: response.schema ? { schema: jsonSchema(response.schema) } : {} } } : {}),
      };
    }
    const byStatus = new Map<number, string[]>();
    for (const [code, { status }] of routeErrors(route, input.errors)) byStatus.set(status, [...(byStatus.get(status) ?? []), code]);
    for (const [status, codes] of [...byStatus].sort(([a], [b]) => a - b)) {
      responses[String(status)] = {
        description: codes.join(", "),
        content: {
          "application/problem+json": {
            schema: { allOf: [{ $ref: "#/components/schemas/Problem" }, { properties: { status: { const: status }, code: { enum: codes.sort() } } }] },
          },
        },
      };
    }
    const body = doc?.body ? jsonSchema(doc.body) : undefined;
    const security = doc?.auth?.length
      ? doc.auth.flatMap((kind): Record<string, string[]>[] => (kind === "session" ? [{ sessionCookie: [] }, { bearerSession: [] }] : [{ apiKey: [] }]))
      : undefined;
    (paths[openApiPath] ??= {})[route.method] = {
      operationId: `${route.owner}_${route.method}_${route.path.replace(/[^A-Za-z0-9]+/g, "_").replace(/^_|_$/g, "")}`,
      summary: doc?.summary ?? "(undocumented)",
      ...(doc?.description ? { description: doc.description } : {}),
      tags: [route.owner],
      ...(parameters.length ? { parameters } : {}),
      ...(body
        ? {
            requestBody: {
              required: !acceptsNothing(doc!.body!),
              content: { "application/json": { schema: body }, ...(doc?.form ? { "application/x-www-form-urlencoded": { schema: body } } : {}) },
            },
          }
        : {}),
      responses,
      ...(security ? { security } : {}),
    };
  }
  return {
    openapi: "3.1.0",
    info: { title: input.title, version: input.version },
    servers: [{ url: input.baseURL.origin }],
    paths,
    components: {
      schemas: {
        Problem: {
          type: "object",
          description: "RFC 9457 problem details; match on `code`.",
          required: ["type", "title", "status", "code"],
          properties: {
            type: { type: "string" },
            title: { type: "string" },
            status: { type: "integer" },
            detail: { type: "string" },
            code: { type: "string", pattern: "^ERR_[A-Z0-9_]+$" },
          },
        },
      },
      securitySchemes: {
        sessionCookie: { type: "apiKey", in: "cookie", name: input.cookieName },
        bearerSession: { type: "http", scheme: "bearer", description: "A session token from a sign-in made with `Erebus-Session-Transport: bearer`." },
        apiKey: { type: "apiKey", in: "header", name: "X-API-Key" },
      },
    },
  };
}

/** A `user_references` row as the routes send it (for response documentation). */
export const userReferenceSchema = z.object({
  id: z.uuid(),
  person_id: z.uuid(),
  source_identifier: z.string(),
  network: z.string(),
  user_type: z.enum(["external", "api", "agent", "system"]),
  source_type: z.looseObject({ type: z.string() }),
  email: z.string().nullable(),
  metadata: z.record(z.string(), z.unknown()).nullable(),
  preferences: z.record(z.string(), z.unknown()).nullable(),
  is_active: z.boolean().nullable(),
  created_at: z.string(),
  updated_at: z.string(),
});

/** A person and its sign-in identities (no secrets, no provider data). */
export const personSchema = z.object({
  id: z.uuid(),
  identities: z.array(
    z.object({
      id: z.uuid(),
      network: z.string(),
      source_identifier: z.string(),
      type: z.string(),
      email: z.string().nullable(),
      is_active: z.boolean().nullable(),
      created_at: z.string(),
    }),
  ),
});

/**
 * What every sign-in route answers: the user and the new session (`token` only for bearer clients).
 * After a proof made under a link intent: the session's own user and session (no new one), the
 * person as it is now, the identity proven, and whether it was linked, merged or re-proven.
 */
export const signInResultSchema = z.object({
  user: userReferenceSchema,
  session: z.object({ id: z.string(), expiresAt: z.string(), token: z.string().optional() }),
  person: personSchema.optional(),
  linked: userReferenceSchema.optional(),
  outcome: z.enum(["linked", "merged", "reauthenticated"]).optional(),
});
