import { defineErrors } from "@erebus/core/provider";

/** Every code the passkey provider answers with (besides core's), with its HTTP status. */
export const passkeyErrors = defineErrors({
  ERR_PASSKEY_RESPONSE_MALFORMED: { status: 400, title: "The WebAuthn response cannot be decoded (client data, authenticator data or attestation object)" },
  ERR_PASSKEY_CREDENTIAL_ID_MISMATCH: { status: 400, title: "The response's id, rawId and the authenticator's credential id disagree" },
  ERR_PASSKEY_CEREMONY_MISMATCH: { status: 401, title: "The response was made for another ceremony (a registration sent to sign-in, or the reverse)" },
  ERR_PASSKEY_ORIGIN_MISMATCH: { status: 401, title: "The response was made on another origin than this app's (or inside a cross-origin frame)" },
  ERR_PASSKEY_RP_ID_MISMATCH: { status: 401, title: "The authenticator signed for another relying party id than this app's" },
  ERR_PASSKEY_CHALLENGE_UNKNOWN: { status: 401, title: "The challenge was not issued by this server for this ceremony" },
  ERR_PASSKEY_CHALLENGE_USED: { status: 401, title: "The challenge was already used (replay)" },
  ERR_PASSKEY_CHALLENGE_EXPIRED: { status: 401, title: "The challenge expired; ask for new options" },
  ERR_PASSKEY_CHALLENGE_BROWSER: { status: 401, title: "The challenge was issued to another browser" },
  ERR_PASSKEY_USER_PRESENCE_MISSING: { status: 401, title: "The authenticator did not report user presence" },
  ERR_PASSKEY_USER_VERIFICATION_REQUIRED: { status: 401, title: "This app requires user verification (PIN or biometrics), which the authenticator did not report" },
  ERR_PASSKEY_SIGNATURE_INVALID: { status: 401, title: "The signature does not verify with the passkey's public key" },
  ERR_PASSKEY_ATTESTATION_INVALID: { status: 401, title: "The registration's attestation does not verify" },
  ERR_PASSKEY_ALGORITHM_UNSUPPORTED: { status: 400, title: "The passkey's public key algorithm is not one this app accepts" },
  ERR_PASSKEY_COUNTER_ROLLBACK: { status: 401, title: "The authenticator's signature counter went backwards: the passkey may have been cloned" },
  ERR_PASSKEY_CREDENTIAL_UNKNOWN: { status: 401, title: "No passkey with this credential id is registered here" },
  ERR_PASSKEY_USER_HANDLE_MISMATCH: { status: 401, title: "The authenticator's user handle is not the one this passkey was registered with" },
  ERR_PASSKEY_CREDENTIAL_EXISTS: { status: 409, title: "This passkey is already registered" },
  ERR_PASSKEY_NOT_FOUND: { status: 404, title: "No such passkey among the signed-in person's" },
  ERR_PASSKEY_LIMIT_REACHED: { status: 409, title: "The person has as many passkeys as this app allows" },
});

export type PasskeyErrorCode = keyof typeof passkeyErrors.codes;

/** `fail("ERR_PASSKEY_CHALLENGE_USED")`, with an optional detail. */
export const fail = (code: PasskeyErrorCode, detail?: string) => passkeyErrors.create(code, detail === undefined ? {} : { detail });
