import { afterAll, beforeAll, describe, inject, it } from "vitest";
import { engines, testProvider, testProviderConformance } from "@erebus/core/testing";

// Core's own test provider passes the kit every provider package runs (issue 11).
testProviderConformance({
  name: "test provider",
  test: { describe, it, beforeAll, afterAll },
  engines: engines({ postgresUrl: inject("postgresUrl") }),
  provider: () => testProvider(),
  sourceTypes: {
    test_account: {
      valid: [{ type: "test_account", handle: "alice" }, { type: "test_account", handle: "bob", level: 3, metadata: { a: 1 } }],
      invalid: [{ type: "test_account", handle: "alice", level: 1.5 }, { type: "test_account" }],
    },
  },
  signIn: {
    identity: () => `h_${Math.random().toString(36).slice(2, 12)}`,
    signIn: (h, handle) => h.request("/test/sign-in", { json: { handle } }),
  },
});
