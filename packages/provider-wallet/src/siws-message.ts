/**
 * The Sign In With Solana text format, as wallets produce it from a `SolanaSignInInput`
 * (Phantom's SIWS spec; `@solana/wallet-standard-util` `createSignInMessageText`):
 *
 *   ${domain} wants you to sign in with your Solana account:
 *   ${address}
 *
 *   ${statement}
 *
 *   URI: ${uri}
 *   Version: ${version}
 *   Chain ID: ${chainId}
 *   Nonce: ${nonce}
 *   Issued At: ${issuedAt}
 *   Expiration Time: ${expirationTime}
 *   Not Before: ${notBefore}
 *   Request ID: ${requestId}
 *   Resources:
 *   - ${resources[0]}
 *
 * Every part after the address is optional in the format; which ones a server requires is policy
 * (see verify.ts). Fields must come in this order, each at most once, with nothing after them.
 */
export interface SiwsFields {
  domain: string;
  address: string;
  statement?: string | undefined;
  uri?: string | undefined;
  version?: string | undefined;
  chainId?: string | undefined;
  nonce?: string | undefined;
  issuedAt?: string | undefined;
  expirationTime?: string | undefined;
  notBefore?: string | undefined;
  requestId?: string | undefined;
  resources?: string[] | undefined;
}

const HEADER = " wants you to sign in with your Solana account:\n";
const FIELDS = [
  ["URI: ", "uri"],
  ["Version: ", "version"],
  ["Chain ID: ", "chainId"],
  ["Nonce: ", "nonce"],
  ["Issued At: ", "issuedAt"],
  ["Expiration Time: ", "expirationTime"],
  ["Not Before: ", "notBefore"],
  ["Request ID: ", "requestId"],
] as const;
const isFieldLine = (line: string) => line === "Resources:" || FIELDS.some(([label]) => line.startsWith(label));

/** Parses the field block (the lines after the blank line), strictly in order; undefined when it is not one. */
function parseFieldBlock(lines: string[]): Partial<SiwsFields> | undefined {
  const out: Partial<SiwsFields> = {};
  let next = 0;
  let i = 0;
  for (; i < lines.length; i++) {
    const line = lines[i]!;
    if (line === "Resources:") break;
    const index = FIELDS.findIndex(([label]) => line.startsWith(label));
    if (index < next) return undefined; // unknown line, repeated or out-of-order field
    const value = line.slice(FIELDS[index]![0].length);
    if (value === "") return undefined;
    // RFC 3986: a URI has no spaces (a space would make the value something other than what is checked).
    if (FIELDS[index]![1] === "uri" && value.includes(" ")) return undefined;
    out[FIELDS[index]![1]] = value;
    next = index + 1;
  }
  if (i < lines.length) {
    const resources = lines.slice(i + 1);
    if (!resources.every((r) => r.startsWith("- ") && r.length > 2 && !r.includes(" ", 2))) return undefined;
    out.resources = resources.map((r) => r.slice(2));
  }
  return out;
}

/**
 * What no field may hold. SIWS follows EIP-4361, whose grammar has no control characters in any
 * field; a CR or TAB at the end of `URI:` is dropped by WHATWG URL parsing, so the text a wallet
 * showed and the value checked would differ. Beyond C0/C1 controls: line and paragraph separators
 * and every bidirectional control (Unicode's Bidi_Control: the marks U+061C, U+200E, U+200F too),
 * which change how a wallet lays the text out, the invisible U+FEFF, and lone surrogates,
 * which are not text (the wallet signs their UTF-8 replacement, U+FFFD, so two strings would carry
 * one signature).
 */
const FORBIDDEN = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/** Parses a SIWS message; undefined when it is not one (or holds a character {@link FORBIDDEN} names). */
export function parseSiwsMessage(text: string): SiwsFields | undefined {
  if (FORBIDDEN.test(text)) return undefined;
  const headerAt = text.indexOf(HEADER);
  if (headerAt <= 0) return undefined;
  const domain = text.slice(0, headerAt);
  if (domain.includes("\n")) return undefined;
  const rest = text.slice(headerAt + HEADER.length);
  const addressEnd = rest.indexOf("\n");
  const address = addressEnd === -1 ? rest : rest.slice(0, addressEnd);
  if (address === "") return undefined;
  if (addressEnd === -1) return { domain, address };
  if (!rest.startsWith("\n\n", addressEnd)) return undefined;
  const body = rest.slice(addressEnd + 2).split("\n");
  // The statement runs until a blank line followed by a field block; without one, the whole body is it.
  if (isFieldLine(body[0]!)) {
    const fields = parseFieldBlock(body);
    return fields && { domain, address, ...fields };
  }
  for (let i = 1; i < body.length - 1; i++) {
    if (body[i] === "" && isFieldLine(body[i + 1]!)) {
      const fields = parseFieldBlock(body.slice(i + 1));
      if (fields) return { domain, address, statement: body.slice(0, i).join("\n"), ...fields };
    }
  }
  const statement = body.join("\n");
  return statement === "" ? undefined : { domain, address, statement };
}

/** Writes the SIWS text of a message, as a wallet would before signing it. */
export function formatSiwsMessage(fields: SiwsFields): string {
  let message = `${fields.domain}${HEADER}${fields.address}`;
  if (fields.statement) message += `\n\n${fields.statement}`;
  const lines: string[] = [];
  for (const [label, key] of FIELDS) {
    const value = fields[key];
    if (value) lines.push(`${label}${value}`);
  }
  if (fields.resources) lines.push("Resources:", ...fields.resources.map((r) => `- ${r}`));
  if (lines.length) message += `\n\n${lines.join("\n")}`;
  return message;
}
