-- Sustained load (issue 16): the active table stays small and cheap to write.
--
-- 1. Ended sessions move out of `sessions` into `session_history`, a table
--    partitioned by day of `ended_at`: the sweeper moves them (a session
--    whose key is still refused, `blocked_until` in the future, stays until
--    then), and PLAYGATE_HISTORY_DAYS purges by dropping whole partitions.
--    Years of history no longer share pages and indexes with the sessions
--    every admission reads and writes.
-- 2. `sessions` keeps the indexes its hot statements use, and none on a
--    column a heartbeat changes, so heartbeats are HOT updates (no index
--    write) in pages left room for them (fillfactor).
-- 3. Admissions are grouped into one round trip and one commit
--    (`playgate_admit_batch`), which may commit without waiting for the WAL
--    flush (PLAYGATE_SESSION_COMMIT=async); `playgate_admit` does less
--    for a new session.

CREATE TABLE session_history (
    id            uuid NOT NULL,
    key           text NOT NULL,
    login         text,
    stream        text NOT NULL,
    client_ip     inet NOT NULL,
    protocol      text NOT NULL DEFAULT '',
    dialect       text NOT NULL DEFAULT '',
    streamer      text NOT NULL DEFAULT '',
    user_agent    text NOT NULL DEFAULT '',
    started_at    timestamptz NOT NULL,
    last_seen_at  timestamptz NOT NULL,
    expires_at    timestamptz NOT NULL,
    ended_at      timestamptz NOT NULL,
    end_reason    text,
    bytes         bigint,
    blocked_until timestamptz,
    playback_id   text,
    cookie_seen   boolean NOT NULL DEFAULT false
) PARTITION BY RANGE (ended_at);
-- Rows outside every daily partition (a clock far off, a day the sweeper
-- did not prepare) land here rather than fail the move.
CREATE TABLE session_history_default PARTITION OF session_history DEFAULT;
-- Statistics windows and the newest-first history list (ended_at), a
-- user's statistics (login), the admin API's GET by id.
CREATE INDEX session_history_ended_idx ON session_history (ended_at);
CREATE INDEX session_history_login_idx ON session_history (login, started_at);
CREATE INDEX session_history_id_idx ON session_history (id);

-- Creates the daily partitions (UTC days) from p_from to p_to that do not
-- exist yet; rows of those days already in the default partition move into
-- their new partition. Returns how many were created.
CREATE FUNCTION playgate_history_partitions(p_from date, p_to date) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    v_day date;
    v_name text;
    v_low timestamptz;
    v_high timestamptz;
    v_made integer := 0;
