-- Sessions: the token is 256 random bits, sent to the client once; only its SHA-256 is stored.
CREATE TABLE erebus_sessions (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    token_hash TEXT NOT NULL UNIQUE,
    user_id UUID NOT NULL REFERENCES user_references (id) ON DELETE CASCADE,
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    -- Sliding refresh never extends a session past this.
    absolute_expires_at TIMESTAMPTZ NOT NULL,
    revoked_at TIMESTAMPTZ,
    user_agent TEXT,
    ip TEXT
);
CREATE INDEX erebus_sessions_user_id_idx ON erebus_sessions (user_id);
CREATE INDEX erebus_sessions_expires_at_idx ON erebus_sessions (expires_at);

-- rate-limiter-flexible's RateLimiterPostgres table (its own layout), shared by every app instance.
CREATE TABLE erebus_rate_limits (
    key VARCHAR(255) PRIMARY KEY,
    points INTEGER NOT NULL DEFAULT 0,
    expire BIGINT
);
CREATE INDEX erebus_rate_limits_expire_idx ON erebus_rate_limits (expire);
