import type { ErebusProvider } from "@erebus/core/provider";
import { oauthErrors } from "./errors.js";
import { dropStatesMigration, stateMigration } from "./flow.js";
import { resolveOAuthOptions, type OAuthOptions } from "./options.js";
import { createRefreshTokenStore, refreshTokenMigration, type RefreshTokenStore } from "./refresh-tokens.js";
import { oauthRoutes } from "./routes.js";

/** What the app reaches as `auth.providers.oauth`. */
export interface OAuthApi {
  /**
   * Each account's stored refresh token (`get(userId, providerId)`), decrypted. Needs
   * `refreshTokenKey`; without it, using the store is a TypeError.
   */
  readonly refreshTokens: RefreshTokenStore;
}

const notConfigured = (): never => {
  throw new TypeError("oauthProvider: set refreshTokenKey to store refresh tokens");
};

/**
 * OpenID Connect / OAuth 2.0 sign-in with openid-client: `GET /auth/oauth/:provider` starts it,
 * `GET /auth/oauth/:provider/callback` finishes it. Misconfiguration is a TypeError here, naming
 * the provider. Attempts live in core's single-use store (`ctx.verifications`).
 *
 * @example
 * const auth = createAuth({ ..., providers: [oauthProvider({ providers: { google: google({ clientId, clientSecret }) }, refreshTokenKey })] });
 * const token = await (auth.providers.oauth as OAuthApi).refreshTokens.get(userId, "google");
 */
export function oauthProvider(input: OAuthOptions) {
  const options = resolveOAuthOptions(input);
  return {
    id: "oauth",
    emits: ["oauth"],
    errors: oauthErrors.codes,
    migrations: [stateMigration, refreshTokenMigration, dropStatesMigration],
    setup(ctx) {
      const refreshTokens = options.refreshTokenKey ? createRefreshTokenStore(ctx, options.refreshTokenKey) : undefined;
      return {
        routes(router) {
          oauthRoutes(router, ctx, options, refreshTokens);
        },
        api: { refreshTokens: refreshTokens ?? { save: notConfigured, get: notConfigured } },
      };
    },
    /**
     * @deprecated Use `auth.providers.oauth.refreshTokens`. The stored refresh tokens of an app's
     * users (needs `refreshTokenKey`).
     */
    refreshTokens(auth: { providers: Readonly<Record<string, unknown>> }): RefreshTokenStore {
      if (!options.refreshTokenKey) notConfigured();
      return (auth.providers.oauth as OAuthApi).refreshTokens;
    },
  } satisfies ErebusProvider<OAuthApi> & { refreshTokens: unknown };
}
