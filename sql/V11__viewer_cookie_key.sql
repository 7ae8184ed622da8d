-- HLS and DASH viewers (SPEC §3): how a forward-auth request without
-- credentials finds the session its playlist request started.

-- The HMAC-SHA256 key of the `playgate_viewer` cookie when
-- PLAYGATE_VIEWER_COOKIE_SECRET is unset: made by the first replica to
-- start, read by every other, so that a cookie one replica set verifies on
-- all of them. One row.
CREATE TABLE viewer_cookie_key (
    id         boolean PRIMARY KEY DEFAULT true CHECK (id),
    secret     bytea NOT NULL CHECK (length(secret) >= 32),
    created_at timestamptz NOT NULL DEFAULT now()
);

-- What binds a session to its player: the player's X-Playback-Session-Id
-- sent with the playlist, and whether the viewer cookie came back. A bound
-- session is never continued by stream, client IP and user agent alone, so
-- a neighbour behind the same NAT with the same player cannot ride on it.
ALTER TABLE sessions
    ADD COLUMN playback_id text,
    ADD COLUMN cookie_seen boolean NOT NULL DEFAULT false;

-- sessions::find_active_by_playback_id: the open session of one stream
-- with this playback session id.
CREATE INDEX sessions_open_playback_idx ON sessions (stream, playback_id)
    WHERE ended_at IS NULL AND playback_id IS NOT NULL;

-- A session bound to its player is announced on the channel of V6, whose
-- meaning is "forget what you remember of this session": every replica then
-- decides its next request by the database, which knows the binding (a
-- replica's memory may otherwise still continue it by client IP).
CREATE FUNCTION playgate_session_bound() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('playgate_session_ended', NEW.id::text);
    RETURN NULL;
END
$$;

CREATE TRIGGER sessions_bound AFTER UPDATE OF playback_id, cookie_seen ON sessions
    FOR EACH ROW WHEN (OLD.playback_id IS DISTINCT FROM NEW.playback_id
                       OR OLD.cookie_seen IS DISTINCT FROM NEW.cookie_seen)
    EXECUTE FUNCTION playgate_session_bound();
