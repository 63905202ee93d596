import type { ErebusProvider } from "@erebus/core";
import { challengeMigration } from "./challenges.js";
import { credentialMigration } from "./credentials.js";
import { passkeyErrors } from "./errors.js";
import { resolvePasskeyOptions, type PasskeyOptions } from "./options.js";
import { passkeyRoutes } from "./routes.js";
import { passkeySourceType } from "./source-type.js";

/**
 * Passkeys (WebAuthn Level 3) with @simplewebauthn/server: sign up with a passkey, sign in with a
 * discoverable credential (also through conditional UI), and manage a person's passkeys. Identities
 * are `passkey:<credential id base64url>` with source type `passkey`. The RP id and origin come from
 * core's `baseURL`. Options are validated here, once: a bad one throws a TypeError naming it.
 *
 * @example
 * const auth = createAuth({ database, baseURL: "https://app.example.com", providers: [passkeyProvider({ rpName: "Example App" })] });
 */
export function passkeyProvider(input: PasskeyOptions = {}) {
  const options = resolvePasskeyOptions(input);
  return {
    id: "passkey",
    emits: ["passkey"],
    sourceTypes: [passkeySourceType],
    errors: passkeyErrors.codes,
    migrations: [credentialMigration, challengeMigration],
    routes(router, ctx) {
      passkeyRoutes(router, ctx, options);
    },
  } satisfies ErebusProvider;
}
