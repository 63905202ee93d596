import type { ErebusProvider } from "@erebus/core/provider";
import { createApiKeysApi, type ApiKeysApi } from "./api.js";
import { apiKeyCommands } from "./commands.js";
import { apiKeyErrors } from "./errors.js";
import { resolveApiKeyOptions, type ApiKeyOptions } from "./options.js";
import { apiKeyRoutes } from "./routes.js";
import { apiKeyMigration, createKeyStore, keysToPersonMigration, pepperFingerprintMigration } from "./store.js";
import { createVerifier } from "./verify.js";

/**
 * API keys for programs and system agents, as an Erebus provider: routes to manage them, a header
 * authenticator (`X-API-Key`, `Authorization: Bearer`), CLI commands, and a programmatic API the
 * app reaches as `auth.providers.apikey` ({@link ApiKeysApi}) for keys no web user owns.
 *
 * @example
 * const auth = createAuth({ database, baseURL, providers: [apiKeyProvider({ pepper: process.env.API_KEY_PEPPER })] });
 * const keys = auth.providers.apikey as ApiKeysApi;
 * const { key } = await keys.create({ name: "nightly-export", scopes: ["read"], ownerId: null, createdBy: "deploy" });
 */
export function apiKeyProvider(input: ApiKeyOptions = {}) {
  const options = resolveApiKeyOptions(input);
  return {
    id: "apikey",
    emits: ["api_key"],
    errors: apiKeyErrors.codes,
    migrations: [apiKeyMigration, pepperFingerprintMigration, keysToPersonMigration],
    // One store, verifier (with its caches) and API per createAuth: core calls setup once for each.
    setup(ctx) {
      const store = createKeyStore(ctx, options);
      const verifier = createVerifier(ctx, store, options);
      return {
        routes: (router) => apiKeyRoutes(router, ctx, store, verifier, options),
        authenticate: (req) => verifier.authenticate(req),
        commands: apiKeyCommands(store, options),
        api: createApiKeysApi(store, verifier, options),
      };
    },
    /**
     * @deprecated Use `auth.providers.apikey` (typed {@link ApiKeysApi}). The programmatic API of
     * this provider in `auth` (a `createAuth()` result holding it).
     */
    keys(auth: { readonly providers: Readonly<Record<string, unknown>> }): ApiKeysApi {
      const api = auth.providers?.apikey as ApiKeysApi | undefined;
      if (!api) throw new TypeError("apiKeys.keys(auth): this auth has no apikey provider; pass the createAuth() result whose providers include it");
      return api;
    },
  } satisfies ErebusProvider<ApiKeysApi> & { keys: unknown };
}
