-- Admissions plan their statements on every call (issue 16, flash crowd).
--
-- PL/pgSQL caches a plan per connection. Planned while `sessions` was
-- empty, every index of it costs the same, and the lookups of
-- `playgate_admit_batch` (the open row of a key, a user's open rows) got
-- `sessions_open_viewer_idx` scanned whole with a filter: once the table had
-- grown, a batch of 64 took over a second (100 000 rows, measured), until
-- autovacuum's first ANALYZE replaced the plans. On a fresh database that is
-- the first minute of a flash crowd, which answered `db_unavailable`. A
-- plan made for each call sees the table as it is; planning costs far less
-- than one of those scans.
ALTER FUNCTION playgate_admit_batch(text[], text[], integer[], boolean[], text[], inet[], text[],
                                    text[], text[], text[], bigint[], double precision[],
                                    double precision[], boolean)
    SET plan_cache_mode = force_custom_plan;
ALTER FUNCTION playgate_admit(text, text, integer, boolean, text, inet, text, text, text, text,
                              bigint, double precision, double precision)
    SET plan_cache_mode = force_custom_plan;
