import { base58Encode } from "./base58.js";
import { ErebusError, errorFromResponse } from "./errors.js";
import { checkSignInMessage, formatSiwsMessage } from "./messages.js";
import { toSolanaSigner, type EthereumSigner, type SolanaSignerInput } from "./signers.js";
import { memoryTokenStore, type TokenStore } from "./token-store.js";
import type {
  ApiKeyInfo,
  IntentOption,
  LinkIntentOption,
  LinkResult,
  NewApiKey,
  OAuthProviderInfo,
  PersonInfo,
  SessionInfo,
  SignInResult,
  SiweNonce,
  SiwsNonce,
  UserReference,
} from "./types.js";

export interface ErebusClientOptions {
  /** The app's origin (`https://app.example`), or, in a page, omit it to use the page's own. */
  baseURL?: string | URL;
  /** Where the app mounted `auth.router`. Default `/auth`. */
  basePath?: string;
  /**
   * `cookie` (browsers: the session is an HttpOnly cookie, requests go with `credentials: "include"`)
   * or `bearer` (programs: the token comes back in the body and goes out as `Authorization: Bearer`).
   * Default: `cookie` in a page, `bearer` elsewhere.
   */
  session?: "cookie" | "bearer";
  /** Where a bearer token is kept. Default: in memory only. */
  tokenStore?: TokenStore;
  /** An API key to send (`X-API-Key`) instead of a session: for programs that hold one. */
  apiKey?: string;
  /** Injectable `fetch` (tests, proxies, retries). Default: the global one. */
  fetch?: typeof fetch;
}

type Json = Record<string, unknown>;

/** What `createErebusClient` returns. */
export interface ErebusClient {
  /** The origin every request goes to (credentials are never sent anywhere else). */
  readonly baseURL: URL;
  /** The signed-in session (cookie, bearer token or API key), or `null` when nobody is signed in. */
  session(): Promise<SessionInfo | null>;
  /** Ends the session on the server and forgets the token. */
  signOut(): Promise<void>;
  /**
   * `GET /auth/identities`: the signed-in person and every identity linked to it.
   */
  identities(): Promise<PersonInfo>;
  /**
   * `DELETE /auth/identities/:id`: unlinks one of the person's identities (it becomes a person of its
   * own and its sessions end). Needs a fresh session (`ReauthRequiredError`); never the last identity
   * nor the one this session signed in with (409 `ERR_IDENTITY_LAST` / `ERR_IDENTITY_IN_USE`).
   */
  unlink(id: string): Promise<{ person: PersonInfo; unlinked: UserReference }>;
  readonly siwe: {
    /**
     * `POST /auth/siwe/nonce`; with `{ address, chainId }` the answer includes the exact message to sign;
     * with `intent: "link"` the nonce links to the signed-in person instead of signing in.
     */
    nonce(input?: ({ address: string; chainId: number } | {}) & IntentOption): Promise<SiweNonce>;
    /** Answers a `LinkResult` (see `isLinkResult`) when the nonce was issued under a link intent. */
    verify(input: { message: string; signature: string; provider?: string }): Promise<SignInResult>;
  };
  readonly siws: {
    nonce(input?: IntentOption): Promise<SiwsNonce>;
    /** Answers a `LinkResult` (see `isLinkResult`) when the nonce was issued under a link intent. */
    verify(input: { message: string; signature: string; address: string; provider?: string }): Promise<SignInResult>;
  };
  /**
   * Sign-In with Ethereum in one call: nonce, message (checked to name this site before signing),
   * signature, session. Takes a viem account or anything `{ address, signMessage({ message }) }`.
   * With `{ intent: "link" }`, the account joins the signed-in person instead (no new session).
   */
  signInWithEthereum(signer: EthereumSigner, input: { chainId?: number; provider?: string } & LinkIntentOption): Promise<LinkResult>;
  signInWithEthereum(signer: EthereumSigner, input?: { chainId?: number; provider?: string } & IntentOption): Promise<SignInResult>;
  /**
   * Sign In With Solana in one call: a `@solana/web3.js` Keypair, a `@solana/kit` signer, or `{ address, signMessage(bytes) }`.
   * With `{ intent: "link" }`, the key joins the signed-in person instead (no new session).
   */
  signInWithSolana(signer: SolanaSignerInput, input: { provider?: string } & LinkIntentOption): Promise<LinkResult>;
  signInWithSolana(signer: SolanaSignerInput, input?: { provider?: string } & IntentOption): Promise<SignInResult>;
  readonly email: {
    /**
     * `POST /auth/email/start`: 202 whether or not the address is known. With `intent: "link"` the
     * link or code then attaches the address to the signed-in person (used in this same session).
     */
    start(input: EmailStart): Promise<{ ok: true; mode: "link" | "code" }>;
    /** `POST /auth/email/verify` with the link's token or the mailed code; a `LinkResult` under a link intent. */
    verify(input: EmailVerify): Promise<SignInResult>;
  };
  readonly oauth: {
    /** The configured OAuth/OIDC providers, for drawing buttons. */
    providers(): Promise<OAuthProviderInfo[]>;
    /** Where to send the browser to sign in with `provider`; `returnTo` is a path on this site. */
    startURL(provider: string, input?: { returnTo?: string } & IntentOption): string;
    /** Where to send the browser to link `provider`'s account to the signed-in person (`?intent=link`, `&merge=1`). */
    linkURL(provider: string, input?: { returnTo?: string; merge?: boolean }): string;
    /** In a page: navigates to the provider (the callback comes back with a session cookie, or linked). */
    signIn(provider: string, input?: { returnTo?: string } & IntentOption): void;
  };
  readonly apiKeys: {
    create(input: { name: string; scopes?: string[]; expiresInDays?: number }): Promise<NewApiKey>;
    list(): Promise<ApiKeyInfo[]>;
    /** A new secret; the old one keeps working for `gracePeriodSeconds` (0: it stops at once). */
    rotate(id: string, input?: { gracePeriodSeconds?: number }): Promise<NewApiKey>;
    revoke(id: string): Promise<void>;
  };
  /** A request to the app's own API with this client's credential; the raw Response, no status check. */
  request(path: string | URL, init?: RequestInit): Promise<Response>;
  /** A request to the app's own API; the JSON body (undefined for 204), or an `ErebusError` from its problem document. */
  json<T = unknown>(path: string | URL, init?: RequestInit): Promise<T>;
}


