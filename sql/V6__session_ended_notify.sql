-- Replicas answer refreshes of the sessions they know from memory
-- (src/decision/live.rs); a session ended anywhere (kicked, stopped, timed
-- out, ended by a limit) is announced so that every replica forgets it at
-- once and sends that viewer's next refresh to the database.
CREATE FUNCTION playgate_session_ended() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('playgate_session_ended', NEW.id::text);
    RETURN NULL;
END
$$;

CREATE TRIGGER sessions_ended AFTER UPDATE OF ended_at ON sessions
    FOR EACH ROW WHEN (OLD.ended_at IS NULL AND NEW.ended_at IS NOT NULL)
    EXECUTE FUNCTION playgate_session_ended();
