-- Admissions are planned for the table they find (issue 16, flash crowd).
--
-- PL/pgSQL caches a plan per connection. Planned while `sessions` was
-- empty, every index of it costs the same, and the lookups of
-- `playgate_admit_batch` (the open row of a key, a user's open rows) got
-- `sessions_open_viewer_idx` scanned whole with a filter: once the table had
-- grown, a batch of 64 took over a second (100 000 rows, measured), until
-- autovacuum's first ANALYZE replaced the plans. On a fresh database that is
-- the first minute of a flash crowd, which answered `db_unavailable`.
--
-- So while the statistics know of fewer than 10 000 rows (never analyzed:
-- -1), each call plans for the table as it is (a custom plan sees its
-- current size); past that, plans are cached again, made with statistics
-- of a table that size. Planning on every call always would cost about a
-- quarter of the admissions a second (measured with scripts/bench).
ALTER FUNCTION playgate_admit_batch(text[], text[], integer[], boolean[], text[], inet[], text[],
                                    text[], text[], text[], bigint[], double precision[],
                                    double precision[], boolean)
    RENAME TO playgate_admit_batch_decide;

CREATE FUNCTION playgate_admit_batch(
    p_keys text[], p_logins text[], p_max_sessions integer[], p_kick_oldest boolean[],
    p_streams text[], p_client_ips inet[], p_protocols text[], p_dialects text[], p_streamers text[],
    p_user_agents text[], p_bytes bigint[], p_holds float8[], p_blocks float8[], p_synchronous boolean)
RETURNS TABLE (o_ord integer, o_refusal text, o_session_id uuid, o_active bigint, o_started boolean,
               o_watched float8)
LANGUAGE plpgsql AS $$
BEGIN
    IF (SELECT c.reltuples FROM pg_class c WHERE c.oid = 'sessions'::regclass) < 10000 THEN
        -- For this transaction (the batch's statement): playgate_admit too.
        PERFORM set_config('plan_cache_mode', 'force_custom_plan', true);
    END IF;
    RETURN QUERY SELECT * FROM playgate_admit_batch_decide(
        p_keys, p_logins, p_max_sessions, p_kick_oldest, p_streams, p_client_ips, p_protocols,
        p_dialects, p_streamers, p_user_agents, p_bytes, p_holds, p_blocks, p_synchronous);
END
$$;
