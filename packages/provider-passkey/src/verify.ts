import { createHash } from "node:crypto";
import { verifyAuthenticationResponse, verifyRegistrationResponse, type AuthenticationResponseJSON, type RegistrationResponseJSON } from "@simplewebauthn/server";
import { decodeAttestationObject, decodeCredentialPublicKey, parseAuthenticatorData, cose } from "@simplewebauthn/server/helpers";
import * as z from "zod";
import { fail, passkeyErrors } from "./errors.js";

/** base64url without padding (WebAuthn's JSON encoding of binary values). */
const b64u = (max: number) => z.string().min(1).max(max).regex(/^[A-Za-z0-9_-]+$/, "must be base64url without padding");

/** Longest credential id accepted, in base64url characters: core's identifiers stop at 512 (384 bytes; real ones are 16 to 64). */
export const MAX_CREDENTIAL_ID = 512;

const extensionResults = z.record(z.string().max(64), z.unknown()).default({});
const attachment = z.enum(["platform", "cross-platform"]).optional();
const transport = z.enum(["ble", "cable", "hybrid", "internal", "nfc", "smart-card", "usb"]);

/** `RegistrationResponseJSON` (what `startRegistration()` of @simplewebauthn/browser returns), bounded. */
export const registrationResponseSchema = z.object({
  id: b64u(MAX_CREDENTIAL_ID),
  rawId: b64u(MAX_CREDENTIAL_ID),
  type: z.literal("public-key"),
  response: z.object({
    clientDataJSON: b64u(4096),
    attestationObject: b64u(12_000),
    authenticatorData: b64u(4096).optional(),
    transports: z.array(z.string().max(32)).max(8).optional(),
    publicKeyAlgorithm: z.number().int().optional(),
    publicKey: b64u(4096).optional(),
  }),
  authenticatorAttachment: attachment,
  clientExtensionResults: extensionResults,
});

/** `AuthenticationResponseJSON` (what `startAuthentication()` returns), bounded. */
export const authenticationResponseSchema = z.object({
  id: b64u(MAX_CREDENTIAL_ID),
  rawId: b64u(MAX_CREDENTIAL_ID),
  type: z.literal("public-key"),
  response: z.object({
    clientDataJSON: b64u(4096),
    authenticatorData: b64u(4096),
    signature: b64u(1024),
    userHandle: b64u(128).optional(),
  }),
  authenticatorAttachment: attachment,
  clientExtensionResults: extensionResults,
});

export type RegistrationResponse = z.infer<typeof registrationResponseSchema>;
export type AuthenticationResponse = z.infer<typeof authenticationResponseSchema>;

export interface RelyingParty {
  rpId: string;
  origin: string;
}

interface ClientData {
  type: string;
  challenge: string;
  origin: string;
  crossOrigin?: boolean;
  topOrigin?: string;
}

/**
 * Decodes `clientDataJSON` and checks what the server knows without any key (WebAuthn §7.1 steps
 * 7–10, §7.2 steps 11–14): the ceremony, the origin (the page that called WebAuthn, fixed from
 * `baseURL`), not inside a cross-origin frame. Returns the challenge, to be consumed.
 */
export function checkClientData(encoded: string, ceremony: "webauthn.create" | "webauthn.get", rp: RelyingParty): ClientData {
  let data: unknown;
  try {
    data = JSON.parse(Buffer.from(encoded, "base64url").toString("utf8"));
  } catch {
    throw fail("ERR_PASSKEY_RESPONSE_MALFORMED", "clientDataJSON is not JSON");
  }
  const parsed = z.object({ type: z.string(), challenge: z.string().min(1).max(512), origin: z.string().max(2048), crossOrigin: z.boolean().optional(), topOrigin: z.string().max(2048).optional() }).safeParse(data);
  if (!parsed.success) throw fail("ERR_PASSKEY_RESPONSE_MALFORMED", "clientDataJSON lacks type, challenge or origin");
  const client = parsed.data;
  if (client.type !== ceremony) throw fail("ERR_PASSKEY_CEREMONY_MISMATCH", `clientData.type is ${JSON.stringify(client.type)}, expected ${ceremony}`);
  if (client.origin !== rp.origin) throw fail("ERR_PASSKEY_ORIGIN_MISMATCH", `the response was made on ${JSON.stringify(client.origin)}, expected ${rp.origin}`);
  // A passkey ceremony run inside another site's frame is not this app's page asking.
  if (client.crossOrigin === true || client.topOrigin !== undefined) throw fail("ERR_PASSKEY_ORIGIN_MISMATCH", "the ceremony ran inside a cross-origin frame");
  if (!/^[A-Za-z0-9_-]+$/.test(client.challenge)) throw fail("ERR_PASSKEY_CHALLENGE_UNKNOWN");
  return client;
}