/** `{ email, mode }` → the code or link mail goes out; the answer is the same for every address. `intent: "link"`: it attaches instead. */
export type EmailStart = { email: string; mode?: "link" | "code" } & IntentOption;
/** `switch: true` is the explicit choice to leave the account this client is signed in as (409 `ERR_EMAIL_SWITCH_REQUIRED` otherwise). */
export type EmailVerify = { token: string; email?: string; switch?: true } | { email: string; code: string; switch?: true };

/**
 * A typed client for an app that mounts Erebus: every route of core and the providers, bearer
 * sessions for programs, cookies in pages, and one-call wallet sign-in. Errors are `ErebusError`s
 * carrying the server's problem document.
 *
 * @example
 * import { createErebusClient } from "@erebus/client";
 * import { privateKeyToAccount } from "viem/accounts";
 *
 * const client = createErebusClient({ baseURL: "https://app.example" });
 * await client.signInWithEthereum(privateKeyToAccount(process.env.BOT_KEY as `0x${string}`));
 * const me = await client.json("/api/me");
 */
export function createErebusClient(options: ErebusClientOptions = {}): ErebusClient {
  const inPage = typeof document !== "undefined" && typeof location !== "undefined";
  const base = resolveBase(options.baseURL, inPage);
  const basePath = `/${(options.basePath ?? "/auth").replace(/^\/+|\/+$/g, "")}`.replace(/^\/$/, "");
  const mode = options.session ?? (inPage ? "cookie" : "bearer");
  if (mode !== "cookie" && mode !== "bearer") throw new TypeError(`createErebusClient: option "session" must be "cookie" or "bearer"`);
  const tokens = options.tokenStore ?? memoryTokenStore();
  const doFetch = options.fetch ?? globalThis.fetch?.bind(globalThis);
  if (!doFetch) throw new TypeError("createErebusClient: no global fetch; pass options.fetch");
  const apiKey = options.apiKey;

  const authURL = (path: string) => new URL(`${basePath}${path}`, base);

  /** Any request to the app, with the credential attached. Answers the raw Response (no status check). */
  async function request(path: string | URL, init: RequestInit = {}): Promise<Response> {
    const url = typeof path === "string" && !/^[a-z][a-z0-9+.-]*:/i.test(path) ? new URL(path, base) : new URL(path);
    if (url.origin !== base.origin) throw new TypeError(`@erebus/client: refusing to send credentials to ${url.origin} (the client is for ${base.origin})`);
    const headers = new Headers(init.headers);
    if (init.body !== undefined && typeof init.body === "string" && !headers.has("content-type")) headers.set("content-type", "application/json");
    if (apiKey !== undefined && !headers.has("x-api-key")) headers.set("x-api-key", apiKey);
    if (mode === "bearer") {
      headers.set("erebus-session-transport", "bearer");
      const token = apiKey === undefined ? await tokens.get() : null;
      if (token && !headers.has("authorization")) headers.set("authorization", `Bearer ${token}`);
    }
    try {
      // Never follow a redirect: fetch keeps custom headers (X-API-Key) across origins, so a 30x to
      // another site would hand it the key, and a sign-in POST redirected there would hand it the
      // signed message and take back a session of its choosing. The routes never redirect JSON calls.
      return await doFetch(url, { ...init, headers, credentials: mode === "cookie" ? "include" : "omit", redirect: "manual" });
    } catch (error) {
      throw new ErebusError({ code: "ERR_CLIENT_NETWORK", title: "The server could not be reached", status: 0, detail: String((error as Error)?.message ?? error) }, { cause: error });
    }
  }

  /** Like `request`, then: 2xx → the parsed JSON body (undefined for 204), else an `ErebusError`. */
  async function json<T = unknown>(path: string | URL, init: RequestInit = {}): Promise<T> {
    const response = await request(path, init);
    if (!response.ok) throw await errorFromResponse(response);
    if (response.status === 204) return undefined as T;
    const text = await response.text();
    if (!text) return undefined as T;
    try {
      return JSON.parse(text) as T;
    } catch (error) {
      // A page, a proxy's HTML: still an ErebusError, as every failure of a call is.
      throw new ErebusError({ code: "ERR_CLIENT_UNEXPECTED_RESPONSE", title: "Unexpected response", status: response.status, detail: `HTTP ${response.status} with a body that is not JSON` }, { cause: error });
    }
  }

  const call = <T>(method: string, path: string, body?: Json) =>
    json<T>(authURL(path), { method, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });

  /**
   * Sign-in answers carry the bearer token once: keep it, and never hand it back to the caller's logs.
   * A link answer starts no session (the session that asked stays the one in use): nothing to keep.
   */
  async function signedIn(result: SignInResult): Promise<SignInResult> {
    if (isLinkResult(result)) return result;
    if (mode === "bearer") {
      const token = result.session?.token;
      if (!token) throw new ErebusError({ code: "ERR_CLIENT_UNEXPECTED_RESPONSE", title: "Unexpected response", status: 200, detail: "the sign-in answer carried no bearer token" });
      await tokens.set(token);
      const { token: _kept, ...session } = result.session;
      return { ...result, session };
    }
    return result;
  }

  const siwe = {
    nonce: async (input?: ({ address: string; chainId: number } | {}) & IntentOption) => call<SiweNonce>("POST", "/siwe/nonce", input && withIntent({ ...input }, input)),
    verify: async (input: { message: string; signature: string; provider?: string }) => signedIn(await call<SignInResult>("POST", "/siwe/verify", input)),
  };
  const siws = {
    nonce: async (input?: IntentOption) => call<SiwsNonce>("POST", "/siws/nonce", input?.intent === undefined ? undefined : withIntent({}, input)),
    verify: async (input: { message: string; signature: string; address: string; provider?: string }) => signedIn(await call<SignInResult>("POST", "/siws/verify", input)),
  };

  function oauthStartURL(provider: string, input: { returnTo?: string } & IntentOption = {}): string {
    const url = authURL(`/oauth/${encodeURIComponent(provider)}`);
    if (input.returnTo !== undefined) url.searchParams.set("returnTo", input.returnTo);
    if (input.intent === "link" || input.intent === "reauthenticate") {
      url.searchParams.set("intent", input.intent);
      if (input.intent === "link" && input.merge) url.searchParams.set("merge", "1");
    }
    return url.href;
  }

  /**
   * The proof's POST, answered as asked: a link must come back as a link (its answer keeps the
   * session in use: no token to store), a sign-in as a sign-in. A server that ignored the intent
   * would have replaced the session where the caller asked to link: refused, and its token not kept.
   */
  async function verifyAs(path: string, body: Json, input: IntentOption): Promise<SignInResult> {
    const result = await call<SignInResult>("POST", path, body);
    const asked = input.intent === "link" || input.intent === "reauthenticate";
    if (asked !== isLinkResult(result)) {
      throw new ErebusError({
        code: "ERR_CLIENT_UNEXPECTED_RESPONSE",
        title: "Unexpected response",
        status: 200,
        detail: asked ? "asked to link, but the server answered with a sign-in (does this provider support link intents?)" : "a sign-in answered with a link result",
      });
    }
    return signedIn(result);
  }

  /** Ethereum: a link answer or a sign-in, by what the nonce was asked for. */
  async function ethereum(signer: EthereumSigner, input: { chainId?: number; provider?: string } & IntentOption = {}): Promise<SignInResult> {
    if (typeof signer?.address !== "string" || typeof signer.signMessage !== "function") {
      throw new TypeError("signInWithEthereum: the signer must be { address, signMessage({ message }) } (a viem account is one)");
    }
    const chainId = input.chainId ?? 1;
    const issued = await siwe.nonce(withIntent({ address: signer.address, chainId }, input));
    if (!issued.message) throw new ErebusError({ code: "ERR_CLIENT_UNEXPECTED_RESPONSE", title: "Unexpected response", status: 200, detail: "no message in the nonce answer" });
    checkSignInMessage(issued.message, { host: base.host, origin: base.origin, nonce: issued.nonce, family: "Ethereum", address: signer.address, chainId: String(chainId) });
    const signature = await signer.signMessage({ message: issued.message });
    return verifyAs("/siwe/verify", { message: issued.message, signature, ...(input.provider ? { provider: input.provider } : {}) }, input);
  }

  async function solana(signerInput: SolanaSignerInput, input: { provider?: string } & IntentOption = {}): Promise<SignInResult> {
    const signer = toSolanaSigner(signerInput);
    const issued = await siws.nonce(input.intent === undefined ? undefined : withIntent({}, input));
    const message = formatSiwsMessage(issued.input, signer.address);
    checkSignInMessage(message, { host: base.host, origin: base.origin, nonce: issued.nonce, family: "Solana", address: signer.address });
    const signature = await signer.signMessage(new TextEncoder().encode(message));
    return verifyAs("/siws/verify", { message, signature: base58Encode(signature), address: signer.address, ...(input.provider ? { provider: input.provider } : {}) }, input);
  }

  return {
    baseURL: base,
    /** The signed-in session (cookie, bearer token or API key), or `null` when nobody is signed in. */
    async session(): Promise<SessionInfo | null> {
      if (mode === "bearer" && apiKey === undefined && !(await tokens.get())) return null;
      try {
        return await call<SessionInfo>("GET", "/session");
      } catch (error) {
        if (!(error instanceof ErebusError) || error.status !== 401) throw error;
        // The token is dead (revoked, expired): forget it rather than send it again.
        if (mode === "bearer" && apiKey === undefined) await tokens.set(null);
        return null;
      }
    },
    /** Ends the session on the server and forgets the token. */
    async signOut(): Promise<void> {
      try {
        await call<void>("POST", "/sign-out");
      } finally {
        if (mode === "bearer") await tokens.set(null);
      }
    },
    /** `GET /auth/identities`: the signed-in person and every identity linked to it. */
    identities: async () => (await call<{ person: PersonInfo }>("GET", "/identities")).person,
    /** `DELETE /auth/identities/:id`: unlink (fresh session; never the last identity nor this session's own). */
    unlink: async (id: string) => call<{ person: PersonInfo; unlinked: UserReference }>("DELETE", `/identities/${pathSegment(id, "unlink")}`),
    siwe,
    siws,
    signInWithEthereum: ethereum as ErebusClient["signInWithEthereum"],
    signInWithSolana: solana as ErebusClient["signInWithSolana"],
    email: {
      /** `POST /auth/email/start`: 202 whether or not the address is known. */
      start: async (input: EmailStart) => call<{ ok: true; mode: "link" | "code" }>("POST", "/email/start", withIntent({ ...input }, input)),
      /** `POST /auth/email/verify` with the link's token or the mailed code. */
      verify: async (input: EmailVerify) => signedIn(await call<SignInResult>("POST", "/email/verify", { ...input })),
    },
    oauth: {
      /** The configured OAuth/OIDC providers, for drawing buttons. */
      providers: async () => (await call<{ providers: OAuthProviderInfo[] }>("GET", "/oauth")).providers,
      /** Where to send the browser to sign in with `provider`; `returnTo` is a path on this site. */
      startURL: oauthStartURL,
      /** Where to send the browser to link `provider`'s account to the signed-in person. */
      linkURL: (provider: string, input: { returnTo?: string; merge?: boolean } = {}) =>
        oauthStartURL(provider, { ...(input.returnTo === undefined ? {} : { returnTo: input.returnTo }), intent: "link", ...(input.merge ? { merge: true } : {}) }),
      /** In a page: navigates to the provider (the callback comes back with a session cookie). */
      signIn(provider: string, input: { returnTo?: string } & IntentOption = {}): void {
        if (!inPage) throw new TypeError("oauth.signIn navigates a page; in a program use oauth.startURL and a browser");
        location.assign(oauthStartURL(provider, input));
      },
    },
    apiKeys: {
      create: (input: { name: string; scopes?: string[]; expiresInDays?: number }) => call<NewApiKey>("POST", "/api-keys", { ...input }),
      list: async () => (await call<{ keys: ApiKeyInfo[] }>("GET", "/api-keys")).keys,
      /** A new secret; the old one keeps working for `gracePeriodSeconds` (0: it stops at once). */
      rotate: async (id: string, input: { gracePeriodSeconds?: number } = {}) => call<NewApiKey>("POST", `/api-keys/${pathSegment(id, "apiKeys.rotate")}/rotate`, { ...input }),
      revoke: async (id: string) => call<void>("DELETE", `/api-keys/${pathSegment(id, "apiKeys.revoke")}`),
    },
    /** A request to the app's own API with this client's credential; the raw Response. */
    request,
    /** A request to the app's own API; the JSON body, or an `ErebusError` from its problem document. */
    json,
  };
}

