-- The seed's table, exactly: same columns, types and defaults.
CREATE TABLE user_references (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    source_identifier VARCHAR NOT NULL,
    network VARCHAR NOT NULL,
    user_type VARCHAR NOT NULL DEFAULT 'external',
    source_type JSONB NOT NULL DEFAULT '{"type": "web3_wallet", "provider": "unknown", "metadata": {}}'::jsonb,
    email VARCHAR,
    metadata JSONB DEFAULT '{}'::jsonb,
    preferences JSONB DEFAULT '{}'::jsonb,
    is_active BOOLEAN DEFAULT true,
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    -- One row per identity. Providers canonicalize source_identifier first, so exact match is right
    -- (Solana base58 is case-sensitive: never lower() it).
    CONSTRAINT user_references_network_source_identifier_key UNIQUE (network, source_identifier)
);

CREATE INDEX user_references_email_idx ON user_references (email);
CREATE INDEX user_references_user_type_idx ON user_references (user_type);
CREATE INDEX user_references_is_active_idx ON user_references (is_active);
CREATE INDEX user_references_created_at_idx ON user_references (created_at);
CREATE INDEX user_references_source_type_gin ON user_references USING GIN (source_type);
CREATE INDEX user_references_metadata_gin ON user_references USING GIN (metadata);

-- Registered source types are data: a provider adds its type with a row here, no DDL.
-- required/optional map a key of source_type to its JSON kind: string, number, integer, boolean,
-- object, array, or array:<kind> (an array whose every element has that kind).
CREATE TABLE erebus_source_types (
    type TEXT PRIMARY KEY CHECK (type ~ '^[a-z][a-z0-9_]{0,62}$'),
    required JSONB NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(required) = 'object'),
    optional JSONB NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(optional) = 'object'),
    registered_by TEXT NOT NULL DEFAULT 'core',
    updated_at TIMESTAMPTZ NOT NULL DEFAULT NOW()
);

CREATE FUNCTION erebus_json_kind_matches(value JSONB, kind TEXT) RETURNS BOOLEAN
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE
        WHEN kind LIKE 'array:%' THEN
            jsonb_typeof(value) = 'array'
            AND NOT EXISTS (
                SELECT 1 FROM jsonb_array_elements(value) AS element
                WHERE NOT erebus_json_kind_matches(element, substr(kind, 7))
            )
        WHEN kind = 'integer' THEN
            jsonb_typeof(value) = 'number' AND (value #>> '{}')::numeric = trunc((value #>> '{}')::numeric)
        ELSE jsonb_typeof(value) = kind
    END
$$;

-- Returns true for a valid source_type; raises check_violation (SQLSTATE 23514) saying what is wrong.
CREATE FUNCTION validate_source_type(st JSONB) RETURNS BOOLEAN
LANGUAGE plpgsql STABLE AS $$
DECLARE
    rule erebus_source_types%ROWTYPE;
    k TEXT;
    kind TEXT;
BEGIN
    IF st IS NULL OR jsonb_typeof(st) <> 'object' THEN
        RAISE EXCEPTION 'source_type must be a JSON object' USING ERRCODE = 'check_violation';
    END IF;
    IF jsonb_typeof(st -> 'type') IS DISTINCT FROM 'string' THEN
        RAISE EXCEPTION 'source_type.type must be a string' USING ERRCODE = 'check_violation';
    END IF;
    SELECT * INTO rule FROM erebus_source_types WHERE type = st ->> 'type';
    IF NOT FOUND THEN
        RAISE EXCEPTION 'source_type.type "%" is not registered', st ->> 'type' USING ERRCODE = 'check_violation';
    END IF;
    FOR k, kind IN SELECT key, value FROM jsonb_each_text(rule.required) LOOP
        IF NOT (st ? k) THEN
            RAISE EXCEPTION 'source_type.%: required for type "%"', k, rule.type USING ERRCODE = 'check_violation';
        END IF;
        IF NOT erebus_json_kind_matches(st -> k, kind) THEN
            RAISE EXCEPTION 'source_type.%: must be %', k, kind USING ERRCODE = 'check_violation';
        END IF;
    END LOOP;
    FOR k, kind IN SELECT key, value FROM jsonb_each_text(rule.optional) LOOP
        IF (st ? k) AND NOT erebus_json_kind_matches(st -> k, kind) THEN
            RAISE EXCEPTION 'source_type.%: must be %', k, kind USING ERRCODE = 'check_violation';
        END IF;
    END LOOP;
    RETURN TRUE;
END
$$;

CREATE FUNCTION user_references_validate() RETURNS TRIGGER
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM validate_source_type(NEW.source_type);
    IF NEW.metadata IS NOT NULL AND jsonb_typeof(NEW.metadata) <> 'object' THEN
        RAISE EXCEPTION 'metadata must be a JSON object' USING ERRCODE = 'check_violation';
    END IF;
    IF NEW.preferences IS NOT NULL AND jsonb_typeof(NEW.preferences) <> 'object' THEN
        RAISE EXCEPTION 'preferences must be a JSON object' USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER user_references_validate
    BEFORE INSERT OR UPDATE ON user_references
    FOR EACH ROW EXECUTE FUNCTION user_references_validate();

CREATE FUNCTION user_references_touch_updated_at() RETURNS TRIGGER
LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := NOW();
    RETURN NEW;
END
$$;

CREATE TRIGGER user_references_touch_updated_at
    BEFORE UPDATE ON user_references
    FOR EACH ROW EXECUTE FUNCTION user_references_touch_updated_at();
