import type { ErebusProvider, ProviderContext } from "@erebus/core";
import { apiKeyCommands } from "./commands.js";
import { apiKeyErrors } from "./errors.js";
import { resolveApiKeyOptions, type ApiKeyOptions } from "./options.js";
import { apiKeyRoutes } from "./routes.js";
import { apiKeyMigration, createKeyStore, pepperFingerprintMigration, type CreateKeyInput } from "./store.js";
import { createVerifier } from "./verify.js";

/**
 * API keys for programs and system agents, as an Erebus provider: routes to manage them, a header
 * authenticator (`X-API-Key`, `Authorization: Bearer`), CLI commands, and a programmatic API on
 * the returned object (`keys(auth)`) for keys no web user owns.
 *
 * @example
 * const apiKeys = apiKeyProvider({ pepper: process.env.API_KEY_PEPPER });
 * const auth = createAuth({ database, baseURL, providers: [apiKeys] });
 * const { key } = await apiKeys.keys(auth).create({ name: "nightly-export", scopes: ["read"], ownerId: null, createdBy: "deploy" });
 */
export function apiKeyProvider(input: ApiKeyOptions = {}) {
  const options = resolveApiKeyOptions(input);
  // One store and verifier per context (one createAuth can only hold this provider once).
  const state = new WeakMap<ProviderContext, { store: ReturnType<typeof createKeyStore>; verifier: ReturnType<typeof createVerifier> }>();
  const stateOf = (ctx: ProviderContext) => {
    let s = state.get(ctx);
    if (!s) {
      const store = createKeyStore(ctx, options);
      s = { store, verifier: createVerifier(ctx, store, options) };
      state.set(ctx, s);
    }
    return s;
  };

  return {
    id: "apikey",
    emits: ["api_key"],
    errors: apiKeyErrors.codes,
    migrations: [apiKeyMigration, pepperFingerprintMigration],
    routes(router, ctx) {
      const { store, verifier } = stateOf(ctx);
      apiKeyRoutes(router, ctx, store, verifier, options);
    },
    authenticate(req, ctx) {
      return stateOf(ctx).verifier.authenticate(req);
    },
    commands: apiKeyCommands((ctx) => stateOf(ctx).store, options),
    /** The programmatic API for an app's `createAuth()` result. */
    keys(auth: { providerContext(id: string): ProviderContext }) {
      const { store, verifier } = stateOf(auth.providerContext("apikey"));
      return {
        create: async (input: CreateKeyInput) => {
          const result = await store.create(input);
          verifier.forgetMiss(result.info.id); // a remembered miss of this id, here at once (NOTIFY for the others)
          return result;
        },
        list: (filter: { ownerId: string | null } | { all: true }) => store.list(filter),
        revoke: async (id: string) => {
          const info = await store.revoke(id, undefined);
          verifier.forget(id);
          return info;
        },
        rotate: async (id: string, graceSeconds = options.rotationGracePeriod) => {
          const result = await store.rotate(id, undefined, graceSeconds);
          verifier.forget(id);
          return result;
        },
      };
    },
  } satisfies ErebusProvider & { keys: unknown };
}
