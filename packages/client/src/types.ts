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
  created_at: string;
  updated_at: string;
}

/** `GET /auth/session`. */
export interface SessionInfo {
  user: UserReference;
  session: { id: string; userId: string; createdAt: string; expiresAt: string } | null;
  via: "session" | "api_key" | (string & {});
  scopes: string[];
  [more: string]: unknown;
}

/** What a sign-in route answers. `session.token` is there only for bearer clients, and the client keeps it. */
export interface SignInResult {
  user: UserReference;
  session: { id: string; expiresAt: string; token?: string };
}

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
