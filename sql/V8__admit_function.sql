-- Steps 6–8 of a decision (SPEC §2) in one round trip: the same statements
-- src/store/sessions.rs ran one by one inside a transaction, now run by the
-- server. A new session paid about eight round trips (refresh attempt, BEGIN,
-- lock, kicked check, refresh again, close, count, insert, COMMIT); on a busy
-- machine each is a scheduling delay.
--
-- Limits stay exact as before: the admissions of one user are serialised by a
-- transaction-scoped advisory lock on the login, and every statement after it
-- reads a fresh snapshot (READ COMMITTED), so it sees the sessions committed by
-- whoever held the lock before.

-- Extends the active session under this key of the same user, if there is one.
-- The row is locked before it is read so that the time watched since it was
-- last seen is counted once when two refreshes race.
CREATE FUNCTION playgate_refresh_active(p_key text, p_login text, p_hold float8, p_bytes bigint)
RETURNS TABLE (session_id uuid, watched float8)
LANGUAGE sql AS $$
    WITH previous AS (
        SELECT id, last_seen_at FROM sessions
         WHERE key = p_key AND ended_at IS NULL AND expires_at > now()
           AND login IS NOT DISTINCT FROM p_login
           FOR UPDATE)
    UPDATE sessions s
       SET last_seen_at = now(), expires_at = now() + make_interval(secs => p_hold),
           bytes = COALESCE(p_bytes, s.bytes)
      FROM previous
     WHERE s.id = previous.id
 RETURNING s.id, extract(epoch FROM now() - previous.last_seen_at)::float8
$$;

CREATE FUNCTION playgate_active_count(p_login text) RETURNS bigint
LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN p_login IS NULL THEN 0 ELSE
        (SELECT count(*) FROM sessions
          WHERE login = p_login AND ended_at IS NULL AND expires_at > now()) END
$$;

-- o_refusal: NULL when allowed, else 'kicked' (an admin kicked this key
-- recently) or 'limit' (at the limit under reject_new, or this key was ended
-- by kick_oldest recently).
CREATE FUNCTION playgate_admit(
    p_key text, p_login text, p_max_sessions integer, p_kick_oldest boolean,
    p_stream text, p_client_ip inet, p_protocol text, p_dialect text, p_streamer text,
    p_user_agent text, p_bytes bigint, p_hold float8, p_block float8)
RETURNS TABLE (o_refusal text, o_session_id uuid, o_active bigint, o_started boolean, o_watched float8)
LANGUAGE plpgsql AS $$
DECLARE
    v_id uuid;
    v_watched float8;
    v_end_reason text;
    v_active uuid[];
    v_count bigint := 0;
    v_started boolean;
BEGIN
    -- The bulk of traffic: a refresh of an active session. It never counts
    -- against its own limit, so it needs no lock.
    SELECT r.session_id, r.watched INTO v_id, v_watched
      FROM playgate_refresh_active(p_key, p_login, p_hold, p_bytes) r;
    IF v_id IS NOT NULL THEN
        RETURN QUERY SELECT NULL::text, v_id, playgate_active_count(p_login), false, v_watched;
        RETURN;
    END IF;

    IF p_login IS NOT NULL THEN
        PERFORM pg_advisory_xact_lock(28775, hashtext(p_login)); -- 0x7067, "pg"
    END IF;

    SELECT s.end_reason INTO v_end_reason FROM sessions s
     WHERE s.key = p_key AND s.blocked_until > now()
     ORDER BY s.started_at DESC LIMIT 1;
    IF FOUND THEN
        RETURN QUERY SELECT CASE WHEN v_end_reason = 'kicked' THEN 'kicked' ELSE 'limit' END,
                            NULL::uuid, playgate_active_count(p_login), false, 0::float8;
        RETURN;
    END IF;

    -- Another request with the same key may have started it while we waited for the lock.
    SELECT r.session_id, r.watched INTO v_id, v_watched
      FROM playgate_refresh_active(p_key, p_login, p_hold, p_bytes) r;
    IF v_id IS NOT NULL THEN
        RETURN QUERY SELECT NULL::text, v_id, playgate_active_count(p_login), false, v_watched;
        RETURN;
    END IF;

    -- An open row for this key that is no longer active (or belongs to another
    -- user) is closed so the key can be reused.
    UPDATE sessions s
       SET ended_at = LEAST(s.expires_at, now()),
           end_reason = CASE WHEN s.expires_at <= now() THEN 'timeout' ELSE 'stopped' END
     WHERE s.key = p_key AND s.ended_at IS NULL;

    IF p_login IS NOT NULL THEN
        SELECT COALESCE(array_agg(s.id ORDER BY s.started_at, s.id), '{}') INTO v_active
          FROM sessions s
         WHERE s.login = p_login AND s.ended_at IS NULL AND s.expires_at > now();
        v_count := cardinality(v_active);
        IF p_max_sessions IS NOT NULL AND v_count >= GREATEST(p_max_sessions, 0) THEN
            IF NOT p_kick_oldest OR p_max_sessions <= 0 THEN
                RETURN QUERY SELECT 'limit'::text, NULL::uuid, v_count, false, 0::float8;
                RETURN;
            END IF;
            -- kick_oldest: end the oldest sessions to make room for this one;
            -- their keys are refused for p_block.
            UPDATE sessions s
               SET ended_at = now(), end_reason = 'limit',
                   blocked_until = now() + make_interval(secs => p_block)
             WHERE s.id = ANY (v_active[1 : v_count + 1 - p_max_sessions]);
            v_count := p_max_sessions - 1;
        END IF;
    END IF;

    INSERT INTO sessions AS s (key, login, stream, client_ip, protocol, dialect, streamer, user_agent,
                               expires_at, bytes)
    VALUES (p_key, p_login, p_stream, p_client_ip, p_protocol, p_dialect, p_streamer, p_user_agent,
            now() + make_interval(secs => p_hold), p_bytes)
    ON CONFLICT (key) WHERE ended_at IS NULL
    DO UPDATE SET last_seen_at = now(), expires_at = EXCLUDED.expires_at
    RETURNING s.id, s.xmax = 0 INTO v_id, v_started;
    IF p_login IS NOT NULL AND v_started THEN
        v_count := v_count + 1;
    END IF;
    RETURN QUERY SELECT NULL::text, v_id, v_count, v_started, 0::float8;
END
$$;
