import { base58Encode } from "./base58.js";
import { ErebusError, errorFromResponse } from "./errors.js";
import { checkSignInMessage, formatSiwsMessage } from "./messages.js";
import { toSolanaSigner, type EthereumSigner, type SolanaSignerInput } from "./signers.js";
import { memoryTokenStore, type TokenStore } from "./token-store.js";
import type { ApiKeyInfo, NewApiKey, OAuthProviderInfo, SessionInfo, SignInResult, SiweNonce, SiwsNonce } from "./types.js";

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
  readonly siwe: {
    /** `POST /auth/siwe/nonce`; with `{ address, chainId }` the answer includes the exact message to sign. */
    nonce(input?: { address: string; chainId: number }): Promise<SiweNonce>;
    verify(input: { message: string; signature: string; provider?: string }): Promise<SignInResult>;
  };
  readonly siws: {
    nonce(): Promise<SiwsNonce>;
    verify(input: { message: string; signature: string; address: string; provider?: string }): Promise<SignInResult>;
  };
  /**
   * Sign-In with Ethereum in one call: nonce, message (checked to name this site before signing),
   * signature, session. Takes a viem account or anything `{ address, signMessage({ message }) }`.
   */
  signInWithEthereum(signer: EthereumSigner, input?: { chainId?: number; provider?: string }): Promise<SignInResult>;
  /** Sign In With Solana in one call: a `@solana/web3.js` Keypair, a `@solana/kit` signer, or `{ address, signMessage(bytes) }`. */
  signInWithSolana(signer: SolanaSignerInput, input?: { provider?: string }): Promise<SignInResult>;
  readonly email: {
    /** `POST /auth/email/start`: 202 whether or not the address is known. */
    start(input: EmailStart): Promise<{ ok: true; mode: "link" | "code" }>;
    /** `POST /auth/email/verify` with the link's token or the mailed code. */
    verify(input: EmailVerify): Promise<SignInResult>;
  };
  readonly oauth: {
    /** The configured OAuth/OIDC providers, for drawing buttons. */
    providers(): Promise<OAuthProviderInfo[]>;
    /** Where to send the browser to sign in with `provider`; `returnTo` is a path on this site. */
    startURL(provider: string, input?: { returnTo?: string }): string;
    /** In a page: navigates to the provider (the callback comes back with a session cookie). */
    signIn(provider: string, input?: { returnTo?: string }): void;
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


/** `{ email, mode }` → the code or link mail goes out; the answer is the same for every address. */
export interface EmailStart {
  email: string;
  mode?: "link" | "code";
}
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

  /** Sign-in answers carry the bearer token once: keep it, and never hand it back to the caller's logs. */
  async function signedIn(result: SignInResult): Promise<SignInResult> {
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
    /** `POST /auth/siwe/nonce`; with `{ address, chainId }` the answer includes the exact message to sign. */
    nonce: (input?: { address: string; chainId: number }) => call<SiweNonce>("POST", "/siwe/nonce", input),
    verify: async (input: { message: string; signature: string; provider?: string }) => signedIn(await call<SignInResult>("POST", "/siwe/verify", input)),
  };
  const siws = {
    nonce: () => call<SiwsNonce>("POST", "/siws/nonce"),
    verify: async (input: { message: string; signature: string; address: string; provider?: string }) => signedIn(await call<SignInResult>("POST", "/siws/verify", input)),
  };

  function oauthStartURL(provider: string, input: { returnTo?: string } = {}): string {
    const url = authURL(`/oauth/${encodeURIComponent(provider)}`);
    if (input.returnTo !== undefined) url.searchParams.set("returnTo", input.returnTo);
    return url.href;
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
    siwe,
    siws,
    /**
     * Sign-In with Ethereum in one call: nonce, message (checked to name this site before signing),
     * signature, session. Takes a viem account or anything `{ address, signMessage({ message }) }`.
     */
    async signInWithEthereum(signer: EthereumSigner, input: { chainId?: number; provider?: string } = {}): Promise<SignInResult> {
      if (typeof signer?.address !== "string" || typeof signer.signMessage !== "function") {
        throw new TypeError("signInWithEthereum: the signer must be { address, signMessage({ message }) } (a viem account is one)");
      }
      const chainId = input.chainId ?? 1;
      const issued = await siwe.nonce({ address: signer.address, chainId });
      if (!issued.message) throw new ErebusError({ code: "ERR_CLIENT_UNEXPECTED_RESPONSE", title: "Unexpected response", status: 200, detail: "no message in the nonce answer" });
      checkSignInMessage(issued.message, { host: base.host, origin: base.origin, nonce: issued.nonce, family: "Ethereum", address: signer.address, chainId: String(chainId) });
      const signature = await signer.signMessage({ message: issued.message });
      return siwe.verify({ message: issued.message, signature, ...(input.provider ? { provider: input.provider } : {}) });
    },
    /**
     * Sign In With Solana in one call. Takes a `@solana/web3.js` Keypair, a `@solana/kit` signer, or
     * `{ address, signMessage(bytes) }`.
     */
    async signInWithSolana(signerInput: SolanaSignerInput, input: { provider?: string } = {}): Promise<SignInResult> {
      const signer = toSolanaSigner(signerInput);
      const issued = await siws.nonce();
      const message = formatSiwsMessage(issued.input, signer.address);
      checkSignInMessage(message, { host: base.host, origin: base.origin, nonce: issued.nonce, family: "Solana", address: signer.address });
      const signature = await signer.signMessage(new TextEncoder().encode(message));
      return siws.verify({ message, signature: base58Encode(signature), address: signer.address, ...(input.provider ? { provider: input.provider } : {}) });
    },
    email: {
      /** `POST /auth/email/start`: 202 whether or not the address is known. */
      start: (input: EmailStart) => call<{ ok: true; mode: "link" | "code" }>("POST", "/email/start", { ...input }),
      /** `POST /auth/email/verify` with the link's token or the mailed code. */
      verify: async (input: EmailVerify) => signedIn(await call<SignInResult>("POST", "/email/verify", { ...input })),
    },
    oauth: {
      /** The configured OAuth/OIDC providers, for drawing buttons. */
      providers: async () => (await call<{ providers: OAuthProviderInfo[] }>("GET", "/oauth")).providers,
      /** Where to send the browser to sign in with `provider`; `returnTo` is a path on this site. */
      startURL: oauthStartURL,
      /** In a page: navigates to the provider (the callback comes back with a session cookie). */
      signIn(provider: string, input: { returnTo?: string } = {}): void {
        if (!inPage) throw new TypeError("oauth.signIn navigates a page; in a program use oauth.startURL and a browser");
        location.assign(oauthStartURL(provider, input));
      },
    },
    apiKeys: {
      create: (input: { name: string; scopes?: string[]; expiresInDays?: number }) => call<NewApiKey>("POST", "/api-keys", { ...input }),
      list: async () => (await call<{ keys: ApiKeyInfo[] }>("GET", "/api-keys")).keys,
      /** A new secret; the old one keeps working for `gracePeriodSeconds` (0: it stops at once). */
      rotate: (id: string, input: { gracePeriodSeconds?: number } = {}) => call<NewApiKey>("POST", `/api-keys/${encodeURIComponent(id)}/rotate`, { ...input }),
      revoke: (id: string) => call<void>("DELETE", `/api-keys/${encodeURIComponent(id)}`),
    },
    /** A request to the app's own API with this client's credential; the raw Response. */
    request,
    /** A request to the app's own API; the JSON body, or an `ErebusError` from its problem document. */
    json,
  };
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
