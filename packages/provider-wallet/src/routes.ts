import { describeRoute, signInResultSchema, toChecksumAddress, type LinkIntent, type ProviderContext, type Queryable, type RouteDoc } from "@erebus/core/provider";
import type { Router } from "express";
import * as z from "zod";
import { bindContractChain } from "./contract-chains.js";
import { fail, walletErrors, type Family } from "./errors.js";
import { formatSiweMessage, SiweParseCache } from "./siwe-message.js";
import { createNonceStore, type NonceFamily } from "./nonces.js";
import type { ResolvedWalletOptions } from "./options.js";
import { Ed25519KeyCache } from "./signature.js";
import { walletNameSchema, type WalletSourceType } from "./source-type.js";
import {
  checkSiweMessage,
  checkSiwsMessage,
  createRpcClients,
  decodeSiweSignature,
  decodeSiwsCredentials,
  normalizeSolanaChain,
  verifySiweSignature,
  verifySiwsSignature,
  type MessagePolicy,
} from "./verify.js";

const siweBody = z.strictObject({
  message: z.string(),
  signature: z.string().max(32_768),
  provider: walletNameSchema.optional(),
});
/**
 * Asks for a nonce that links the wallet to the signed-in person instead of signing in (issue 13):
 * the session must be fresh, and only that session can use the nonce. `merge` takes in the person
 * the wallet belongs to now, if any.
 */
const linkFields = {
  intent: z
    .enum(["sign-in", "link", "reauthenticate"])
    .optional()
    .describe('"link": attach the wallet to the signed-in person (a fresh session); "reauthenticate": prove a wallet the person already has to make the session fresh (step-up); default "sign-in"'),
  merge: z.boolean().optional().describe("with intent link: if the wallet belongs to another person, move that person into this one"),
};
/** Optional: a client without keccak (a plain web page) can ask for the exact message to sign (address and chainId together). */
const siweNonceBody = z
  .strictObject({
    address: z.string().regex(/^0x[0-9a-fA-F]{40}$/, "must be a 0x-prefixed 20-byte hex address").optional(),
    chainId: z.number().int().positive().optional(),
    ...linkFields,
  })
  .superRefine((body, issue) => {
    if (body.address !== undefined && body.chainId === undefined) issue.addIssue({ code: "custom", path: ["chainId"], message: "required with address" });
    if (body.chainId !== undefined && body.address === undefined) issue.addIssue({ code: "custom", path: ["address"], message: "required with chainId" });
  })
  .optional();
const siwsNonceBody = z.strictObject(linkFields).optional();
const siwsBody = z.strictObject({
  message: z.string(),
  signature: z.string().max(128),
  address: z.string().max(64),
  provider: walletNameSchema.optional(),
});

/** Core's answers when a nonce is asked for with intent link, and when its proof attaches (people). */
const linkStartErrors = ["ERR_UNAUTHENTICATED", "ERR_SESSION_INVALID", "ERR_REAUTH_REQUIRED", "ERR_RATE_LIMITED"];
const linkErrors = ["ERR_LINK_SESSION_MISMATCH", "ERR_REAUTH_IDENTITY_FOREIGN", "ERR_IDENTITY_LINKED_ELSEWHERE", "ERR_IDENTITY_LIMIT", "ERR_LINK_CONFLICT"];
const familyErrors = (family: Family) => Object.keys(walletErrors.codes).filter((code) => code.startsWith(`ERR_${family}_`));
const siweNonceAnswer = z.object({
  nonce: z.string(),
  expiresAt: z.string(),
  domain: z.string(),
  uri: z.string(),
  version: z.literal("1"),
  chains: z.array(z.number()),
  statement: z.string().describe("the statement a message for this nonce carries (for a link nonce it must be exactly this)"),
  message: z.string().optional().describe("the exact EIP-4361 message to sign, when the request named the address and chain"),
});
const siwsNonceAnswer = z.object({
  nonce: z.string(),
  expiresAt: z.string(),
  input: z.object({ domain: z.string(), uri: z.string(), version: z.string(), chainId: z.string(), nonce: z.string(), issuedAt: z.string(), statement: z.string() }).describe("a Wallet Standard SolanaSignInInput"),
});
const docs = {
  siweNonce: {
    summary: "Sign-In with Ethereum: a nonce",
    description:
      "Single-use, server-stored. With { address, chainId } the answer includes the exact message to sign. With { intent: \"link\" } (a fresh session) the nonce links the wallet to the signed-in person, from this session only.",
    body: siweNonceBody,
    responses: { 200: { description: "a nonce (and the message)", schema: siweNonceAnswer } },
    errors: ["ERR_SIWE_CHAIN_NOT_ALLOWED", ...linkStartErrors],
  },
  siweVerify: {
    summary: "Sign-In with Ethereum: verify the signed message and start a session",
    body: siweBody,
    responses: { 200: { description: "signed in", schema: signInResultSchema } },
    errors: [...familyErrors("SIWE"), "ERR_USER_DEACTIVATED", "ERR_IDENTITY_INVALID", ...linkErrors],
  },
  siwsNonce: {
    summary: "Sign In With Solana: a nonce and the SolanaSignInInput to sign",
    description: 'With { intent: "link" } (a fresh session) the nonce links the wallet to the signed-in person, from this session only.',
    body: siwsNonceBody,
    responses: { 200: { description: "a nonce and the input", schema: siwsNonceAnswer } },
    errors: linkStartErrors,
  },
  siwsVerify: {
    summary: "Sign In With Solana: verify the signed message and start a session",
    description: "signature: base58 Ed25519 signature of the message text; address: the signer's base58 public key.",
    body: siwsBody,
    responses: { 200: { description: "signed in", schema: signInResultSchema } },
    errors: [...familyErrors("SIWS"), "ERR_USER_DEACTIVATED", "ERR_IDENTITY_INVALID", ...linkErrors],
  },
} satisfies Record<string, RouteDoc>;

