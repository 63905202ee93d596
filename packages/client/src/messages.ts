import { ErebusError } from "./errors.js";

/** What `POST /auth/siws/nonce` hands out: a Wallet Standard `SolanaSignInInput` without the address. */
export interface SolanaSignInInput {
  domain: string;
  uri: string;
  version: string;
  chainId: string;
  nonce: string;
  issuedAt: string;
  statement?: string;
  expirationTime?: string;
  notBefore?: string;
  requestId?: string;
  resources?: string[];
}

/**
 * The Sign In With Solana text for `input` signed by `address`, byte for byte what Wallet Standard
 * wallets produce for `solana:signIn` (`createSignInMessageText` of `@solana/wallet-standard-util`).
 */
export function formatSiwsMessage(input: SolanaSignInInput, address: string): string {
  let message = `${input.domain} wants you to sign in with your Solana account:\n${address}`;
  if (input.statement) message += `\n\n${input.statement}`;
  const fields: string[] = [];
  if (input.uri) fields.push(`URI: ${input.uri}`);
  if (input.version) fields.push(`Version: ${input.version}`);
  if (input.chainId) fields.push(`Chain ID: ${input.chainId}`);
  if (input.nonce) fields.push(`Nonce: ${input.nonce}`);
  if (input.issuedAt) fields.push(`Issued At: ${input.issuedAt}`);
  if (input.expirationTime) fields.push(`Expiration Time: ${input.expirationTime}`);
  if (input.notBefore) fields.push(`Not Before: ${input.notBefore}`);
  if (input.requestId) fields.push(`Request ID: ${input.requestId}`);
  if (input.resources) fields.push("Resources:", ...input.resources.map((resource) => `- ${resource}`));
  if (fields.length > 0) message += `\n\n${fields.join("\n")}`;
  return message;
}

const refuse = (detail: string) =>
  new ErebusError({ code: "ERR_CLIENT_MESSAGE_MISMATCH", title: "The server asked to sign a message for another site", status: 0, detail });

/**
 * A signer signs only what names the site the client talks to: a server (or a proxy) that hands out
 * a message for another domain is trying to borrow the signature (a phishing relay), so the client
 * checks the message before the key ever sees it.
 */
export function checkSignInMessage(
  message: string,
  expected: { host: string; origin: string; nonce: string; family: "Ethereum" | "Solana"; address?: string; chainId?: string },
): void {
  const lines = message.split("\n");
  const header = `${expected.host} wants you to sign in with your ${expected.family} account:`;
  if (lines[0] !== header) throw refuse(`expected the first line ${JSON.stringify(header)}, got ${JSON.stringify(lines[0])}`);
  // The last such line: a statement (which comes before the fields) cannot shadow the real field.
  const field = (label: string) => [...lines].reverse().find((line) => line.startsWith(`${label}: `))?.slice(label.length + 2);
  const uri = field("URI");
  let uriOrigin: string | undefined;
  try {
    uriOrigin = uri === undefined ? undefined : new URL(uri).origin;
  } catch {
    uriOrigin = undefined;
  }
  if (uriOrigin !== expected.origin) throw refuse(`expected URI at ${expected.origin}, got ${JSON.stringify(uri)}`);
  if (field("Nonce") !== expected.nonce) throw refuse("the nonce in the message is not the one issued");
  // The account line is the signer's (EIP-55 case aside), and the chain is the one asked for.
  const sameAccount = expected.family === "Ethereum" ? lines[1]?.toLowerCase() === expected.address?.toLowerCase() : lines[1] === expected.address;
  if (expected.address !== undefined && !sameAccount) throw refuse(`the message names the account ${JSON.stringify(lines[1])}, not the signer's`);
  if (expected.chainId !== undefined && field("Chain ID") !== expected.chainId) throw refuse(`the message is for chain ${JSON.stringify(field("Chain ID"))}, not ${expected.chainId}`);
}
