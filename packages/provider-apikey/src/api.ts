import type { ResolvedApiKeyOptions } from "./options.js";
import type { ApiKeyInfo, CreateKeyInput, KeyStore } from "./store.js";
import type { createVerifier } from "./verify.js";

/**
 * The programmatic API, for keys no web user owns (programs, system agents): what an app reaches as
 * `auth.providers.apikey`. Changes take effect on this instance at once and on the others through
 * NOTIFY, as from the routes.
 *
 * @example
 * const keys = auth.providers.apikey as ApiKeysApi;
 * const { key } = await keys.create({ name: "nightly-export", scopes: ["read"], ownerId: null, createdBy: "deploy" });
 */
export interface ApiKeysApi {
  /** Creates a key (and its identity, or binds it to a system agent with `agentId`); the only time the secret is returned. */
  create(input: CreateKeyInput): Promise<{ key: string; info: ApiKeyInfo }>;
  /** Keys of an owner (`ownerId: null`: keys no web user owns), or `{ all: true }`; never secrets. */
  list(filter: { ownerId: string | null } | { all: true }): Promise<ApiKeyInfo[]>;
  /** Revokes a key at once, on every instance. */
  revoke(id: string): Promise<ApiKeyInfo>;
  /** A new secret; the old one works for `graceSeconds` more (default: the provider's `rotationGracePeriod`; 0 stops it at once). */
  rotate(id: string, graceSeconds?: number): Promise<{ key: string; info: ApiKeyInfo }>;
}

export function createApiKeysApi(store: KeyStore, verifier: ReturnType<typeof createVerifier>, options: ResolvedApiKeyOptions): ApiKeysApi {
  return {
    async create(input) {
      const result = await store.create(input);
      verifier.forgetMiss(result.info.id); // a remembered miss of this id, here at once (NOTIFY for the others)
      return result;
    },
    list: (filter) => store.list(filter),
    async revoke(id) {
      const info = await store.revoke(id, undefined);
      verifier.forget(id);
      return info;
    },
    async rotate(id, graceSeconds = options.rotationGracePeriod) {
      const result = await store.rotate(id, undefined, graceSeconds);
      verifier.forget(id);
      return result;
    },
  };
}
