import type { TestProject } from "vitest/node";
import { startPostgres, type RunningPostgres } from "./postgres-server.js";

declare module "vitest" {
  export interface ProvidedContext {
    /** Admin URL of a real PostgreSQL server, or null when none is available (never under CI=true). */
    postgresUrl: string | null;
  }
}

let server: RunningPostgres | undefined;

/**
 * Finds a real PostgreSQL server for the suite: DATABASE_URL when it is a postgres:// URL, else a
 * throwaway server started from the PostgreSQL binaries when they are installed. Under CI=true a
 * missing server fails the run instead of skipping the server tests.
 */
export async function setup(project: TestProject) {
  const fromEnv = process.env.DATABASE_URL;
  let url: string | null = fromEnv && /^postgres(ql)?:\/\//.test(fromEnv) ? fromEnv : null;
  if (!url) {
    server = await startPostgres();
    url = server?.url ?? null;
  }
  if (!url && process.env.CI === "true") {
    throw new Error("CI=true: no PostgreSQL server (set DATABASE_URL=postgres://… or install postgresql-15)");
  }
  if (!url) console.warn("[erebus tests] no PostgreSQL server: the server half of the suite is skipped (PGlite runs)");
  project.provide("postgresUrl", url);
}

export async function teardown() {
  await server?.stop();
}
