-- Trigram indexes for the admin API's searches (issue 22): the users
-- list's `?q=` (a substring of the login or comment, any case) and the
-- session history's (of the login, stream or client address). At 100 000
-- users or ended sessions a scan took 45–90 ms a query, twice per page.
-- The history's index is on one text of the three fields, the expression
-- src/store/sessions.rs searches (SEARCH_TEXT: \x01 between them, which
-- the admin API refuses in a search, so no match spans two fields). Live
-- sessions get no such index, so that an admission writes no more than
-- before: their search scans the live rows alone. New daily partitions of
-- the history inherit the index.
--
-- pg_trgm ships with PostgreSQL (contrib) and is a trusted extension, so
-- the database's owner may create it. Where it cannot be created (contrib
-- not installed, no CREATE privilege, or installed in a schema off the
-- search path), the searches still work, by scans.
DO $$
BEGIN
    CREATE EXTENSION IF NOT EXISTS pg_trgm;
    CREATE INDEX users_login_trgm_idx ON users USING gin (login gin_trgm_ops);
    CREATE INDEX users_comment_trgm_idx ON users USING gin (comment gin_trgm_ops);
    CREATE INDEX session_history_search_idx ON session_history
        USING gin ((lower(login) || E'\x01' || lower(stream) || E'\x01' || host(client_ip)) gin_trgm_ops);
EXCEPTION WHEN OTHERS THEN
    RAISE NOTICE 'no trigram indexes (%): the admin searches scan their tables', SQLERRM;
END
$$;
