import siweParser from "@spruceid/siwe-parser";
import { toChecksumAddress } from "@erebus/core/provider";
import { parseRfc3339 } from "./time.js";

const { ParsedMessage } = siweParser;

/** The fields of an EIP-4361 message. */
export interface SiweFields {
  scheme?: string | undefined;
  domain: string;
  address: string;
  statement?: string | undefined;
  uri: string;
  version: string;
  chainId: number;
  nonce: string;
  issuedAt: string;
  expirationTime?: string | undefined;
  notBefore?: string | undefined;
  requestId?: string | undefined;
  resources?: string[] | undefined;
}

export interface ParsedSiwe extends SiweFields {
  issuedAtDate: Date;
  expirationDate: Date | undefined;
  notBeforeDate: Date | undefined;
}

/**
 * Parses a whole EIP-4361 message strictly, with the ABNF grammar of the reference implementation
 * (`@spruceid/siwe-parser`): every field in its place and order, an EIP-55 address, RFC 3986 URIs,
 * RFC 3339 times (impossible dates such as Feb 31 refused too). Returns undefined for anything else.
 */
export function parseSiweMessage(message: string): ParsedSiwe | undefined {
  let parsed: InstanceType<typeof ParsedMessage>;
  try {
    parsed = new ParsedMessage(message);
  } catch {
    return undefined;
  }
  const issuedAtDate = parseRfc3339(parsed.issuedAt);
  const expirationDate = parsed.expirationTime === undefined ? undefined : parseRfc3339(parsed.expirationTime);
  const notBeforeDate = parsed.notBefore === undefined ? undefined : parseRfc3339(parsed.notBefore);
  if (!issuedAtDate) return undefined;
  if (parsed.expirationTime !== undefined && !expirationDate) return undefined;
  if (parsed.notBefore !== undefined && !notBeforeDate) return undefined;
  return {
    scheme: parsed.scheme,
    domain: parsed.domain,
    address: parsed.address,
    statement: parsed.statement,
    uri: parsed.uri,
    version: parsed.version,
    chainId: parsed.chainId,
    nonce: parsed.nonce,
    issuedAt: parsed.issuedAt,
    expirationTime: parsed.expirationTime,
    notBefore: parsed.notBefore,
    requestId: parsed.requestId,
    resources: parsed.resources,
    issuedAtDate,
    expirationDate,
    notBeforeDate,
  };
}

/**
 * The strict parses of messages this process wrote (the nonce route), kept until the verify of the
 * same text takes them: the ABNF parser is the costliest step of a sign-in (about 1 ms), and a
 * message the server wrote and parsed need not be parsed twice. Each entry is taken once (a nonce
 * is good for one try anyway); the oldest go when it is full.
 */
export class SiweParseCache {
  private readonly entries = new Map<string, ParsedSiwe>();
  /** Fixed parts (all but address, chain, nonce and issued-at) that made a valid message, as parsed. */
  private readonly templates = new Map<string, ParsedSiwe>();
  constructor(private readonly size = 1000) {}

  /** @internal the parse of a message written with these fixed parts, if one was written before. */
  template(key: string): ParsedSiwe | undefined {
    return this.templates.get(key);
  }

  /** @internal */
  rememberTemplate(key: string, parsed: ParsedSiwe): void {
    if (this.templates.size >= 64) this.templates.delete(this.templates.keys().next().value!);
    this.templates.set(key, parsed);
  }

  remember(message: string, parsed: ParsedSiwe): void {
    this.entries.set(message, parsed);
    if (this.entries.size > this.size) this.entries.delete(this.entries.keys().next().value!);
  }

  /** The parse of exactly this text, once; undefined when this process did not write it (or it was taken). */
  take(message: string): ParsedSiwe | undefined {
    const parsed = this.entries.get(message);
    if (parsed === undefined) return undefined;
    this.entries.delete(message);
    // A copy: entries written from one template share its arrays and dates.
    return {
      ...parsed,
      issuedAtDate: new Date(parsed.issuedAtDate),
      expirationDate: parsed.expirationDate && new Date(parsed.expirationDate),
      notBeforeDate: parsed.notBeforeDate && new Date(parsed.notBeforeDate),
      ...(parsed.resources ? { resources: [...parsed.resources] } : {}),
    };
  }
}

