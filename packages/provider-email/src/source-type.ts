import * as z from "zod";

/** A trimmed, lower-cased address: the canonical `source_identifier` of network `email`. */
export const emailSchema = z
  .string()
  .max(320)
  .transform((value) => value.trim().toLowerCase())
  .pipe(z.email().max(254));

/** Mailbox providers recognised by domain; every other domain is `other`. */
const PROVIDERS: Record<string, string> = {
  "gmail.com": "gmail",
  "googlemail.com": "gmail",
  "outlook.com": "outlook",
  "hotmail.com": "outlook",
  "live.com": "outlook",
  "msn.com": "outlook",
  "yahoo.com": "yahoo",
  "ymail.com": "yahoo",
  "icloud.com": "icloud",
  "me.com": "icloud",
  "mac.com": "icloud",
  "proton.me": "proton",
  "protonmail.com": "proton",
  "pm.me": "proton",
  "aol.com": "aol",
  "gmx.com": "gmx",
  "gmx.de": "gmx",
  "yandex.com": "yandex",
  "yandex.ru": "yandex",
  "zoho.com": "zoho",
  "fastmail.com": "fastmail",
};

/** `gmail` for gmail.com, …, `other` for a domain that is not a well-known mailbox provider. */
export function mailboxProvider(email: string): string {
  return PROVIDERS[email.slice(email.lastIndexOf("@") + 1)] ?? "other";
}

/** The `source_type` this provider emits (core's `email_auth`). */
export const emailSourceTypeSchema = z.object({
  type: z.literal("email_auth"),
  verified: z.literal(true),
  provider: z.string(),
  metadata: z.object({ last_login: z.string(), method: z.enum(["link", "code"]) }),
});

export type EmailSourceType = z.infer<typeof emailSourceTypeSchema>;
