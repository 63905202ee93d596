import { defineErrors } from "@erebus/core";

export const emailErrors = defineErrors({
  ERR_EMAIL_INVALID: { status: 400, title: "Not a valid email address" },
  ERR_EMAIL_TOKEN_INVALID: { status: 401, title: "This sign-in link is not valid" },
  ERR_EMAIL_TOKEN_USED: { status: 401, title: "This sign-in link was already used" },
  ERR_EMAIL_TOKEN_EXPIRED: { status: 401, title: "This sign-in link expired; ask for a new one" },
  ERR_EMAIL_TOKEN_SUPERSEDED: { status: 401, title: "A newer sign-in link was sent; use that one" },
  ERR_EMAIL_CODE_INVALID: { status: 401, title: "Wrong or unknown code" },
  ERR_EMAIL_CODE_EXPIRED: { status: 401, title: "The code expired; ask for a new one" },
  ERR_EMAIL_CODE_ATTEMPTS: { status: 401, title: "Too many wrong codes; ask for a new one" },
});

export type EmailErrorCode = keyof typeof emailErrors.codes;