/**
 * Writes the EIP-4361 text of a message (what a wallet shows and signs). The result is parsed back
 * with the strict parser: fields that would not make a valid message are a TypeError. With a
 * `cache`, that parse is kept for the verify of the same text.
 *
 * @example
 * const message = formatSiweMessage({ domain: "app.example", address, uri: "https://app.example", version: "1", chainId: 1, nonce, issuedAt: new Date().toISOString() });
 */
export function formatSiweMessage(fields: SiweFields, cache?: SiweParseCache): string {
  for (const key of ["domain", "address", "uri", "version", "nonce", "issuedAt"] as const) {
    if (typeof fields[key] !== "string") throw new TypeError(`formatSiweMessage: ${key} must be a string`);
  }
  if (!Number.isSafeInteger(fields.chainId)) throw new TypeError("formatSiweMessage: chainId must be an integer");
  const text = buildText(fields);
  // The ABNF parse is most of a sign-in's CPU. A nonce route writes the same fixed parts (domain,
  // URI, statement, …) again and again: once a message with these fixed parts has parsed, another one
  // differing only in fields checked here against their own rules is valid too (the grammar's fields
  // are independent), and its parse is the template's with those fields put in.
  const key = cache ? templateKey(fields) : undefined;
  const template = key === undefined ? undefined : cache!.template(key);
  if (template && variablePartsValid(fields)) {
    cache!.remember(text, { ...template, address: fields.address, chainId: fields.chainId, nonce: fields.nonce, issuedAt: fields.issuedAt, issuedAtDate: parseRfc3339(fields.issuedAt)! });
    return text;
  }
  const parsed = parseSiweMessage(text);
  if (!parsed) throw new TypeError("formatSiweMessage: the fields do not make a valid EIP-4361 message");
  if (cache) {
    cache.remember(text, parsed);
    cache.rememberTemplate(key!, parsed);
  }
  return text;
}

/**
 * The text with the variable fields left empty: two messages with equal keys and equal variable
 * fields are the same text, so they parse alike (a key built from the field values instead would
 * have to mirror every way `buildText` writes them: `null` and `undefined`, say).
 */
function templateKey(fields: SiweFields): string {
  return buildText({ ...fields, address: "", chainId: 0, nonce: "", issuedAt: "" });
}

/** A strict subset of what the grammar allows for these fields: what the nonce route writes. */
const NONCE = /^[A-Za-z0-9]{8,}$/;
const ISSUED_AT = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z$/;
const ADDRESS = /^0x[0-9a-fA-F]{40}$/;

function variablePartsValid(fields: SiweFields): boolean {
  return (
    ADDRESS.test(fields.address) &&
    toChecksumAddress(fields.address) === fields.address &&
    Number.isSafeInteger(fields.chainId) &&
    fields.chainId >= 0 &&
    !Object.is(fields.chainId, -0) &&
    NONCE.test(fields.nonce) &&
    ISSUED_AT.test(fields.issuedAt) &&
    parseRfc3339(fields.issuedAt) !== undefined
  );
}

function buildText(fields: SiweFields): string {
  const head = `${fields.scheme ? `${fields.scheme}://` : ""}${fields.domain} wants you to sign in with your Ethereum account:\n${fields.address}\n\n`;
  const statement = fields.statement === undefined ? "\n" : `${fields.statement}\n\n`;
  const lines = [
    `URI: ${fields.uri}`,
    `Version: ${fields.version}`,
    `Chain ID: ${fields.chainId}`,
    `Nonce: ${fields.nonce}`,
    `Issued At: ${fields.issuedAt}`,
  ];
  if (fields.expirationTime !== undefined) lines.push(`Expiration Time: ${fields.expirationTime}`);
  if (fields.notBefore !== undefined) lines.push(`Not Before: ${fields.notBefore}`);
  if (fields.requestId !== undefined) lines.push(`Request ID: ${fields.requestId}`);
  if (fields.resources !== undefined) lines.push("Resources:", ...fields.resources.map((r) => `- ${r}`));
  return head + statement + lines.join("\n");
}
