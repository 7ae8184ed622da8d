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

-- o_refusal: NULL when allowed, else 'kicked' (an admin kicked this key
-- recently) or 'limit' (at the limit under reject_new, or this key was ended
-- by kick_oldest recently). PL/pgSQL rather than SQL functions: its
-- statements' plans are kept for the connection, not planned on every call.
CREATE FUNCTION playgate_admit(
    p_key text, p_login text, p_max_sessions integer, p_kick_oldest boolean,
    p_stream text, p_client_ip inet, p_protocol text, p_dialect text, p_streamer text,
    p_user_agent text, p_bytes bigint, p_hold float8, p_block float8)
RETURNS TABLE (o_refusal text, o_session_id uuid, o_active bigint, o_started boolean, o_watched float8)
LANGUAGE plpgsql AS $$
DECLARE
    v_id uuid;
    v_last_seen timestamptz;
    v_refreshable boolean;
    v_end_reason text;
    v_active uuid[];
    v_count bigint := 0;
    v_started boolean;
BEGIN
    FOR attempt IN 1..2 LOOP
        -- The open row under this key, locked so that the time watched since
        -- it was last seen is counted once when two refreshes race.
        SELECT s.id, s.last_seen_at, s.expires_at > now() AND s.login IS NOT DISTINCT FROM p_login
          INTO v_id, v_last_seen, v_refreshable
          FROM sessions s
         WHERE s.key = p_key AND s.ended_at IS NULL
           FOR UPDATE;
        -- A refresh of an active session of the same user (the bulk of
        -- traffic) never counts against its own limit: no lock needed.
        IF v_refreshable THEN
            UPDATE sessions s
               SET last_seen_at = now(), expires_at = now() + make_interval(secs => p_hold),
                   bytes = COALESCE(p_bytes, s.bytes)
             WHERE s.id = v_id;
            IF p_login IS NOT NULL THEN
                SELECT count(*) INTO v_count FROM sessions s
                 WHERE s.login = p_login AND s.ended_at IS NULL AND s.expires_at > now();
            END IF;
            RETURN QUERY SELECT NULL::text, v_id, v_count, false,
                                extract(epoch FROM now() - v_last_seen)::float8;
            RETURN;
        END IF;
        EXIT WHEN attempt = 2;

        -- A new session: serialise with the user's other admissions, then
        -- look again (another request with this key may have started it
        -- while we waited; each statement reads a fresh snapshot).
        IF p_login IS NOT NULL THEN
            PERFORM pg_advisory_xact_lock(28775, hashtext(p_login)); -- 0x7067, "pg"
        END IF;
        SELECT s.end_reason INTO v_end_reason FROM sessions s
         WHERE s.key = p_key AND s.blocked_until > now()
         ORDER BY s.started_at DESC LIMIT 1;
        IF FOUND THEN
            IF p_login IS NOT NULL THEN
                SELECT count(*) INTO v_count FROM sessions s
                 WHERE s.login = p_login AND s.ended_at IS NULL AND s.expires_at > now();
            END IF;
            RETURN QUERY SELECT CASE WHEN v_end_reason = 'kicked' THEN 'kicked' ELSE 'limit' END,
                                NULL::uuid, v_count, false, 0::float8;
            RETURN;
        END IF;
    END LOOP;

    -- An open row for this key that is no longer active (or belongs to
    -- another user) is closed so the key can be reused.
    IF v_id IS NOT NULL THEN
        UPDATE sessions s
           SET ended_at = LEAST(s.expires_at, now()),
               end_reason = CASE WHEN s.expires_at <= now() THEN 'timeout' ELSE 'stopped' END
         WHERE s.id = v_id;
    END IF;

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
    -- Two anonymous starts with one key take no lock: the second refreshes.
    ON CONFLICT (key) WHERE ended_at IS NULL
    DO UPDATE SET last_seen_at = now(), expires_at = EXCLUDED.expires_at
    RETURNING s.id, s.xmax = 0 INTO v_id, v_started;
    IF p_login IS NOT NULL AND v_started THEN
        v_count := v_count + 1;
    END IF;
    RETURN QUERY SELECT NULL::text, v_id, v_count, v_started, 0::float8;
END
$$;
