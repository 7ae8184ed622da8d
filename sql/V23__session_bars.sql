-- Changes that bar a user's sessions, remembered for a while (issue 22's
-- follow-up on trust). The triggers of V20 end the sessions a change bars
-- when it is made; a replica whose policy view has not heard of the change
-- yet (its notification on the way, its listener reconnecting) may still
-- admit that user a moment later, or an admission under way may commit
-- just after the change. The sweeper (store::sessions::sweep) ends such
-- sessions by the database's own state: for every login barred here
-- lately, the open sessions its user may not have any more. Without it,
-- such a session would play on until a refresh, which nginx-rtmp and
-- Astra may never send. Rows older than the sweeper's window are dropped
-- by it.
CREATE TABLE session_bars (
    login     text NOT NULL,
    barred_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX session_bars_barred_at_idx ON session_bars (barred_at);

-- A user's deletion ends its sessions in the admin API (it has no V20
-- trigger): noted here.
CREATE FUNCTION playgate_bar_deleted_users() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO session_bars (login) SELECT login FROM gone;
    RETURN NULL;
END
$$;

CREATE TRIGGER users_deleted_noted AFTER DELETE ON users
    REFERENCING OLD TABLE AS gone FOR EACH STATEMENT
    EXECUTE FUNCTION playgate_bar_deleted_users();

-- What V20's triggers do after ending the sessions a change bars: note the
-- logins for the sweeper, and count the ends for the replica whose admin
-- write made the change, in a transaction-local setting that
-- admin::audited reads before its commit
-- (playgate_sessions_ended_total{reason="kicked"}; not counted before).
CREATE FUNCTION playgate_sessions_barred(ended bigint, logins text[]) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO session_bars (login) SELECT unnest(logins);
    SELECT set_config('playgate.kicked',
                      (COALESCE(NULLIF(current_setting('playgate.kicked', true), ''), '0')::bigint
                       + ended)::text,
                      true);
$$;

-- V20's three functions, restated with that call added (PL/pgSQL has no
-- other way to change a body); the triggers stay V20's.
CREATE OR REPLACE FUNCTION playgate_user_barred() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    ended bigint;
BEGIN
    UPDATE sessions s SET ended_at = now(), end_reason = 'kicked'
     WHERE s.login = OLD.login AND s.ended_at IS NULL;
    GET DIAGNOSTICS ended = ROW_COUNT;
    PERFORM playgate_sessions_barred(ended, ARRAY[OLD.login]);
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION playgate_tokens_revoked() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    ended bigint;
BEGIN
    UPDATE sessions s SET ended_at = now(), end_reason = 'kicked'
      FROM revoked r JOIN users u ON u.id = r.user_id
     WHERE s.login = u.login AND s.token_hash = r.hash AND s.ended_at IS NULL;
    GET DIAGNOSTICS ended = ROW_COUNT;
    PERFORM playgate_sessions_barred(ended, ARRAY(
        SELECT DISTINCT u.login FROM revoked r JOIN users u ON u.id = r.user_id));
    RETURN NULL;
END
$$;

-- A user made in this very transaction (created_at is its start) is no
-- one a stale view could admit, so an import of new users notes nothing.
CREATE OR REPLACE FUNCTION playgate_packages_changed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    ended bigint;
BEGIN
    UPDATE sessions s SET ended_at = now(), end_reason = 'kicked'
      FROM (SELECT DISTINCT user_id FROM changed) c JOIN users u ON u.id = c.user_id
     WHERE s.login = u.login AND s.ended_at IS NULL
       AND EXISTS (SELECT 1 FROM user_packages up WHERE up.user_id = c.user_id)
       AND NOT (s.packages && ARRAY(SELECT p.name FROM user_packages up
                                      JOIN packages p ON p.id = up.package_id
                                     WHERE up.user_id = c.user_id));
    GET DIAGNOSTICS ended = ROW_COUNT;
    PERFORM playgate_sessions_barred(ended, ARRAY(
        SELECT u.login FROM users u
         WHERE u.id IN (SELECT user_id FROM changed) AND u.created_at < now()));
    RETURN NULL;
END
$$;
