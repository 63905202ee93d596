// Moved to @erebus/core/testing; re-exported so the repo's imports keep working.
export { listen, cookieFrom, startAuthServer, createTestAuth, type Running } from "@erebus/core/testing";
