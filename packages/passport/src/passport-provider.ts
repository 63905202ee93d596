import type { ErebusProvider } from "@erebus/core/provider";
import { passportErrors } from "./errors.js";
import { headerAuthenticator } from "./header.js";
import { resolvePassportOptions, type PassportProviderOptions } from "./options.js";
import { passportRoutes } from "./routes.js";

/**
 * Any Passport strategy as an Erebus provider. Erebus drives the strategy itself (no
 * `passport.initialize()`, no `express-session`): each request gets its own instance of the strategy
 * with Passport's five actions, and the first action settles it. What the strategy's verify callback
 * hands back is mapped to a verified identity by `toIdentity`; resolution, sessions, deactivation,
 * errors and rate limits are core's.
 *
 * - redirect strategies (passport-oauth2 and everything on it, passport-openidconnect):
 *   `GET /auth/passport/<id>` and `GET /auth/passport/<id>/callback`, with the OAuth state (and PKCE
 *   verifier, OIDC nonce) in a single-use, browser-bound store instead of `req.session`;
 * - form strategies (passport-local): `POST /auth/passport/<id>`, JSON or an HTML form;
 * - header strategies (passport-http-bearer, passport-headerapikey, passport-jwt): the provider's
 *   header authenticator (`req.auth`).
 *
 * The provider's id is `passport-<id>`.
 *
 * @example
 * passportProvider({ id: "github", strategy: new GitHubStrategy({ clientID, clientSecret, callbackURL: "/auth/passport/github/callback", pkce: true, state: true }, (_a, _r, profile, done) => done(null, profile)) })
 * passportProvider({ id: "local", strategy: new LocalStrategy(verifyPassword), toIdentity: (user) => ({ network: "local", sourceIdentifier: user.id, sourceType: { type: "local_account", username: user.username } }), sourceTypes: [localAccount] })
 */
export function passportProvider(input: PassportProviderOptions) {
  const options = resolvePassportOptions(input);
  return {
    id: `passport-${options.id}`,
    emits: options.emits,
    ...(options.sourceTypes?.length ? { sourceTypes: options.sourceTypes } : {}),
    errors: passportErrors.codes,
    setup(ctx) {
      if (options.kind === "header") return { authenticate: headerAuthenticator(ctx, options) };
      return {
        routes(router) {
          passportRoutes(router, ctx, options);
        },
      };
    },
  } satisfies ErebusProvider;
}
