import { defineErrors } from "@erebus/core/provider";

export const oauthErrors = defineErrors({
  ERR_OAUTH_PROVIDER_UNKNOWN: { status: 404, title: "No such sign-in provider" },
  ERR_OAUTH_RETURN_TO_INVALID: { status: 400, title: "returnTo must be a path on this site, like /account" },
  ERR_OAUTH_STATE_MISSING: { status: 400, title: "The callback carries no state" },
  ERR_OAUTH_BROWSER_MISMATCH: { status: 401, title: "This sign-in was not started in this browser" },
  ERR_OAUTH_STATE_INVALID: { status: 401, title: "The callback's state is not one this browser was given" },
  ERR_OAUTH_STATE_USED: { status: 401, title: "This callback was already used (replay)" },
  ERR_OAUTH_STATE_EXPIRED: { status: 401, title: "The sign-in took too long; start again" },
  ERR_OAUTH_DENIED: { status: 401, title: "The provider did not sign you in (denied or cancelled)" },
  ERR_OAUTH_CODE_INVALID: { status: 401, title: "The provider refused the authorization code (used, expired or not ours)" },
  ERR_OAUTH_ID_TOKEN_INVALID: { status: 401, title: "The ID token is not valid (issuer, audience, expiry, nonce or signature)" },
  ERR_OAUTH_PROFILE_INVALID: { status: 401, title: "The provider's user information is unusable" },
  ERR_OAUTH_PROVIDER_UNAVAILABLE: { status: 503, title: "The sign-in provider could not be reached" },
  ERR_OAUTH_ENDPOINT_INSECURE: { status: 502, title: "The sign-in provider names a plain-http endpoint; only https is allowed" },
});

export type OAuthErrorCode = keyof typeof oauthErrors.codes;
