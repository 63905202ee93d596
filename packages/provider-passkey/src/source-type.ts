import { defineSourceType } from "@erebus/core/provider";
import * as z from "zod";

/**
 * The `passkey` source type: one WebAuthn credential, as its authenticator described it at
 * registration (and at the last sign-in, for the backup state). Registered by the provider: core
 * writes its rule to the database at migration. Never any key material: the public key lives in the
 * provider's own table, the private key never leaves the authenticator.
 */
export const passkeySourceType = defineSourceType("passkey", {
  /** The credential id, base64url (also the identity's `source_identifier`). */
  credential_id: z.string(),
  /** `singleDevice` (a security key) or `multiDevice` (synced: iCloud Keychain, Google Password Manager, …). */
  device_type: z.string(),
  /** Whether the credential is backed up (synced) now, as the authenticator last said (WebAuthn §6.1 BS flag). */
  backed_up: z.boolean(),
  /** How the browser can reach the authenticator (`internal`, `hybrid`, `usb`, `nfc`, `ble`), when it said. */
  transports: z.array(z.string()).optional(),
  /** The authenticator model's AAGUID, when it gave one (all zeros is left out). */
  aaguid: z.string().optional(),
  /** A readable name for the AAGUID (`iCloud Keychain`, `Google Password Manager`), when known. */
  authenticator_name: z.string().optional(),
  metadata: z.record(z.string(), z.unknown()).optional(),
});

export type PasskeySourceType = z.infer<typeof passkeySourceType.schema>;

/** The network of passkey identities; `source_identifier` is the credential id (base64url), so an identity reads `passkey:<id>`. */
export const PASSKEY_NETWORK = "passkey";