/**
 * An id as one path segment. A lone surrogate cannot be encoded (encodeURIComponent throws a
 * URIError): that is the caller's bug, said as a TypeError like every other misuse.
 */
function pathSegment(id: unknown, method: string): string {
  if (typeof id !== "string" || id.length === 0) throw new TypeError(`${method}: the id must be a non-empty string`);
  try {
    return encodeURIComponent(id);
  } catch {
    throw new TypeError(`${method}: the id is not a well-formed string (a lone surrogate)`);
  }
}

/** A sign-in answer that linked instead (it carries `outcome`): narrows `SignInResult` to `LinkResult`. */
export function isLinkResult(result: SignInResult): result is LinkResult {
  const outcome = (result as Partial<LinkResult>)?.outcome;
  return outcome === "linked" || outcome === "merged" || outcome === "reauthenticated";
}

/**
 * Request body fields for an intent: `intent` only when one was given (an older server's strict body
 * would refuse an unknown field on a plain sign-in), `merge` only with a link.
 */
function withIntent<T extends object>(body: T, input: { intent?: unknown; merge?: unknown }): T {
  const { intent: _i, merge: _m, ...rest } = body as T & { intent?: unknown; merge?: unknown };
  if (input.intent === undefined) return rest as T;
  if (input.intent !== "link" && input.intent !== "sign-in" && input.intent !== "reauthenticate") {
    throw new TypeError(`@erebus/client: intent must be "link", "reauthenticate" or "sign-in", got ${JSON.stringify(input.intent)}`);
  }
  if (input.merge !== undefined && typeof input.merge !== "boolean") throw new TypeError("@erebus/client: merge must be a boolean");
  return { ...rest, intent: input.intent, ...(input.intent === "link" && input.merge !== undefined ? { merge: input.merge } : {}) } as T;
}

function resolveBase(baseURL: string | URL | undefined, inPage: boolean): URL {
  if (baseURL === undefined) {
    if (!inPage) throw new TypeError("createErebusClient: option \"baseURL\" is required outside a page (e.g. \"https://app.example\")");
    return new URL(location.origin);
  }
  let url: URL;
  try {
    url = new URL(baseURL);
  } catch {
    throw new TypeError(`createErebusClient: option "baseURL" must be an absolute URL like "https://app.example", got ${JSON.stringify(String(baseURL))}`);
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") throw new TypeError(`createErebusClient: option "baseURL" must be http(s), got ${url.protocol}`);
  return new URL(url.origin);
}