BEGIN
    FOR v_day IN SELECT generate_series(p_from, p_to, interval '1 day')::date LOOP
        v_name := 'session_history_' || to_char(v_day, 'YYYYMMDD');
        CONTINUE WHEN to_regclass(v_name) IS NOT NULL;
        v_low := v_day::timestamp AT TIME ZONE 'UTC';
        v_high := (v_day + 1)::timestamp AT TIME ZONE 'UTC';
        EXECUTE format('CREATE TABLE %I (LIKE session_history INCLUDING DEFAULTS)', v_name);
        EXECUTE format(
            'WITH moved AS (DELETE FROM session_history_default WHERE ended_at >= %L AND ended_at < %L RETURNING *)
             INSERT INTO %I SELECT * FROM moved', v_low, v_high, v_name);
        EXECUTE format('ALTER TABLE session_history ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
                       v_name, v_low, v_high);
        v_made := v_made + 1;
    END LOOP;
    RETURN v_made;
END
$$;

-- Drops the daily partitions that end at or before p_before and deletes the
-- default partition's rows older than it. Returns the partitions dropped.
CREATE FUNCTION playgate_purge_history(p_before timestamptz) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    v_name text;
    v_dropped integer := 0;
BEGIN
    FOR v_name IN
        SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
         WHERE i.inhparent = 'session_history'::regclass
           AND c.relname ~ '^session_history_[0-9]{8}$'
           AND (to_date(substr(c.relname, 17), 'YYYYMMDD') + 1)::timestamp AT TIME ZONE 'UTC' <= p_before
    LOOP
        EXECUTE format('DROP TABLE %I', v_name);
        v_dropped := v_dropped + 1;
    END LOOP;
    DELETE FROM session_history_default WHERE ended_at < p_before;
    RETURN v_dropped;
END
$$;

-- Every session, active or ended, wherever it lives now: what the
-- statistics, the history list and GET by id read.
CREATE VIEW session_log AS
    SELECT id, key, login, stream, client_ip, protocol, dialect, streamer, user_agent, started_at,
           last_seen_at, expires_at, ended_at, end_reason, bytes, blocked_until, playback_id, cookie_seen
      FROM sessions
    UNION ALL
    SELECT id, key, login, stream, client_ip, protocol, dialect, streamer, user_agent, started_at,
           last_seen_at, expires_at, ended_at, end_reason, bytes, blocked_until, playback_id, cookie_seen
      FROM session_history;

-- Today's history, and the days it already holds, move now.
SELECT playgate_history_partitions(
    LEAST((SELECT min(ended_at) AT TIME ZONE 'UTC' FROM sessions)::date, (now() AT TIME ZONE 'UTC')::date),
    (now() AT TIME ZONE 'UTC')::date + 2);
WITH moved AS (
    DELETE FROM sessions
     WHERE ended_at IS NOT NULL AND (blocked_until IS NULL OR blocked_until <= now())
 RETURNING id, key, login, stream, client_ip, protocol, dialect, streamer, user_agent, started_at,
           last_seen_at, expires_at, ended_at, end_reason, bytes, blocked_until, playback_id, cookie_seen)
INSERT INTO session_history
    SELECT * FROM moved;

-- What `sessions` is searched by now: the open row of a key (unique), a
-- user's open rows (limits), the open rows of a stream by viewer (HLS
-- segments; also the stream filter of the list), by playback id, and the
-- few keys still refused. Everything else read ended rows, which live in
-- session_history now, or moved with every heartbeat (expires_at: the
-- sweeper scans the small table instead).
DROP INDEX sessions_key_recent_idx;
DROP INDEX sessions_open_stream_idx;
DROP INDEX sessions_open_expiry_idx;
DROP INDEX sessions_ended_idx;
DROP INDEX sessions_started_idx;
DROP INDEX sessions_login_started_idx;
CREATE INDEX sessions_blocked_key_idx ON sessions (key) WHERE blocked_until IS NOT NULL;

-- Room in each page for the new versions of its rows, so a heartbeat is a
-- HOT update; the table is rewritten by inserts and deletes all day, so
-- vacuum it long before the default 20 % of dead rows.
ALTER TABLE sessions SET (
    fillfactor = 70,
    autovacuum_vacuum_scale_factor = 0.02,
    autovacuum_vacuum_insert_scale_factor = 0.02,
    autovacuum_analyze_scale_factor = 0.05,
    autovacuum_vacuum_cost_delay = 1
);

