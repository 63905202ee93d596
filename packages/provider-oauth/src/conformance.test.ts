import { afterAll, beforeAll, describe, inject, it } from "vitest";
import { engines, testProviderConformance, type ConformanceHarness } from "@erebus/core/testing";
import { browser, loginAndConsent, startOpenIdProvider, type TestOp } from "../../../test/oidc.js";
import { oauthProvider } from "./oauth-provider.js";
import { oidc } from "./presets.js";

// A real OpenID Provider on loopback. The kit's app has baseURL http://app.test, so that is the
// redirect URI the OP sees; the test carries the OP's answer to the kit's server itself.
let op: TestOp;
beforeAll(async () => {
  op = await startOpenIdProvider(["http://app.test/auth/oauth/dev/callback"]);
});
afterAll(async () => op?.close?.());

const cookiesOf = (headers: Headers) => headers.getSetCookie().map((cookie) => cookie.split(";")[0]).join("; ");

/** Start, log in and consent at the OP as `login`: the callback query and the binding cookie of this attempt. */
async function authorized(h: ConformanceHarness, login: string): Promise<{ query: string; cookie: string }> {
  const start = await h.request("/oauth/dev");
  if (start.status !== 302) throw new Error(`GET /auth/oauth/dev answered ${start.status} ${start.text}`);
  const callback = await loginAndConsent(browser(), start.headers.get("location")!, login, (u) => u.pathname === "/auth/oauth/dev/callback");
  return { query: callback.search, cookie: cookiesOf(start.headers) };
}
const finish = (h: ConformanceHarness, { query, cookie }: { query: string; cookie: string }) =>
  h.request(`/oauth/dev/callback${query}`, { headers: { cookie, accept: "application/json" } });

// The provider conformance kit of @erebus/core/testing (issue 11): an authorization-code sign-in at
// the OP as the sign-in step; the replay is the same callback (code and state) sent again.
testProviderConformance({
  name: "oauth provider",
  test: { describe, it, beforeAll, afterAll },
  engines: engines({ postgresUrl: inject("postgresUrl") }),
  provider: () => oauthProvider({ providers: { dev: oidc({ issuer: op.issuer, clientId: op.clientId, clientSecret: op.clientSecret }) } }),
  pathParams: { provider: "dev" },
  sourceTypes: {
    oauth: {
      valid: [{ type: "oauth", provider: "dev", user_id: "alice" }],
      invalid: [{ type: "oauth", provider: "dev", user_id: 12345 }, { type: "oauth", provider: "dev" }],
    },
  },
  signIn: {
    identity: () => `user_${Math.random().toString(36).slice(2, 10)}`,
    signIn: async (h, login) => finish(h, await authorized(h, login)),
    async replay(h, login) {
      const attempt = await authorized(h, login);
      const first = await finish(h, attempt);
      if (first.status !== 200) throw new Error(`the sign-in before the replay failed: ${first.status} ${first.text}`);
      return () => finish(h, attempt);
    },
  },
});
