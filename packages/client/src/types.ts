/** A row of `user_references`, as the server sends it (dates as ISO strings). */
export interface UserReference {
  id: string;
  source_identifier: string;
  network: string;
  user_type: "external" | "api" | "agent" | "system";
  source_type: { type: string } & Record<string, unknown>;
  email: string | null;
  metadata: Record<string, unknown> | null;
  preferences: Record<string, unknown> | null;
  is_active: boolean | null;
  /** The person this identity belongs to (a new identity is its own: `person_id === id`). */
  person_id: string;
  created_at: string;
  updated_at: string;
}

/** One identity of a person, as `GET /auth/identities` shows it (no secrets, no provider data). */
export interface PersonIdentity {
  id: string;
  network: string;
  source_identifier: string;
  /** `source_type.type`: `siwe`, `siws`, `email_auth`, `oauth`, … */
  type: string;
  email: string | null;
  is_active: boolean | null;
  created_at: string;
}

/** A person: the identities linked to one another, each with its own proof. Apps key their data by `id`. */
export interface PersonInfo {
  id: string;
  identities: PersonIdentity[];
}

/** `GET /auth/session`. */
export interface SessionInfo {
  user: UserReference;
  /** The person the session's identity belongs to, with all its identities. */
  person: PersonInfo;
  /** `authenticatedAt`: when this session last proved a credential (link and unlink need it recent). */
  session: { id: string; userId: string; createdAt: string; expiresAt: string; authenticatedAt?: string } | null;
  via: "session" | "api_key" | (string & {});
  scopes: string[];
  [more: string]: unknown;
}

/** What a sign-in route answers. `session.token` is there only for bearer clients, and the client keeps it. */
export interface SignInResult {
  user: UserReference;
  session: { id: string; expiresAt: string; token?: string };
}

/** What a proof made under a link intent did: attached a new identity, took in another person, or re-proved one of this person's. */
export type LinkOutcome = "linked" | "merged" | "reauthenticated";

/**
 * The answer to a sign-in route used under a link intent: no new session (`session` is the one that
 * asked), the identity proven (`linked`) and the person as it is now.
 */
export interface LinkResult extends SignInResult {
  outcome: LinkOutcome;
  person: PersonInfo;
  linked: UserReference;
}

/** Makes a sign-in helper link instead: the new identity joins the signed-in person (needs a fresh session). */
export interface LinkIntentOption {
  intent: "link";
  /** Take in the other person when the identity already belongs to one (else 409 `ERR_IDENTITY_LINKED_ELSEWHERE`). */
  merge?: boolean;
}

/**
 * Step-up: a session of any age re-proves one of its person's own identities and is fresh again (no
 * new session); anything else is 403 `ERR_REAUTH_IDENTITY_FOREIGN`. Answers a `LinkResult` with
 * outcome `reauthenticated`.
 */
export interface ReauthenticateOption {
  intent: "reauthenticate";
  merge?: undefined;
}

/** `{ intent: "link" }`, `{ intent: "reauthenticate" }`, or nothing (a sign-in). */
export type IntentOption = LinkIntentOption | ReauthenticateOption | { intent?: "sign-in"; merge?: undefined };

export interface SiweNonce {
  nonce: string;
  expiresAt: string;
  domain: string;
  uri: string;
  version: string;
  chains: number[];
  /** The exact message to sign, when the nonce was asked for with `{ address, chainId }`. */
  message?: string;
}

export interface SiwsNonce {
  nonce: string;
  expiresAt: string;
  input: import("./messages.js").SolanaSignInInput;
}

export interface ApiKeyInfo {
  id: string;
  name: string;
  prefix: string;
  last4: string;
  scopes: string[];
  userId: string;
  ownerId: string | null;
  createdBy: string;
  createdAt: string;
  expiresAt: string | null;
  lastUsedAt: string | null;
  revokedAt: string | null;
  rotatedAt: string | null;
  /** Until when the secret replaced by the last rotation keeps working (`null`: never rotated). */
  previousValidUntil: string | null;
  [more: string]: unknown;
}

/** A key as created or rotated: `key` is the secret, shown this once. */
export interface NewApiKey extends ApiKeyInfo {
  key: string;
}

export interface OAuthProviderInfo {
  id: string;
  label: string;
  url: string;
}
