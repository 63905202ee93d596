import { crc32 } from "node:zlib";

/** The key's alphabet (ids, secrets, checksum). */
export const BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
/** Public key id: 12 base62 characters (~71 bits, enough to never collide in practice). */
export const ID_LENGTH = 12;
/** Secret: 22 base62 characters from the CSPRNG, ~131 bits. */
export const SECRET_LENGTH = 22;
/** CRC32 of everything before it, in 6 base62 characters (62^6 > 2^32). */
export const CHECKSUM_LENGTH = 6;

function checksum(body: string): string {
  let n = crc32(body);
  let out = "";
  for (let i = 0; i < CHECKSUM_LENGTH; i++) {
    out = BASE62[n % 62] + out;
    n = Math.floor(n / 62);
  }
  return out;
}

export interface ParsedKey {
  prefix: string;
  id: string;
  secret: string;
}

/**
 * Makes a key: `<prefix>_<id>_<secret><checksum>`, after GitHub's token format: the prefix lets
 * secret scanners find leaked keys, the checksum lets them (and this server) reject a mistyped or
 * made-up key without a database look-up. `draw(n)` gives n uniform CSPRNG characters of
 * {@link BASE62} (the provider passes core's `ctx.randomToken({ alphabet: BASE62, length: n })`).
 * Pass `id` to make a new secret for an existing key (rotation).
 */
export function generateKey(prefix: string, draw: (length: number) => string, id = draw(ID_LENGTH)): { key: string } & ParsedKey {
  const secret = draw(SECRET_LENGTH);
  return { key: formatKey({ prefix, id, secret }), prefix, id, secret };
}

/** Writes a key from its parts, checksum included. */
export function formatKey({ prefix, id, secret }: ParsedKey): string {
  const body = `${prefix}_${id}_${secret}`;
  return body + checksum(body);
}

/** Splits a key; "malformed" when it is not in the format, "checksum" when the checksum is wrong. */
export function parseKey(key: string, prefix: string): ParsedKey | "malformed" | "checksum" {
  const expectedLength = prefix.length + 2 + ID_LENGTH + SECRET_LENGTH + CHECKSUM_LENGTH;
  if (key.length !== expectedLength || !key.startsWith(`${prefix}_`)) return "malformed";
  const id = key.slice(prefix.length + 1, prefix.length + 1 + ID_LENGTH);
  const rest = key.slice(prefix.length + 2 + ID_LENGTH);
  if (key[prefix.length + 1 + ID_LENGTH] !== "_" || !/^[0-9A-Za-z]+$/.test(id) || !/^[0-9A-Za-z]+$/.test(rest)) return "malformed";
  const secret = rest.slice(0, SECRET_LENGTH);
  const body = `${prefix}_${id}_${secret}`;
  if (checksum(body) !== rest.slice(SECRET_LENGTH)) return "checksum";
  return { prefix, id, secret };
}

/** True when a header value looks like a key of this prefix (so the provider should own it). */
export const looksLikeKey = (value: string, prefix: string) => value.startsWith(`${prefix}_`);