-- playgate_admit, leaner for a new session (same arguments, same answers):
-- V8 looked up the key's open row again after taking the user's lock, in
-- case another request with this key had started it meanwhile, and listed
-- every active session of the user to count them. Now the count leaves
-- this key out (a row of this key started meanwhile is this viewer's own
-- slot, never counted against it) and the insert turns into a refresh of
-- such a row (ON CONFLICT, same user only); the ids are read only when
-- kick_oldest has sessions to end. One index probe and an array fewer per
-- admission, inside a batch that repeats them for every admission.
CREATE OR REPLACE FUNCTION playgate_admit(
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
    v_others bigint := 0;
    v_started boolean;
BEGIN
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
            SELECT count(*) INTO v_others FROM sessions s
             WHERE s.login = p_login AND s.ended_at IS NULL AND s.expires_at > now();
        END IF;
        RETURN QUERY SELECT NULL::text, v_id, v_others, false,
                            extract(epoch FROM now() - v_last_seen)::float8;
        RETURN;
    END IF;

    -- A new session: serialise with the user's other admissions; every
    -- statement after the lock reads a fresh snapshot (READ COMMITTED).
    IF p_login IS NOT NULL THEN
        PERFORM pg_advisory_xact_lock(28775, hashtext(p_login)); -- 0x7067, "pg"
    END IF;
    SELECT s.end_reason INTO v_end_reason FROM sessions s
     WHERE s.key = p_key AND s.blocked_until > now()
     ORDER BY s.started_at DESC LIMIT 1;
    IF FOUND THEN
        IF p_login IS NOT NULL THEN
            SELECT count(*) INTO v_others FROM sessions s
             WHERE s.login = p_login AND s.ended_at IS NULL AND s.expires_at > now();
        END IF;
        RETURN QUERY SELECT CASE WHEN v_end_reason = 'kicked' THEN 'kicked' ELSE 'limit' END,
                            NULL::uuid, v_others, false, 0::float8;
        RETURN;
    END IF;

    -- An open row for this key that is no longer active (or belongs to
    -- another user) is closed so the key can be reused.
    IF v_id IS NOT NULL THEN
        UPDATE sessions s
           SET ended_at = LEAST(s.expires_at, now()),
               end_reason = CASE WHEN s.expires_at <= now() THEN 'timeout' ELSE 'stopped' END
         WHERE s.id = v_id;
    END IF;

    IF p_login IS NOT NULL THEN
        SELECT count(*) INTO v_others FROM sessions s
         WHERE s.login = p_login AND s.ended_at IS NULL AND s.expires_at > now() AND s.key <> p_key;
        IF p_max_sessions IS NOT NULL AND v_others >= GREATEST(p_max_sessions, 0) THEN
            IF NOT p_kick_oldest OR p_max_sessions <= 0 THEN
                RETURN QUERY SELECT 'limit'::text, NULL::uuid, v_others, false, 0::float8;
                RETURN;
            END IF;
            -- kick_oldest: end the oldest sessions to make room for this one;
            -- their keys are refused for p_block.
            UPDATE sessions s
               SET ended_at = now(), end_reason = 'limit',
                   blocked_until = now() + make_interval(secs => p_block)
             WHERE s.id IN (SELECT o.id FROM sessions o
                             WHERE o.login = p_login AND o.ended_at IS NULL AND o.expires_at > now()
                               AND o.key <> p_key
                             ORDER BY o.started_at, o.id
                             LIMIT v_others + 1 - p_max_sessions);
            v_others := p_max_sessions - 1;
        END IF;
    END IF;

    -- started_at from the clock: the admissions of one batch share a
    -- transaction, and kick_oldest orders by it.
    INSERT INTO sessions AS s (key, login, stream, client_ip, protocol, dialect, streamer, user_agent,
                               started_at, last_seen_at, expires_at, bytes)
    VALUES (p_key, p_login, p_stream, p_client_ip, p_protocol, p_dialect, p_streamer, p_user_agent,
            clock_timestamp(), clock_timestamp(), now() + make_interval(secs => p_hold), p_bytes)
    -- Started meanwhile by another request with this key (the same viewer,
    -- or two anonymous starts, which take no lock): a refresh of it.
    ON CONFLICT (key) WHERE ended_at IS NULL
    DO UPDATE SET last_seen_at = now(), expires_at = EXCLUDED.expires_at,
                  bytes = COALESCE(EXCLUDED.bytes, s.bytes)
         WHERE s.login IS NOT DISTINCT FROM EXCLUDED.login
    RETURNING s.id, s.xmax = 0 INTO v_id, v_started;
    IF v_id IS NULL THEN
        -- Started meanwhile under this key by someone else: theirs ends, as
        -- a stale row of the key does above.
        UPDATE sessions s SET ended_at = now(), end_reason = 'stopped'
         WHERE s.key = p_key AND s.ended_at IS NULL;
        INSERT INTO sessions AS s (key, login, stream, client_ip, protocol, dialect, streamer,
                                   user_agent, started_at, last_seen_at, expires_at, bytes)
        VALUES (p_key, p_login, p_stream, p_client_ip, p_protocol, p_dialect, p_streamer,
                p_user_agent, clock_timestamp(), clock_timestamp(),
                now() + make_interval(secs => p_hold), p_bytes)
        RETURNING s.id, true INTO v_id, v_started;
    END IF;
    RETURN QUERY SELECT NULL::text, v_id, CASE WHEN p_login IS NULL THEN 0 ELSE v_others + 1 END,
                        v_started, 0::float8;
END
$$;

-- Admissions grouped: the admissions a replica has waiting run in one
-- round trip and one commit (src/decision/admission_batch.rs). o_ord is the
-- position of the admission in the arrays (1-based).
--
-- First every user's advisory lock is taken, in lock order, so two batches
-- that share users never wait for each other in a cycle, and from then on
-- no other admission of those users can run until this batch commits: the
-- counts below are exact, as one admission at a time under the same lock
-- was. Then the common case is decided in one statement for the whole batch:
-- a new key (no open row, not refused, not seen earlier in the batch) is
-- admitted while its user's active sessions plus the batch's earlier
-- admissions of that user stay within the limit, and refused `limit` past
-- it under reject_new. Everything else (a refresh that reached the
-- database, a stale or refused key, kick_oldest past the limit, a key
-- started meanwhile by an anonymous viewer) goes through playgate_admit
-- one by one, which sees what the batch already wrote.
--
-- p_synchronous false: the batch commits without waiting for its WAL to
-- reach the disk (synchronous_commit = off for this transaction only). A
-- PostgreSQL crash can lose the admissions of its last moments; see
-- docs/performance.md. The V8 function keeps its arguments and answers, so
-- replicas of the previous release keep working during a rolling upgrade.
CREATE FUNCTION playgate_admit_batch(
    p_keys text[], p_logins text[], p_max_sessions integer[], p_kick_oldest boolean[],
    p_streams text[], p_client_ips inet[], p_protocols text[], p_dialects text[], p_streamers text[],
    p_user_agents text[], p_bytes bigint[], p_holds float8[], p_blocks float8[], p_synchronous boolean)
RETURNS TABLE (o_ord integer, o_refusal text, o_session_id uuid, o_active bigint, o_started boolean,
               o_watched float8)
LANGUAGE plpgsql AS $$
DECLARE
    v_ord integer;
    v_done integer[];
    v_refusals text[];
    v_ids uuid[];
    v_actives bigint[];
    v_started boolean[];
BEGIN
    IF NOT p_synchronous THEN
        PERFORM set_config('synchronous_commit', 'off', true);
    END IF;
    PERFORM pg_advisory_xact_lock(28775, lock_key) -- the lock playgate_admit takes
       FROM (SELECT DISTINCT hashtext(login) AS lock_key
               FROM unnest(p_logins) AS login
              WHERE login IS NOT NULL
              ORDER BY 1) AS locks;

    WITH item AS (
        SELECT i AS ord, p_keys[i] AS key, p_logins[i] AS login, p_max_sessions[i] AS max_sessions,
               p_kick_oldest[i] AS kick_oldest
          FROM generate_subscripts(p_keys, 1) AS i
    ),
    fresh AS (
        SELECT item.*,
               CASE WHEN item.login IS NULL THEN 0 ELSE
                   (SELECT count(*) FROM sessions s
                     WHERE s.login = item.login AND s.ended_at IS NULL AND s.expires_at > now())
               END AS active,
               row_number() OVER (PARTITION BY item.login ORDER BY item.ord) AS nth
          FROM item
         -- Scalar subqueries, not NOT EXISTS: the planner would make those
         -- anti-joins and, not knowing the batch is small, scan sessions.
         WHERE (SELECT 1 FROM sessions s WHERE s.key = item.key AND s.ended_at IS NULL LIMIT 1) IS NULL
           AND (SELECT 1 FROM sessions s WHERE s.key = item.key AND s.blocked_until > now() LIMIT 1) IS NULL
           AND (SELECT 1 FROM item earlier WHERE earlier.key = item.key AND earlier.ord < item.ord LIMIT 1) IS NULL
    ),
    verdict AS (
        SELECT fresh.*,
               fresh.login IS NULL OR fresh.max_sessions IS NULL
                   OR fresh.active + fresh.nth <= fresh.max_sessions AS admit,
               fresh.login IS NOT NULL AND fresh.max_sessions IS NOT NULL
                   AND fresh.active + fresh.nth > fresh.max_sessions
                   AND (NOT fresh.kick_oldest OR fresh.max_sessions <= 0) AS refuse
          FROM fresh
    ),
    inserted AS (
        -- started_at from the clock, in batch order: sessions started in
        -- one transaction would all share now(), and kick_oldest could not
        -- tell which is the oldest.
        INSERT INTO sessions AS s (key, login, stream, client_ip, protocol, dialect, streamer,
                                   user_agent, started_at, last_seen_at, expires_at, bytes)
        SELECT v.key, v.login, p_streams[v.ord], p_client_ips[v.ord], p_protocols[v.ord],
               p_dialects[v.ord], p_streamers[v.ord], p_user_agents[v.ord], clock_timestamp(),
               clock_timestamp(), now() + make_interval(secs => p_holds[v.ord]), p_bytes[v.ord]
          FROM verdict v WHERE v.admit ORDER BY v.ord
        -- Started since the look above by an anonymous viewer (no lock):
        -- decided one by one below.
        ON CONFLICT (key) WHERE ended_at IS NULL DO NOTHING
        RETURNING s.id, s.key
    ),
    answer AS (
        SELECT v.ord, NULL::text AS refusal, i.id AS session_id,
               CASE WHEN v.login IS NULL THEN 0 ELSE v.active + v.nth END AS active, true AS started
          FROM verdict v JOIN inserted i ON i.key = v.key
        UNION ALL
        SELECT v.ord, 'limit', NULL, GREATEST(v.active, v.max_sessions), false
          FROM verdict v WHERE v.refuse
    )
    SELECT array_agg(a.ord), array_agg(a.refusal), array_agg(a.session_id), array_agg(a.active),
           array_agg(a.started)
      INTO v_done, v_refusals, v_ids, v_actives, v_started
      FROM answer a;
    RETURN QUERY SELECT a.ord, a.refusal, a.session_id, a.active, a.started, 0::float8
                   FROM unnest(v_done, v_refusals, v_ids, v_actives, v_started)
                        AS a(ord, refusal, session_id, active, started);
    FOR v_ord IN
        SELECT i FROM generate_subscripts(p_keys, 1) AS i
         WHERE NOT (i = ANY (COALESCE(v_done, '{}'))) ORDER BY i
    LOOP
        RETURN QUERY SELECT v_ord, a.* FROM playgate_admit(
            p_keys[v_ord], p_logins[v_ord], p_max_sessions[v_ord], p_kick_oldest[v_ord],
            p_streams[v_ord], p_client_ips[v_ord], p_protocols[v_ord], p_dialects[v_ord],
            p_streamers[v_ord], p_user_agents[v_ord], p_bytes[v_ord], p_holds[v_ord],
            p_blocks[v_ord]) AS a;
    END LOOP;
END
$$;
