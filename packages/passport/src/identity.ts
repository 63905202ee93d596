import type { OAuthSourceType } from "@erebus/core";
import { AuthError, isPgText, type VerifiedIdentity } from "@erebus/core/provider";
import { passportErrors } from "./errors.js";

/** Maps what the strategy's verify callback handed to `done(null, user, info)` onto a verified identity. */
export type ToIdentity = (user: unknown, info: unknown) => VerifiedIdentity | Promise<VerifiedIdentity>;

/** Text PostgreSQL can store (no NUL, no unpaired surrogate) and short enough for a profile field. */
const text = (v: unknown, max = 512): string | undefined => (typeof v === "string" && v.length > 0 && v.length <= max && isPgText(v) ? v : undefined);
/** Only an https picture URL: apps put it in `src`, where `javascript:` or `data:` would be script. */
const httpsUrl = (v: unknown) => {
  const value = text(v);
  return value && URL.canParse(value) && new URL(value).protocol === "https:" ? value : undefined;
};
const emailText = (v: unknown) => {
  const value = text(v, 320)?.trim().toLowerCase();
  return value && /^[^\s@]+@[^\s@]+$/.test(value) ? value : undefined;
};

interface PassportProfile {
  id?: unknown;
  displayName?: unknown;
  username?: unknown;
  emails?: unknown;
  photos?: unknown;
  _json?: unknown;
}

/**
 * The address the profile says its provider verified, or null. Passport profiles carry `emails` as
 * `[{ value }]`, usually without saying whether the address was verified: passport-github2 picks
 * the primary address without looking at `verified` (unless `allRawEmails: true`, which keeps the
 * flags: then the primary address is taken only when it is verified), and
 * passport-openidconnect drops `email_verified`. An address is written only when a flag says so.
 */
export function verifiedEmailOf(profile: PassportProfile): string | null {
  const json = profile._json as { email?: unknown; email_verified?: unknown } | undefined;
  if (json && typeof json === "object" && json.email_verified === true) {
    const email = emailText(json.email);
    if (email) return email;
  }
  if (Array.isArray(profile.emails)) {
    const emails = profile.emails as { value?: unknown; verified?: unknown; primary?: unknown }[];
    // The primary address, and only when it is verified; a list that marks no primary: a verified one.
    const marksPrimary = emails.some((e) => typeof e?.primary === "boolean");
    const pick = marksPrimary ? emails.find((e) => e?.primary === true && e.verified === true) : emails.find((e) => e?.verified === true);
    const email = pick && emailText(pick.value);
    if (email) return email;
  }
  return null;
}

/**
 * The default mapping, for OAuth-style Passport profiles (`{ id, displayName, username, emails,
 * photos }`, what passport-oauth2-based strategies and passport-openidconnect hand to the verify
 * callback): network `oauth`, identifier `<id>:<profile.id>`, source type `oauth` with
 * `provider: <id>`. So a GitHub account is the same identity whether it signs in through
 * `oauthProvider`'s `github` or a passport-github2 strategy mounted as `github`.
 */
export function oauthProfileIdentity(id: string): ToIdentity {
  return (user) => {
    const profile = (user ?? {}) as PassportProfile;
    const rawId = typeof profile.id === "number" && Number.isSafeInteger(profile.id) ? String(profile.id) : profile.id;
    // OIDC Core §2: a subject is at most 255 ASCII characters; it becomes source_identifier.
    if (typeof rawId !== "string" || !/^[\x21-\x7e]{1,255}$/.test(rawId)) {
      throw passportErrors.create("ERR_PASSPORT_PROFILE_INVALID", { detail: "the profile has no usable id" });
    }
    const photos = Array.isArray(profile.photos) ? (profile.photos as { value?: unknown }[]) : [];
    const name = text(profile.displayName);
    const username = text(profile.username);
    const picture = httpsUrl(photos[0]?.value);
    const sourceType: OAuthSourceType = {
      type: "oauth",
      provider: id,
      user_id: rawId,
      metadata: { via: "passport", ...(name ? { name } : {}), ...(username ? { username } : {}), ...(picture ? { picture } : {}) },
    };
    return { network: "oauth", sourceIdentifier: `${id}:${rawId}`, sourceType, email: verifiedEmailOf(profile) };
  };
}

/** Runs the app's mapping: its AuthErrors pass, anything else it throws (or an empty answer) is 502 PROFILE_INVALID, never a 500. */
export async function mapIdentity(toIdentity: ToIdentity, user: unknown, info: unknown): Promise<VerifiedIdentity> {
  let identity: VerifiedIdentity | undefined;
  try {
    identity = await toIdentity(user, info);
  } catch (error) {
    if (error instanceof AuthError) throw error;
    throw passportErrors.create("ERR_PASSPORT_PROFILE_INVALID", { cause: error });
  }
  if (!identity || typeof identity !== "object") throw passportErrors.create("ERR_PASSPORT_PROFILE_INVALID", { detail: "toIdentity returned no identity" });
  return identity;
}
