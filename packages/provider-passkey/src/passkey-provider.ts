import type { ErebusProvider } from "@erebus/core/provider";
import { credentialMigration, credentialStore, toInfo, type PasskeyInfo } from "./credentials.js";
import { passkeyErrors } from "./errors.js";
import { resolvePasskeyOptions, type PasskeyOptions } from "./options.js";
import { passkeyRoutes } from "./routes.js";
import { passkeySourceType } from "./source-type.js";

/** What the app reaches as `auth.providers.passkey`. */
export interface PasskeyApi {
  /** The passkeys of these identities (`user_references` ids), oldest first; no key material. */
  listPasskeys(userIds: readonly string[]): Promise<PasskeyInfo[]>;
}

/**
 * Passkeys (WebAuthn Level 3) with @simplewebauthn/server: sign up with a passkey, sign in with a
 * discoverable credential (also through conditional UI), and manage a person's passkeys. Identities
 * are `passkey:<credential id base64url>` with source type `passkey`. The RP id and origin come from
 * core's `baseURL`. Options are validated here, once: a bad one throws a TypeError naming it.
 *
 * @example
 * const auth = createAuth({ database, baseURL: "https://app.example.com", providers: [passkeyProvider({ rpName: "Example App" })] });
 * app.use("/auth", auth.router);
 */
export function passkeyProvider(input: PasskeyOptions = {}) {
  const options = resolvePasskeyOptions(input);
  return {
    id: "passkey",
    emits: ["passkey"],
    sourceTypes: [passkeySourceType],
    errors: passkeyErrors.codes,
    migrations: [credentialMigration],
    setup(ctx) {
      const credentials = credentialStore(ctx.db);
      return {
        routes(router) {
          passkeyRoutes(router, ctx, options);
        },
        api: {
          listPasskeys: async (userIds) => (await credentials.ofUsers(userIds)).map(toInfo),
        },
      };
    },
  } satisfies ErebusProvider<PasskeyApi>;
}
