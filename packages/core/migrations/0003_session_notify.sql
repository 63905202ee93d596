-- Every change that can end or alter a session, however it is made (Erebus's API, the CLI, another
-- service, SQL by hand), is announced at commit on erebus_session_changed, so every instance drops
-- what its session cache holds: `s:<session id>` for a session, `u:<user id>` for a user row.
CREATE FUNCTION erebus_session_changed() RETURNS TRIGGER
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('erebus_session_changed', 's:' || OLD.id::text);
    RETURN NULL;
END
$$;

-- A sliding refresh (expires_at moved later) is no news; a revocation, a shortened life or a row
-- moved to another user or token is.
CREATE TRIGGER erebus_sessions_changed
    AFTER UPDATE ON erebus_sessions
    FOR EACH ROW
    WHEN (NEW.revoked_at IS DISTINCT FROM OLD.revoked_at
          OR NEW.expires_at < OLD.expires_at
          OR NEW.absolute_expires_at < OLD.absolute_expires_at
          OR NEW.user_id <> OLD.user_id
          OR NEW.token_hash <> OLD.token_hash)
    EXECUTE FUNCTION erebus_session_changed();

-- Deleting a row that could still be served. Pruning ended sessions says nothing: an expired row
-- is refused by every cache on its own (expiry is checked on every hit), and one notification per
-- pruned row would flood every instance.
CREATE TRIGGER erebus_sessions_deleted
    AFTER DELETE ON erebus_sessions
    FOR EACH ROW
    WHEN (OLD.revoked_at IS NULL AND OLD.expires_at > now() AND OLD.absolute_expires_at > now())
    EXECUTE FUNCTION erebus_session_changed();

-- TRUNCATE fires no row trigger: everything goes.
CREATE FUNCTION erebus_sessions_truncated() RETURNS TRIGGER
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('erebus_session_changed', '*');
    RETURN NULL;
END
$$;

CREATE TRIGGER erebus_sessions_truncated
    AFTER TRUNCATE ON erebus_sessions
    FOR EACH STATEMENT
    EXECUTE FUNCTION erebus_sessions_truncated();

CREATE FUNCTION erebus_user_changed() RETURNS TRIGGER
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('erebus_session_changed', 'u:' || OLD.id::text);
    RETURN NULL;
END
$$;

-- What a session check hands the app about its user. updated_at alone (a repeat sign-in that changed
-- nothing) is no news.
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
          OR NEW.source_identifier IS DISTINCT FROM OLD.source_identifier)
    EXECUTE FUNCTION erebus_user_changed();

CREATE TRIGGER user_references_deleted
    AFTER DELETE ON user_references
    FOR EACH ROW
    EXECUTE FUNCTION erebus_user_changed();

CREATE TRIGGER user_references_truncated
    AFTER TRUNCATE ON user_references
    FOR EACH STATEMENT
    EXECUTE FUNCTION erebus_sessions_truncated();

-- Fired also under session_replication_role = replica (pg_restore, logical replication apply): a
-- change made there must still reach the caches. The cache checks these are enabled.
ALTER TABLE erebus_sessions ENABLE ALWAYS TRIGGER erebus_sessions_changed;
ALTER TABLE erebus_sessions ENABLE ALWAYS TRIGGER erebus_sessions_deleted;
ALTER TABLE erebus_sessions ENABLE ALWAYS TRIGGER erebus_sessions_truncated;
ALTER TABLE user_references ENABLE ALWAYS TRIGGER user_references_changed;
ALTER TABLE user_references ENABLE ALWAYS TRIGGER user_references_deleted;
ALTER TABLE user_references ENABLE ALWAYS TRIGGER user_references_truncated;