type Flags = ReturnType<typeof parseAuthenticatorData>;

/** The RP id hash and the UP/UV flags of authenticator data (WebAuthn §7.1 steps 13–15, §7.2 steps 15–17). */
function checkAuthenticatorData(authData: Uint8Array, rp: RelyingParty, requireUv: boolean): Flags {
  let parsed: Flags;
  try {
    parsed = parseAuthenticatorData(Uint8Array.from(authData));
  } catch {
    throw fail("ERR_PASSKEY_RESPONSE_MALFORMED", "authenticatorData cannot be parsed");
  }
  const expected = createHash("sha256").update(rp.rpId).digest();
  if (!expected.equals(Buffer.from(parsed.rpIdHash))) throw fail("ERR_PASSKEY_RP_ID_MISMATCH", `the authenticator signed for another RP id than ${rp.rpId}`);
  if (!parsed.flags.up) throw fail("ERR_PASSKEY_USER_PRESENCE_MISSING");
  if (requireUv && !parsed.flags.uv) throw fail("ERR_PASSKEY_USER_VERIFICATION_REQUIRED");
  return parsed;
}

const AAGUID_ZERO = "00000000-0000-0000-0000-000000000000";
const aaguidString = (bytes: Uint8Array) => {
  const hex = Buffer.from(bytes).toString("hex");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
};

export interface VerifiedRegistration {
  credentialId: string;
  publicKey: string;
  algorithm: number;
  counter: number;
  aaguid: string | null;
  deviceType: "singleDevice" | "multiDevice";
  backedUp: boolean;
  transports: string[];
  attestationFormat: string;
  challenge: string;
}

/**
 * Verifies a registration response (WebAuthn §7.1) for `rp`: the checks with stable codes first,
 * then @simplewebauthn/server for the attestation statement and the key. Writes nothing; the
 * challenge it returns must then be consumed.
 */
export async function verifyRegistration(response: RegistrationResponse, rp: RelyingParty, policy: { requireUv: boolean; algorithms: number[] }): Promise<VerifiedRegistration> {
  if (response.id !== response.rawId) throw fail("ERR_PASSKEY_CREDENTIAL_ID_MISMATCH", "id and rawId differ");
  const client = checkClientData(response.response.clientDataJSON, "webauthn.create", rp);
  let authData: Uint8Array;
  let fmt: string;
  try {
    const attestation = decodeAttestationObject(Buffer.from(response.response.attestationObject, "base64url"));
    authData = attestation.get("authData");
    fmt = attestation.get("fmt");
    if (!(authData instanceof Uint8Array) || typeof fmt !== "string") throw new Error("attestation object lacks authData or fmt");
  } catch {
    throw fail("ERR_PASSKEY_RESPONSE_MALFORMED", "attestationObject cannot be decoded");
  }
  const parsed = checkAuthenticatorData(authData, rp, policy.requireUv);
  if (!parsed.credentialID || !parsed.credentialPublicKey || !parsed.aaguid) throw fail("ERR_PASSKEY_RESPONSE_MALFORMED", "authenticatorData has no attested credential");
  if (Buffer.from(parsed.credentialID).toString("base64url") !== response.id) throw fail("ERR_PASSKEY_CREDENTIAL_ID_MISMATCH", "the authenticator's credential id is not the response's id");
  let algorithm: unknown;
  try {
    algorithm = decodeCredentialPublicKey(parsed.credentialPublicKey).get(cose.COSEKEYS.alg);
  } catch {
    throw fail("ERR_PASSKEY_RESPONSE_MALFORMED", "the credential public key is not a COSE key");
  }
  if (typeof algorithm !== "number" || !policy.algorithms.includes(algorithm)) throw fail("ERR_PASSKEY_ALGORITHM_UNSUPPORTED", `accepted: ${policy.algorithms.join(", ")}`);

  let verified: Awaited<ReturnType<typeof verifyRegistrationResponse>>;
  try {
    verified = await verifyRegistrationResponse({
      response: response as RegistrationResponseJSON,
      expectedChallenge: client.challenge,
      expectedOrigin: rp.origin,
      expectedRPID: rp.rpId,
      requireUserVerification: policy.requireUv,
      supportedAlgorithmIDs: policy.algorithms,
    });
  } catch (error) {
    throw passkeyErrors.create("ERR_PASSKEY_ATTESTATION_INVALID", { cause: error });
  }
  if (!verified.verified) throw fail("ERR_PASSKEY_ATTESTATION_INVALID");
  const info = verified.registrationInfo;
  const aaguid = info.aaguid === AAGUID_ZERO ? null : aaguidString(parsed.aaguid);
  const transports = [...new Set((response.response.transports ?? []).filter((t) => transport.safeParse(t).success))];
  return {
    credentialId: response.id,
    publicKey: Buffer.from(info.credential.publicKey).toString("base64url"),
    algorithm,
    counter: info.credential.counter,
    aaguid,
    deviceType: info.credentialDeviceType,
    backedUp: info.credentialBackedUp,
    transports,
    attestationFormat: info.fmt,
    challenge: client.challenge,
  };
}

