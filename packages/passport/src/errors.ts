import { defineErrors } from "@erebus/core/provider";

/** Every code `passportProvider` answers with besides core's. Statuses are fixed: match on `code`. */
export const passportErrors = defineErrors({
  ERR_PASSPORT_CREDENTIALS_MISSING: { status: 400, title: "The strategy found no credentials in the request" },
  ERR_PASSPORT_CREDENTIALS_INVALID: { status: 401, title: "The strategy refused the credentials" },
  ERR_PASSPORT_DENIED: { status: 401, title: "The identity provider did not sign you in (denied, cancelled or refused)" },
  ERR_PASSPORT_CALLBACK_INVALID: { status: 400, title: "Not a callback: no state, neither a code nor an error, or callback parameters sent to the start" },
  ERR_PASSPORT_STATE_INVALID: { status: 401, title: "The callback's state is not one this app gave out" },
  ERR_PASSPORT_STATE_USED: { status: 401, title: "This callback was already used (replay)" },
  ERR_PASSPORT_STATE_EXPIRED: { status: 401, title: "The sign-in took too long; start again" },
  ERR_PASSPORT_BROWSER_MISMATCH: { status: 401, title: "This sign-in was not started in this browser" },
  ERR_PASSPORT_RETURN_TO_INVALID: { status: 400, title: "returnTo must be a path on this site, like /account" },
  ERR_PASSPORT_PROFILE_INVALID: { status: 502, title: "The strategy's user could not be mapped to an identity" },
  ERR_PASSPORT_STRATEGY_ERROR: { status: 502, title: "The sign-in strategy failed (its identity provider or its verify callback)" },
  ERR_PASSPORT_TIMEOUT: { status: 503, title: "The sign-in strategy did not answer in time" },
});

export type PassportErrorCode = keyof typeof passportErrors.codes;
