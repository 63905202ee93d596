import type { ErebusProvider, ProviderContext } from "@erebus/core";
import { oauthErrors } from "./errors.js";
import { stateMigration } from "./flow.js";
import { resolveOAuthOptions, type OAuthOptions } from "./options.js";
import { createRefreshTokenStore, refreshTokenMigration } from "./refresh-tokens.js";
import { oauthRoutes } from "./routes.js";

/**
 * OpenID Connect / OAuth 2.0 sign-in with openid-client: `GET /auth/oauth/:provider` starts it,
 * `GET /auth/oauth/:provider/callback` finishes it. Misconfiguration is a TypeError here, naming
 * the provider.
 *
 * @example
 * oauthProvider({ providers: { google: google({ clientId, clientSecret }), github: github({ clientId, clientSecret }) } })
 */
export function oauthProvider(input: OAuthOptions) {
  const options = resolveOAuthOptions(input);
  return {
    id: "oauth",
    emits: ["oauth"],
    errors: oauthErrors.codes,
    migrations: [stateMigration, refreshTokenMigration],
    routes(router, ctx) {
      oauthRoutes(router, ctx, options);
    },
    /** The stored refresh token of a user for a provider (needs `refreshTokenKey`). */
    refreshTokens(auth: { providerContext(id: string): ProviderContext }) {
      if (!options.refreshTokenKey) throw new TypeError("oauthProvider: set refreshTokenKey to store refresh tokens");
      return createRefreshTokenStore(auth.providerContext("oauth"), options.refreshTokenKey);
    },
  } satisfies ErebusProvider & { refreshTokens: unknown };
}
