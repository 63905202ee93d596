-- People: a person is the set of identities (rows) sharing a person_id. A new identity is its own
-- person (person_id = id), filled in by the database when an INSERT does not name it, so the seed's
-- own SQL keeps working. Existing rows become persons of their own, in place.
ALTER TABLE user_references ADD COLUMN person_id UUID;
UPDATE user_references SET person_id = id WHERE person_id IS NULL;
ALTER TABLE user_references ALTER COLUMN person_id SET NOT NULL;
CREATE INDEX user_references_person_id_idx ON user_references (person_id);

CREATE FUNCTION user_references_default_person() RETURNS TRIGGER
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.person_id IS NULL THEN
        NEW.person_id := NEW.id;
    END IF;
    RETURN NEW;
END
$$;
-- NOT NULL is checked after BEFORE triggers, so an INSERT without person_id gets its own id.
CREATE TRIGGER user_references_default_person
    BEFORE INSERT ON user_references
    FOR EACH ROW EXECUTE FUNCTION user_references_default_person();
ALTER TABLE user_references ENABLE ALWAYS TRIGGER user_references_default_person;

-- A person moved (link, merge, unlink) is news to every instance's session cache, like the other columns.
DROP TRIGGER user_references_changed ON user_references;
CREATE TRIGGER user_references_changed
    AFTER UPDATE ON user_references
    FOR EACH ROW
    WHEN (NEW.is_active IS DISTINCT FROM OLD.is_active
          OR NEW.email IS DISTINCT FROM OLD.email
          OR NEW.source_type IS DISTINCT FROM OLD.source_type
          OR NEW.metadata IS DISTINCT FROM OLD.metadata
          OR NEW.preferences IS DISTINCT FROM OLD.preferences
          OR NEW.user_type IS DISTINCT FROM OLD.user_type
          OR NEW.network IS DISTINCT FROM OLD.network
          OR NEW.source_identifier IS DISTINCT FROM OLD.source_identifier
          OR NEW.person_id IS DISTINCT FROM OLD.person_id)
    EXECUTE FUNCTION erebus_user_changed();
ALTER TABLE user_references ENABLE ALWAYS TRIGGER user_references_changed;

-- When the session last proved a credential (sign-in, or a re-proof with any identity of the person):
-- link, unlink, merge and other sensitive actions need it recent.
ALTER TABLE erebus_sessions ADD COLUMN authenticated_at TIMESTAMPTZ;
UPDATE erebus_sessions SET authenticated_at = created_at WHERE authenticated_at IS NULL;
ALTER TABLE erebus_sessions ALTER COLUMN authenticated_at SET NOT NULL;

DROP TRIGGER erebus_sessions_changed ON erebus_sessions;
CREATE TRIGGER erebus_sessions_changed
    AFTER UPDATE ON erebus_sessions
    FOR EACH ROW
    WHEN (NEW.revoked_at IS DISTINCT FROM OLD.revoked_at
          OR NEW.expires_at < OLD.expires_at
          OR NEW.absolute_expires_at < OLD.absolute_expires_at
          OR NEW.user_id <> OLD.user_id
          OR NEW.token_hash <> OLD.token_hash
          OR NEW.authenticated_at IS DISTINCT FROM OLD.authenticated_at)
    EXECUTE FUNCTION erebus_session_changed();
ALTER TABLE erebus_sessions ENABLE ALWAYS TRIGGER erebus_sessions_changed;
