-- Playback tokens are not API credentials (issue 15): a token's scope is
-- `play` (playback only) or `api` (also an admin-API Bearer credential of an
-- observer or admin). Which existing tokens were used as Bearer credentials
-- cannot be told from the database, so every existing token becomes `play`;
-- an admin who scripts the API creates an `api` token after the upgrade.
ALTER TABLE tokens
    ADD COLUMN scope text NOT NULL DEFAULT 'play'
        CONSTRAINT tokens_scope_check CHECK (scope IN ('play', 'api'));

-- A web-interface session ends when its user's password changes, or the user
-- is disabled or changes kind (demoted or promoted): whoever signed in then
-- no longer holds what they signed in with. In the database, so that every
-- way of changing a user (API, import, import-astra, SQL) ends them.
CREATE FUNCTION playgate_end_ui_sessions() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM ui_sessions WHERE user_id = NEW.id;
    RETURN NULL;
END;
$$;

CREATE TRIGGER users_end_ui_sessions
    AFTER UPDATE OF password_hash, kind, enabled ON users
    FOR EACH ROW
    WHEN (OLD.password_hash IS DISTINCT FROM NEW.password_hash
          OR OLD.kind IS DISTINCT FROM NEW.kind
          OR (OLD.enabled AND NOT NEW.enabled))
    EXECUTE FUNCTION playgate_end_ui_sessions();