export interface StoredCredential {
  credentialId: string;
  publicKey: string;
  userHandle: string;
  algorithm: number;
}

const ECDSA = new Set([-7, -35, -36]);

/**
 * An ECDSA signature in canonical DER (WebAuthn §6.5.6: ASN.1 DER Ecdsa-Sig-Value): SEQUENCE of two
 * minimal, non-negative INTEGERs and nothing else. The library's ASN.1 reader also accepts other
 * encodings of the same signature (another outer tag, for one); refusing them leaves each signature
 * one encoding.
 */
export function isCanonicalDerSignature(sig: Uint8Array): boolean {
  if (sig.length < 8 || sig[0] !== 0x30) return false;
  let offset = 2;
  let length = sig[1]!;
  if (length === 0x81) {
    length = sig[2]!;
    offset = 3;
    if (length < 0x80) return false;
  } else if (length > 0x7f) return false;
  if (offset + length !== sig.length) return false;
  for (let n = 0; n < 2; n++) {
    if (sig[offset] !== 0x02) return false;
    const size = sig[offset + 1]!;
    const start = offset + 2;
    if (size === 0 || size > 0x7f || start + size > sig.length) return false;
    if (sig[start]! & 0x80) return false; // negative
    if (size > 1 && sig[start] === 0 && !(sig[start + 1]! & 0x80)) return false; // not minimal
    offset = start + size;
  }
  return offset === sig.length;
}

export interface VerifiedAssertion {
  counter: number;
  backedUp: boolean;
  deviceType: "singleDevice" | "multiDevice";
  userVerified: boolean;
}

/** Checks what can be checked before the credential is looked up; returns the challenge. */
export function precheckAssertion(response: AuthenticationResponse, rp: RelyingParty, requireUv: boolean): { challenge: string } {
  if (response.id !== response.rawId) throw fail("ERR_PASSKEY_CREDENTIAL_ID_MISMATCH", "id and rawId differ");
  const client = checkClientData(response.response.clientDataJSON, "webauthn.get", rp);
  checkAuthenticatorData(Buffer.from(response.response.authenticatorData, "base64url"), rp, requireUv);
  return { challenge: client.challenge };
}

/**
 * Verifies an assertion (WebAuthn §7.2) with the stored credential: the user handle and the
 * signature over authenticatorData ‖ SHA-256(clientDataJSON). Writes nothing.
 */
export async function verifyAssertion(
  response: AuthenticationResponse,
  credential: StoredCredential,
  rp: RelyingParty,
  requireUv: boolean,
  challenge: string,
): Promise<VerifiedAssertion> {
  // WebAuthn §7.2 step 6: a user handle, when the authenticator returns one, must be the credential's.
  if (response.response.userHandle !== undefined && response.response.userHandle !== credential.userHandle) throw fail("ERR_PASSKEY_USER_HANDLE_MISMATCH");
  if (ECDSA.has(credential.algorithm) && !isCanonicalDerSignature(Buffer.from(response.response.signature, "base64url"))) throw fail("ERR_PASSKEY_SIGNATURE_INVALID", "not a DER-encoded ECDSA signature");
  let verified: Awaited<ReturnType<typeof verifyAuthenticationResponse>>;
  try {
    verified = await verifyAuthenticationResponse({
      response: response as AuthenticationResponseJSON,
      expectedChallenge: challenge,
      expectedOrigin: rp.origin,
      expectedRPID: rp.rpId,
      // Counter 0 here: the library would compare it before the signature; it is compared below, after.
      credential: { id: credential.credentialId, publicKey: Buffer.from(credential.publicKey, "base64url"), counter: 0 },
      requireUserVerification: requireUv,
    });
  } catch (error) {
    throw passkeyErrors.create("ERR_PASSKEY_SIGNATURE_INVALID", { cause: error });
  }
  if (!verified.verified) throw fail("ERR_PASSKEY_SIGNATURE_INVALID");
  const info = verified.authenticationInfo;
  // WebAuthn §7.2 step 21 (the counter must move forward unless both are 0) is checked when the
  // counter is written, in the sign-in's commit, once the challenge is known to be live: a replay
  // is then a replay, never a "possible clone" report (see credentials.recordUse).
  return { counter: info.newCounter, backedUp: info.credentialBackedUp, deviceType: info.credentialDeviceType, userVerified: info.userVerified };
}
