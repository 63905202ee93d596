import { createHash, createHmac, timingSafeEqual } from "node:crypto";
import * as z from "zod";
import { telegramErrors } from "./errors.js";

const KNOWN = ["id", "first_name", "last_name", "username", "photo_url", "auth_date", "hash"] as const;
const EXTRA_KEY = /^[a-z][a-z0-9_]{0,31}$/;
const MAX_FIELDS = 16;
/**
 * Control characters are refused in every value: the data-check string joins `key=value` lines with
 * "\n", so a value holding "\nkey=…" would let a signed payload be re-cut into other fields.
 */
const text = (max: number) => z.string().min(1).max(max).regex(/^[^\u0000-\u001f\u007f]*$/, "must not contain control characters");
/** A positive decimal integer: a JSON number (the widget's JS callback) or its digits (the redirect's query). */
const decimal = (digits: number) =>
  z
    .union([z.string().regex(new RegExp(`^[1-9][0-9]{0,${digits - 1}}$`), `must be a positive integer of at most ${digits} digits`), z.int().positive()])
    .transform(String)
    .refine((value) => Number.isSafeInteger(Number(value)), "must be a safe integer");

/**
 * What the Telegram Login Widget hands over (https://core.telegram.org/widgets/login#receiving-authorization-data):
 * in the JSON body of `POST /telegram/verify`, in the form the confirm page posts, or in the query
 * of the widget's redirect. Fields Telegram may add later are accepted (they are part of the signed
 * data-check string), within bounds.
 */
export const telegramAuthDataSchema = z
  .looseObject({
    id: decimal(16),
    first_name: text(256),
    last_name: text(256).optional(),
    username: z.string().regex(/^[A-Za-z0-9_]{1,64}$/, "must be 1-64 of A-Z, a-z, 0-9, _").optional(),
    photo_url: text(2048)
      .refine((value) => URL.canParse(value) && new URL(value).protocol === "https:", "must be an https URL")
      .optional(),
    auth_date: decimal(12),
    hash: z.string().regex(/^[0-9a-f]{64}$/, "must be 64 lower-case hex digits"),
  })
  .superRefine((value, issue) => {
    const keys = Object.keys(value);
    if (keys.length > MAX_FIELDS) issue.addIssue({ code: "custom", message: `at most ${MAX_FIELDS} fields` });
    for (const key of keys) {
      if ((KNOWN as readonly string[]).includes(key)) continue;
      const extra = (value as Record<string, unknown>)[key];
      if (!EXTRA_KEY.test(key)) issue.addIssue({ code: "custom", path: [key], message: `field name must match ${EXTRA_KEY}` });
      else if (typeof extra !== "string" || !text(1024).safeParse(extra).success) {
        issue.addIssue({ code: "custom", path: [key], message: "an extra field must be a string of 1-1024 characters without control characters" });
      }
    }
  });

export type TelegramAuthData = z.output<typeof telegramAuthDataSchema>;

/** The data-check string: every received field but `hash`, sorted by key, `key=value` joined by "\n". */
export function dataCheckString(fields: Readonly<Record<string, string>>): string {
  return Object.keys(fields)
    .filter((key) => key !== "hash")
    .sort()
    .map((key) => `${key}=${fields[key]}`)
    .join("\n");
}

/** The widget's key: SHA-256 of the bot token (not the token itself, per Telegram's spec). */
export const secretKeyOf = (botToken: string): Buffer => createHash("sha256").update(botToken).digest();

/**
 * Signs login data the way Telegram does: for tests and development stand-ins of the widget. It
 * needs the bot token, so it cannot forge a login for a bot whose token you do not hold.
 *
 * @example
 * const data = signTelegramAuthData(devBotToken, { id: "42", first_name: "Ada", auth_date: String(Math.floor(Date.now() / 1000)) });
 */
export function signTelegramAuthData<T extends Record<string, string>>(botToken: string, fields: T): T & { hash: string } {
  const hash = createHmac("sha256", secretKeyOf(botToken)).update(dataCheckString(fields)).digest("hex");
  return { ...fields, hash };
}

export interface VerifiedTelegramLogin {
  id: string;
  authDate: Date;
  /** Every signed field, as strings, without `hash`. */
  fields: Record<string, string>;
  hash: string;
}

/**
 * Checks a parsed payload: the hash (constant time), then the date. Throws the provider's AuthErrors.
 */
export function verifyTelegramAuthData(
  data: TelegramAuthData,
  options: { secretKey: Buffer; maxAge: number; clockSkew: number; now: Date },
): VerifiedTelegramLogin {
  const fields: Record<string, string> = {};
  for (const [key, value] of Object.entries(data)) if (key !== "hash" && value !== undefined) fields[key] = String(value);
  const expected = createHmac("sha256", options.secretKey).update(dataCheckString(fields)).digest();
  // Constant time, so the answer's timing says nothing about how much of a guessed hash was right.
  if (!timingSafeEqual(Buffer.from(data.hash, "hex"), expected)) throw telegramErrors.create("ERR_TELEGRAM_HASH_INVALID");
  const authDate = Number(data.auth_date);
  const now = Math.floor(options.now.getTime() / 1000);
  if (authDate - now > options.clockSkew) throw telegramErrors.create("ERR_TELEGRAM_AUTH_DATE_FUTURE");
  if (now - authDate > options.maxAge) throw telegramErrors.create("ERR_TELEGRAM_AUTH_EXPIRED");
  return { id: data.id, authDate: new Date(authDate * 1000), fields, hash: data.hash };
}
