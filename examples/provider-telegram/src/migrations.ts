/** The table of used logins the provider kept before core's single-use secret store (kept as released: migrations are append-only). */
export const usedLoginsMigration = {
  id: "0001_used_logins",
  // The SHA-256 of each hash that signed in, kept until its auth_date is past maxAge (then the date
  // check refuses it anyway). The hash is not a secret once used, but the table need not hold it.
  sql: `CREATE TABLE erebus_telegram_used_logins (
          hash_sha256 TEXT PRIMARY KEY,
          auth_date TIMESTAMPTZ NOT NULL,
          used_at TIMESTAMPTZ NOT NULL
        );
        CREATE INDEX erebus_telegram_used_logins_auth_date_idx ON erebus_telegram_used_logins (auth_date);`,
};

/**
 * Used logins live on core's `erebus_verifications` now (`ctx.verifications.remember`, purpose
 * `payload`). Unlike a nonce, a used login must stay refused until its date makes it stale, so the
 * old rows are carried over before the table is dropped: `remember` stores SHA-256 of the login's
 * hash, which is what the old table's `hash_sha256` holds. They are kept for the longest `maxAge`
 * allowed (30 days; the SQL cannot know the configured one), which only delays their pruning.
 */
export const moveUsedLoginsMigration = {
  id: "0002_used_logins_to_verifications",
  sql: `INSERT INTO erebus_verifications (id, provider, purpose, secret_hash, created_at, expires_at, consumed_at)
          SELECT gen_random_uuid(), 'telegram', 'payload', hash_sha256, used_at, auth_date + interval '30 days', used_at
          FROM erebus_telegram_used_logins
          ON CONFLICT ON CONSTRAINT erebus_verifications_secret_key DO NOTHING;
        DROP TABLE erebus_telegram_used_logins;`,
};
