import { defineErrors } from "@erebus/core/provider";

export const emailErrors = defineErrors({
  ERR_EMAIL_INVALID: { status: 400, title: "Not a valid email address" },
  ERR_EMAIL_TOKEN_INVALID: { status: 401, title: "This sign-in link is not valid" },
  ERR_EMAIL_TOKEN_USED: { status: 401, title: "This sign-in link was already used" },
  ERR_EMAIL_TOKEN_EXPIRED: { status: 401, title: "This sign-in link expired; ask for a new one" },
  ERR_EMAIL_TOKEN_SUPERSEDED: { status: 401, title: "This sign-in link no longer works: another link was used, or newer ones were sent" },
  ERR_EMAIL_CODE_INVALID: { status: 401, title: "Wrong or unknown code" },
  ERR_EMAIL_CODE_EXPIRED: { status: 401, title: "The code expired; ask for a new one" },
  ERR_EMAIL_CODE_ATTEMPTS: { status: 401, title: "Too many wrong codes; ask for a new one" },
  ERR_EMAIL_CODE_LOCKED: { status: 429, title: "Too many wrong codes for this address; sign in with a link, or try codes again later" },
  ERR_EMAIL_SWITCH_REQUIRED: { status: 409, title: "This browser is signed in as another account; confirm the switch to sign in with this link" },
});

export type EmailErrorCode = keyof typeof emailErrors.codes;
