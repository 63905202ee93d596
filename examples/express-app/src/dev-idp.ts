import { generateKeyPairSync, randomBytes } from "node:crypto";
import Provider from "oidc-provider";

/**
 * A development OpenID Provider (node-oidc-provider with its built-in login and consent pages), so
 * "Sign in with OAuth" works with no setup. Any login name signs in; the password is ignored.
 * Keys are made at start-up. Never mounted in production.
 */
export function createDevIdp(settings: { issuer: string; clientId: string; clientSecret: string; redirectUri: string }) {
  const { privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const jwk = { ...privateKey.export({ format: "jwk" }), kid: "dev-1", use: "sig", alg: "RS256" };
  const provider = new Provider(settings.issuer, {
    clients: [{ client_id: settings.clientId, client_secret: settings.clientSecret, redirect_uris: [settings.redirectUri], response_types: ["code"], grant_types: ["authorization_code"] }],
    jwks: { keys: [jwk] },
    cookies: { keys: [randomBytes(32).toString("base64url")] },
    claims: { openid: ["sub"], email: ["email", "email_verified"], profile: ["name", "preferred_username"] },
    features: { devInteractions: { enabled: true } },
    async findAccount(_ctx: unknown, id: string) {
      const handle = id.toLowerCase().replace(/[^a-z0-9._-]/g, "").slice(0, 32) || "user";
      return {
        accountId: id,
        async claims() {
          return { sub: handle, email: `${handle}@dev-idp.localhost`, email_verified: true, name: `Dev user ${handle}`, preferred_username: handle };
        },
      };
    },
  } as never);
  return provider.callback();
}
