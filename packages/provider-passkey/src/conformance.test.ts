import { afterAll, beforeAll, describe, inject, it } from "vitest";
import { engines, testProviderConformance, type ConformanceHarness } from "@erebus/core/testing";
import { SoftAuthenticator } from "../test/soft-authenticator.js";
import { passkeyProvider } from "./index.js";

// The kit's app runs at http://app.test: that is the RP id and origin the software authenticator signs for.
const RP = { rpId: "app.test", origin: "http://app.test" };

/** The browser-binding cookie of an options answer, to send with its verify (what a browser does by itself). */
const binding = (headers: Headers) =>
  headers
    .getSetCookie()
    .map((c) => c.split(";")[0]!)
    .find((c) => c.startsWith("erebus_bind="))!;

const sessionCookie = (headers: Headers) => headers.getSetCookie().map((c) => c.split(";")[0]!).find((c) => c.startsWith("erebus_session="))!;

/** A sign-up with a new passkey, or, once the authenticator is registered, a discoverable sign-in. */
async function signInWith(h: ConformanceHarness, authenticator: SoftAuthenticator & { registered?: boolean }) {
  if (!authenticator.registered) {
    const options = await h.request("/passkey/register/options", { json: {} });
    const answer = await h.request("/passkey/register/verify", { json: { response: authenticator.register(options.body.options) }, headers: { cookie: binding(options.headers) } });
    if (answer.status === 200) authenticator.registered = true;
    return answer;
  }
  const options = await h.request("/passkey/options", { json: {} });
  return h.request("/passkey/verify", { json: { response: authenticator.assert(options.body.options) }, headers: { cookie: binding(options.headers) } });
}

testProviderConformance({
  test: { describe, it, beforeAll, afterAll },
  name: "passkey",
  engines: engines({ postgresUrl: inject("postgresUrl") }),
  provider: () => passkeyProvider({ rateLimit: { options: 100_000, verify: 100_000 } }),
  sourceTypes: {
    passkey: {
      valid: [
        { type: "passkey", credential_id: "AQID", device_type: "singleDevice", backed_up: false },
        { type: "passkey", credential_id: "AQID", device_type: "multiDevice", backed_up: true, transports: ["internal", "hybrid"], aaguid: "fbfc3007-154e-4ecc-8c0b-6e020557d7bd", authenticator_name: "iCloud Keychain" },
      ],
      invalid: [
        { type: "passkey", credential_id: 1, device_type: "singleDevice", backed_up: false },
        { type: "passkey", credential_id: "AQID", device_type: "singleDevice" },
        { type: "passkey", credential_id: "AQID", device_type: "singleDevice", backed_up: "yes" },
        { type: "passkey", credential_id: "AQID", device_type: "singleDevice", backed_up: false, transports: [1] },
      ],
    },
  },
  // The management routes need a signed-in session: one made by signing up with a passkey.
  async authHeaders(h) {
    const answer = await signInWith(h, new SoftAuthenticator("ES256", RP));
    return { cookie: sessionCookie(answer.headers) };
  },
  signIn: {
    identity: () => new SoftAuthenticator(Math.random() < 0.5 ? "ES256" : "EdDSA", RP),
    signIn: signInWith,
    async replay(h, authenticator) {
      const first = await signInWith(h, authenticator);
      if (first.status !== 200) throw new Error(`the sign-up before the replay failed: ${first.status} ${first.text}`);
      const options = await h.request("/passkey/options", { json: {} });
      const init = { json: { response: authenticator.assert(options.body.options) }, headers: { cookie: binding(options.headers) } };
      const signedIn = await h.request("/passkey/verify", init);
      if (signedIn.status !== 200) throw new Error(`the sign-in before the replay failed: ${signedIn.status} ${signedIn.text}`);
      return () => h.request("/passkey/verify", init);
    },
  },
});
