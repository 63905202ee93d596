-- Single-use secrets for every provider (wallet nonces, email links and codes, OAuth attempts,
-- passkey challenges, …): only a hash of each secret is stored. A row is used up at most once
-- (consumed_at), ends early when a newer one replaces it (superseded_at), and may be bound to the
-- browser that asked for it (browser_hash: a hash of a value in an HttpOnly cookie).
CREATE TABLE erebus_verifications (
    id UUID PRIMARY KEY,
    provider TEXT NOT NULL,
    purpose TEXT NOT NULL,
    secret_hash TEXT NOT NULL,
    subject TEXT,
    data JSONB NOT NULL DEFAULT '{}'::jsonb,
    browser_hash TEXT,
    -- A link intent (people): the session that asked, its person, and whether a merge was asked for.
    link JSONB,
    attempts INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER,
    -- Insertion order, to tell the newest apart when several share a timestamp.
    seq BIGINT GENERATED ALWAYS AS IDENTITY,
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    consumed_at TIMESTAMPTZ,
    superseded_at TIMESTAMPTZ,
    CONSTRAINT erebus_verifications_secret_key UNIQUE (provider, purpose, secret_hash)
);
CREATE INDEX erebus_verifications_live_idx ON erebus_verifications (provider, purpose, subject, seq)
    WHERE consumed_at IS NULL AND superseded_at IS NULL;
CREATE INDEX erebus_verifications_expires_at_idx ON erebus_verifications (expires_at);
