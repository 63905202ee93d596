export { testProvider, testAccountSourceType, type TestProviderOptions } from "./test-provider.js";
export { engines, rowCounts, tableRowCounts, type Engine, type EnginesOptions } from "./engines.js";
export { startPostgres, findPostgres, postgresBinDir, type RunningPostgres } from "./postgres-server.js";
export { listen, cookieFrom, startAuthServer, createTestAuth, type Running } from "./http.js";
export {
  routesOf as mountedRoutes,
  testProviderConformance,
  type ProviderConformanceOptions,
  type ConformanceTestApi,
  type ConformanceHarness,
  type ConformanceRequest,
  type ConformanceResponse,
  type ConformanceSignIn,
  type SourceTypeExamples,
} from "./conformance.js";
