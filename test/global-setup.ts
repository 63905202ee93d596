import type { TestProject } from "vitest/node";
// By path, not by package name: the global setup is loaded without the erebus-source condition.
import { findPostgres } from "../packages/core/src/testing/postgres-server.js";

declare module "vitest" {
  export interface ProvidedContext {
    /** Admin URL of a real PostgreSQL server, or null when none is available (never under CI=true). */
    postgresUrl: string | null;
  }
}

let stop: (() => Promise<void>) | undefined;

/**
 * Finds a real PostgreSQL server for the suite (`findPostgres` of @erebus/core/testing): DATABASE_URL
 * when it is a postgres:// URL, else a throwaway server started from the PostgreSQL binaries when
 * they are installed. Under CI=true a missing server fails the run instead of skipping the server tests.
 */
export async function setup(project: TestProject) {
  const postgres = await findPostgres({ required: process.env.CI === "true" });
  stop = postgres.stop;
  if (!postgres.url) console.warn("[erebus tests] no PostgreSQL server: the server half of the suite is skipped (PGlite runs)");
  project.provide("postgresUrl", postgres.url);
}

export async function teardown() {
  await stop?.();
}
