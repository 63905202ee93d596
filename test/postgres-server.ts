// Moved to @erebus/core/testing; re-exported so the repo's imports keep working.
export { startPostgres, postgresBinDir, findPostgres, type RunningPostgres } from "@erebus/core/testing";
