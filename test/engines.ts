import { inject } from "vitest";
import { engines as kitEngines, type Engine } from "@erebus/core/testing";

// The logic lives in @erebus/core/testing; this file keeps the repo's imports working and hands the
// kit the server the global setup found (vitest's inject is the one thing the package cannot use).
export { rowCounts, tableRowCounts, type Engine } from "@erebus/core/testing";

/**
 * The engines the suite runs against: PGlite always, the real PostgreSQL server when the global
 * setup found one (always under CI=true).
 */
export function engines(): Engine[] {
  return kitEngines({ postgresUrl: inject("postgresUrl") });
}

/** The server engine, or undefined (the caller then skips, which CI=true never lets happen). */
export function serverEngine(): Engine | undefined {
  return engines().find((engine) => engine.name === "postgres");
}
