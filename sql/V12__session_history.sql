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
--    flush (PLAYGATE_SESSION_COMMIT=async).

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

-- Admissions grouped: the admissions a replica has waiting run in one
-- round trip and one commit (src/decision/admission_batch.rs), each
-- through the V8 function, so limits stay exact exactly as before. They run
-- in the order of their users' advisory locks (anonymous ones first: they
-- take none), so two batches that share users never wait for each other in
-- a cycle; a user's lock is held until the batch commits. o_ord is the
-- position of the admission in the arrays (1-based).
--
-- p_synchronous false: the batch commits without waiting for its WAL to
-- reach the disk (synchronous_commit = off for this transaction only). A
-- PostgreSQL crash can lose the admissions of its last moments; see
-- docs/performance.md. The V8 function stays as it is, so replicas of the
-- previous release keep working during a rolling upgrade.
CREATE FUNCTION playgate_admit_batch(
    p_keys text[], p_logins text[], p_max_sessions integer[], p_kick_oldest boolean[],
    p_streams text[], p_client_ips inet[], p_protocols text[], p_dialects text[], p_streamers text[],
    p_user_agents text[], p_bytes bigint[], p_holds float8[], p_blocks float8[], p_synchronous boolean)
RETURNS TABLE (o_ord integer, o_refusal text, o_session_id uuid, o_active bigint, o_started boolean,
               o_watched float8)
LANGUAGE plpgsql AS $$
DECLARE
    v_ord integer;
BEGIN
    IF NOT p_synchronous THEN
        PERFORM set_config('synchronous_commit', 'off', true);
    END IF;
    FOR v_ord IN
        SELECT i FROM generate_subscripts(p_keys, 1) AS i
         ORDER BY hashtext(p_logins[i]) NULLS FIRST, p_keys[i], i
    LOOP
        RETURN QUERY SELECT v_ord, a.* FROM playgate_admit(
            p_keys[v_ord], p_logins[v_ord], p_max_sessions[v_ord], p_kick_oldest[v_ord],
            p_streams[v_ord], p_client_ips[v_ord], p_protocols[v_ord], p_dialects[v_ord],
            p_streamers[v_ord], p_user_agents[v_ord], p_bytes[v_ord], p_holds[v_ord],
            p_blocks[v_ord]) AS a;
    END LOOP;
END
$$;