const isEmpty = (body: unknown) => body === undefined || (typeof body === "object" && body !== null && Object.keys(body).length === 0);

export function walletRoutes(router: Router, ctx: ProviderContext, options: ResolvedWalletOptions): void {
  const domain = options.domain ?? ctx.baseURL.host;
  const origin = options.origin ?? ctx.baseURL.origin;
  const nonces = createNonceStore(ctx, options.nonceTtl);
  // Core stores these as `wallet:nonce` and `wallet:verify` (names are namespaced by provider id).
  const nonceLimit = ctx.rateLimit({ name: "nonce", points: options.rateLimit.nonce, duration: 60 });
  const verifyLimit = ctx.rateLimit({ name: "verify", points: options.rateLimit.verify, duration: 60 });
  const keyCache = new Ed25519KeyCache();
  const siweParses = new SiweParseCache();
  /**
   * The client's nonce limit (counted in memory first, then on the shared counter: a statement that
   * waits for no fsync), then the nonce: one commit.
   */
  const issueNonce = async (family: NonceFamily, client: string, link: LinkIntent | undefined) => {
    await nonceLimit.consume(client);
    return nonces.issue(family, ctx.db, link);
  };
  const signInStatement = options.statement ?? `Sign in to ${domain}`;
  /** What a link nonce's message says, so the person sees in the wallet that this links, not signs in (issue 13). */
  const linkStatement = `Link this wallet to your account on ${domain}`;
  const reauthStatement = `Confirm it is you on ${domain}`;
  const statementFor = (link: LinkIntent | undefined | null) => (link ? (link.reauthenticate ? reauthStatement : linkStatement) : signInStatement);
  /**
   * Uses the nonce up (in the sign-in's commit) and hands core the verification, whose link intent,
   * if any, makes the proof attach instead of sign in. A link nonce's message must carry the link
   * statement: a wallet showing "Sign in" must not have linked.
   */
  const consumeNonce = async (family: Family, nonceFamily: NonceFamily, nonce: string, statement: string | undefined, q: Queryable) => {
    const used = await nonces.consume(family, nonceFamily, nonce, q);
    if (used.ok && used.link && statement !== statementFor(used.link)) throw fail(family, "STATEMENT_MISMATCH", `a link nonce's message must say "${statementFor(used.link)}"`);
    return used;
  };

  const policy = (chains: readonly (number | string)[]): MessagePolicy => ({
    domain,
    origin,
    chains,
    now: ctx.clock(),
    clockSkewMs: options.clockSkew * 1000,
    maxIssuedAgeMs: options.nonceTtl * 1000,
    maxStatementLength: options.maxStatementLength,
    maxResources: options.maxResources,
    maxResourceLength: options.maxResourceLength,
  });

  /** Size first, before any parsing: oversized is its own 413. */
  const checkSize = (family: Family, message: string) => {
    if (Buffer.byteLength(message, "utf8") > options.maxMessageBytes) throw fail(family, "MESSAGE_TOO_LARGE");
  };

  if (options.ethereum) {
    const ethereum = options.ethereum;
    const rpc = createRpcClients(ethereum.rpc, ethereum.rpcTimeoutMs);
    /** Chains whose RPC has answered eth_chainId with that chain (verifySiweSignature). */
    const confirmedChains = new Set<number>();

    router.post("/siwe/nonce", describeRoute(docs.siweNonce), async (req, res) => {
      const client = req.ip ?? "unknown";
      nonceLimit.consumeLocal(client);
      const body = ctx.parse(siweNonceBody, isEmpty(req.body) ? undefined : req.body);
      if (body?.chainId !== undefined && !ethereum.chains.includes(body.chainId)) throw fail("SIWE", "CHAIN_NOT_ALLOWED", `allowed: ${ethereum.chains.join(", ")}`);
      const link = await ctx.linkIntent(req, { intent: body?.intent, merge: body?.merge }, res);
      const { nonce, issuedAt, expiresAt } = await issueNonce("ethereum", client, link);
      res.setHeader("Cache-Control", "no-store");
      // Besides the design's { nonce, expiresAt }: what a client needs to build the message, and,
      // when it said which account and chain, the message itself (EIP-55 address included).
      const message =
        body?.address !== undefined && body.chainId !== undefined
          ? formatSiweMessage(
              {
                domain,
                address: toChecksumAddress(body.address),
                statement: statementFor(link),
                uri: origin,
                version: "1",
                chainId: body.chainId,
                nonce,
                issuedAt: issuedAt.toISOString(),
              },
              siweParses,
            )
          : undefined;
      res.json({ nonce, expiresAt: expiresAt.toISOString(), domain, uri: origin, version: "1", chains: ethereum.chains, statement: statementFor(link), ...(message ? { message } : {}) });
    });

    router.post("/siwe/verify", describeRoute(docs.siweVerify), async (req, res) => {
      verifyLimit.consumeLocal(req.ip ?? "unknown");
      const body = ctx.parse(siweBody, req.body);
      checkSize("SIWE", body.message);
      const signature = decodeSiweSignature(body.signature);
      const parsed = checkSiweMessage(body.message, policy(ethereum.chains), siweParses);
      let signer: Awaited<ReturnType<typeof verifySiweSignature>> | undefined;
      // EIP-4361: each nonce gets one try. The signature is checked first; then nonce, identity and
      // session commit together, and a failed attempt uses the nonce up alone (ctx.signInOnce).
      const result = await ctx.signInOnce(req, res, {
        limit: { limiter: verifyLimit, key: req.ip ?? "unknown" },
        consume: (q) => consumeNonce("SIWE", "ethereum", parsed.nonce, parsed.statement, q),
        async verify() {
          signer = await verifySiweSignature(parsed, body.message, signature, body.signature as `0x${string}`, rpc, ethereum.rpcTimeoutMs, confirmedChains);
          const sourceType: WalletSourceType = {
            type: "web3_wallet",
            provider: body.provider ?? "unknown",
            network: "ethereum",
            metadata: { chain_id: parsed.chainId, signer },
          };
          return { network: "ethereum", sourceIdentifier: parsed.address, sourceType };
        },
        // A contract wallet is bound to the chain it was verified on (contract-chains.ts); an account is the same on every chain.
        bind: async (tx) => {
          if (signer === "contract") await bindContractChain(tx, parsed.address, parsed.chainId, ctx.clock());
        },
      });
      res.json(result);
    });
  }

  if (options.solana) {
    const chains = options.solana.chains.map(normalizeSolanaChain);

    router.post("/siws/nonce", describeRoute(docs.siwsNonce), async (req, res) => {
      const client = req.ip ?? "unknown";
      nonceLimit.consumeLocal(client);
      const body = ctx.parse(siwsNonceBody, isEmpty(req.body) ? undefined : req.body);
      const link = await ctx.linkIntent(req, { intent: body?.intent, merge: body?.merge }, res);
      const { nonce, issuedAt, expiresAt } = await issueNonce("solana", client, link);
      res.setHeader("Cache-Control", "no-store");
      res.json({
        nonce,
        expiresAt: expiresAt.toISOString(),
        // A SolanaSignInInput (Wallet Standard `solana:signIn`): the wallet adds the address and signs it as is.
        input: {
          domain,
          uri: origin,
          version: "1",
          chainId: chains[0],
          nonce,
          issuedAt: issuedAt.toISOString(),
          statement: statementFor(link),
        },
      });
    });

    router.post("/siws/verify", describeRoute(docs.siwsVerify), async (req, res) => {
      verifyLimit.consumeLocal(req.ip ?? "unknown");
      const body = ctx.parse(siwsBody, req.body);
      checkSize("SIWS", body.message);
      const credentials = decodeSiwsCredentials(body.address, body.signature);
      const parsed = checkSiwsMessage(body.message, body.address, policy(chains));
      const result = await ctx.signInOnce(req, res, {
        limit: { limiter: verifyLimit, key: req.ip ?? "unknown" },
        consume: (q) => consumeNonce("SIWS", "solana", parsed.nonce, parsed.statement, q),
        verify() {
          verifySiwsSignature(keyCache, body.address, credentials.publicKey, body.message, credentials.signature);
          const sourceType: WalletSourceType = {
            type: "web3_wallet",
            provider: body.provider ?? "unknown",
            network: "solana",
            metadata: { chain_id: normalizeSolanaChain(parsed.chainId) },
          };
          return { network: "solana", sourceIdentifier: body.address, sourceType };
        },
      });
      res.json(result);
    });
  }
}
