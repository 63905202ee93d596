import { afterAll, beforeAll, describe, inject, it } from "vitest";
import { engines, testProvider, testProviderConformance, type ConformanceHarness } from "@erebus/core/testing";
import { apiKeyProvider } from "./index.js";

const PEPPER = "test-pepper-0123456789abcdef0123456789";

/** A bearer session of a fresh person (core's test provider signs them in). */
async function signedIn(h: ConformanceHarness): Promise<Record<string, string>> {
  const handle = `owner_${Math.random().toString(36).slice(2, 10)}`;
  const res = await h.request("/test/sign-in", { json: { handle }, headers: { "erebus-session-transport": "bearer" } });
  if (res.status !== 200) throw new Error(`test sign-in failed: ${res.status} ${res.text}`);
  return { authorization: `Bearer ${res.body.session.token}` };
}

// The provider conformance kit of @erebus/core/testing (issue 11). An API key's "sign-in" is a request
// carrying it (GET /auth/session with X-API-Key); keys are reusable by design, so there is no replay step.
testProviderConformance({
  name: "apikey provider",
  test: { describe, it, beforeAll, afterAll },
  engines: engines({ postgresUrl: inject("postgresUrl") }),
  provider: () => apiKeyProvider({ pepper: PEPPER, createPerMinute: 10_000, maxFailedVerifications: 10_000 }),
  alongside: () => [testProvider()],
  authHeaders: signedIn,
  sourceTypes: {
    api_key: {
      valid: [{ type: "api_key", name: "bot", scope: ["read"] }],
      invalid: [{ type: "api_key", name: "bot", scope: "read" }, { type: "api_key", name: "bot", scope: ["read", 1] }],
    },
  },
  pathParams: { id: "AAAAAAAAAAAAAAAA" },
  signIn: {
    async identity(h) {
      const res = await h.request("/api-keys", { json: { name: "conformance", scopes: ["read"] }, headers: await signedIn(h) });
      if (res.status !== 201) throw new Error(`creating a key failed: ${res.status} ${res.text}`);
      return res.body.key as string;
    },
    signIn: (h, key) => h.request("/session", { headers: { "x-api-key": key } }),
  },
});
