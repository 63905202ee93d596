import { createCipheriv, createDecipheriv } from "node:crypto";
import type { ProviderContext, Queryable } from "@erebus/core/provider";

export const refreshTokenMigration = {
  id: "0002_oauth_refresh_tokens",
  sql: `CREATE TABLE erebus_oauth_refresh_tokens (
    user_id UUID NOT NULL REFERENCES user_references (id) ON DELETE CASCADE,
    provider TEXT NOT NULL,
    -- AES-256-GCM: 12-byte IV || ciphertext || 16-byte tag, base64. The key is never in the database.
    sealed TEXT NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (user_id, provider)
  );`,
};

/** AES-256-GCM sealing with a fresh random IV per value; the user id and provider are bound as AAD. */
export function seal(key: Buffer, iv: Buffer, plaintext: string, aad: string): string {
  const cipher = createCipheriv("aes-256-gcm", key, iv);
  cipher.setAAD(Buffer.from(aad));
  const body = Buffer.concat([cipher.update(plaintext, "utf8"), cipher.final()]);
  return Buffer.concat([iv, body, cipher.getAuthTag()]).toString("base64");
}

export function unseal(key: Buffer, sealed: string, aad: string): string {
  const raw = Buffer.from(sealed, "base64");
  const decipher = createDecipheriv("aes-256-gcm", key, raw.subarray(0, 12));
  decipher.setAAD(Buffer.from(aad));
  decipher.setAuthTag(raw.subarray(raw.length - 16));
  return Buffer.concat([decipher.update(raw.subarray(12, raw.length - 16)), decipher.final()]).toString("utf8");
}

/** The stored refresh tokens: `auth.providers.oauth.refreshTokens` (with `refreshTokenKey` set). */
export interface RefreshTokenStore {
  /** Stores (or replaces) a user's refresh token for a provider, sealed; on `q` to be part of a commit. */
  save(userId: string, provider: string, refreshToken: string, q?: Queryable): Promise<void>;
  /** The stored refresh token, decrypted, or null. */
  get(userId: string, provider: string): Promise<string | null>;
}

export function createRefreshTokenStore(ctx: ProviderContext, keyBase64: string): RefreshTokenStore {
  const key = Buffer.from(keyBase64, "base64");
  return {
    async save(userId: string, provider: string, refreshToken: string, q: Queryable = ctx.db): Promise<void> {
      await q.query(
        `INSERT INTO erebus_oauth_refresh_tokens (user_id, provider, sealed, updated_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (user_id, provider) DO UPDATE SET sealed = EXCLUDED.sealed, updated_at = EXCLUDED.updated_at`,
        [userId, provider, seal(key, ctx.random(12), refreshToken, `${userId}:${provider}`), ctx.clock()],
      );
    },
    /** The stored refresh token, decrypted, or null. */
    async get(userId: string, provider: string): Promise<string | null> {
      const { rows } = await ctx.db.query<{ sealed: string }>(
        "SELECT sealed FROM erebus_oauth_refresh_tokens WHERE user_id = $1 AND provider = $2",
        [userId, provider],
      );
      return rows[0] ? unseal(key, rows[0].sealed, `${userId}:${provider}`) : null;
    },
  };
}
