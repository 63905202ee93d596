import express, { type ErrorRequestHandler, type Router } from "express";
import type { Authentication } from "./authentication.js";
import { AuthError } from "./errors.js";
import { coreRouteDocs } from "./core-routes.js";
import { buildOpenApiDocument, collectRoutes, describeRoute, type CollectedRoute } from "./openapi.js";
import type { ResolvedOptions } from "./options.js";
import { checkRouteCollisions, type ProviderInstance } from "./provider-registry.js";
import { mapDatabaseError } from "./users.js";

export interface RouterDeps {
  options: ResolvedOptions;
  authentication: Authentication;
  instances: readonly ProviderInstance[];
  cookieName: string;
  errorHandler: ErrorRequestHandler;
  ready: Promise<void>;
  /** Core's own routes (session, sign-out, people, …), added before the providers'. */
  coreRoutes(router: Router): void;
}

/**
 * The auth router: readiness, the cross-site check, JSON-only bodies (form bodies only on routes that
 * say `form: true`), core's routes, each provider's routes, the OpenAPI document, 404 and errors.
 * Throws at `createAuth` for two owners of one route or a route documenting a code in no table.
 */
export function createRouter(deps: RouterDeps): Router {
  const { options, authentication, instances } = deps;
  const router: Router = express.Router();
  router.use(async function erebusReady(_req, _res, next) {
    try {
      await deps.ready;
    } catch (error) {
      throw AuthError.of("ERR_DATABASE_UNAVAILABLE", { cause: error, retryAfter: 5 });
    }
    next();
  });
  router.use(function erebusOriginCheck(req, _res, next) {
    // Login CSRF too: no cross-site request may sign someone in or out.
    authentication.checkSameSite(req);
    next();
  });
  const formPaths: RegExp[] = [];
  router.use(function erebusJsonOnly(req, _res, next) {
    if (req.method !== "GET" && req.method !== "HEAD" && typeof req.is("*/*") === "string" && !req.is("application/json")) {
      const form = req.method === "POST" && formPaths.some((pattern) => pattern.test(req.path)) && req.is("application/x-www-form-urlencoded");
      if (!form) throw AuthError.of("ERR_UNSUPPORTED_MEDIA_TYPE");
    }
    next();
  });
  router.use(express.json({ limit: options.bodyLimit, strict: true }));
  router.use(express.urlencoded({ limit: options.bodyLimit, extended: false, parameterLimit: 20 }));

  let openApiDocument: string | undefined;
  deps.coreRoutes(router);
  router.get("/openapi.json", describeRoute(coreRouteDocs.openapi), function erebusOpenApi(_req, res) {
    res.type("application/json").send(openApiDocument);
  });
  const collected: CollectedRoute[] = collectRoutes(router, "core");
  for (const instance of instances) {
    if (!instance.routes) continue;
    const sub = express.Router();
    instance.routes(sub);
    router.use(sub);
    const routes = collectRoutes(sub, instance.provider.id);
    collected.push(...routes);
    for (const path of instance.provider.formRoutes ?? []) formPaths.push(pathPattern(path));
    for (const route of routes) if (route.method === "post" && route.doc?.form === true) formPaths.push(pathPattern(route.path));
  }
  checkRouteCollisions(collected);
  // Built now, not on the first request: a route documenting a code in no errors table fails createAuth.
  openApiDocument = JSON.stringify(
    buildOpenApiDocument({
      title: "Erebus",
      version: "0.1.0",
      baseURL: options.baseURL,
      basePath: options.basePath,
      cookieName: deps.cookieName,
      routes: collected,
      errors: Object.fromEntries(instances.map(({ provider }) => [provider.id, provider.errors ?? {}])),
    }),
  );

  router.use(function erebusNotFound() {
    throw AuthError.of("ERR_NOT_FOUND");
  });
  router.use(((error, req, res, next) => deps.errorHandler(mapDatabaseError(error), req, res, next)) as ErrorRequestHandler);
  return router;
}

/** A route path (`/passport/:id`) as a pattern for a request path; only plain segments and `:params`. */
function pathPattern(path: string): RegExp {
  const escaped = path.split("/").map((segment) => (segment.startsWith(":") ? "[^/]+" : segment.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")));
  return new RegExp(`^${escaped.join("/")}/?$`);
}
