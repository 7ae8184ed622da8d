-- Policy changes named per user (issue 6). V1's statement triggers told the
-- replicas only which table changed, so each reloaded everything: seconds at
-- a million users, for every change. Now a change to users, tokens or
-- user_packages names the users it touched ('user:<id>'), and each replica
-- re-reads just those.
--
-- Statement-level triggers with transition tables rather than row triggers:
-- one call per statement, and a statement that touches more than 1000 users
-- (an import) sends one table-name payload instead (a full reload, as
-- before) rather than thousands of notifications. The listener's own limit
-- (MAX_USER_BATCH in src/policy_view.rs) is the same number.
-- TRUNCATE, packages and ip_rules keep V1's table-name payloads: the replicas
-- re-read packages and ip_rules alone (small tables) and reload everything
-- after a TRUNCATE.

CREATE FUNCTION playgate_policy_users_changed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    ids bigint[];
BEGIN
    -- users rows name themselves; tokens and user_packages rows their user.
    -- One more than the limit is enough to know it is exceeded.
    IF TG_TABLE_NAME = 'users' THEN
        IF TG_OP = 'INSERT' THEN
            ids := ARRAY(SELECT id FROM new_rows LIMIT 1001);
        ELSIF TG_OP = 'UPDATE' THEN
            ids := ARRAY(SELECT id FROM new_rows UNION SELECT id FROM old_rows LIMIT 1001);
        ELSE
            ids := ARRAY(SELECT id FROM old_rows LIMIT 1001);
        END IF;
    ELSE
        IF TG_OP = 'INSERT' THEN
            ids := ARRAY(SELECT DISTINCT user_id FROM new_rows LIMIT 1001);
        ELSIF TG_OP = 'UPDATE' THEN
            ids := ARRAY(SELECT user_id FROM new_rows UNION SELECT user_id FROM old_rows LIMIT 1001);
        ELSE
            ids := ARRAY(SELECT DISTINCT user_id FROM old_rows LIMIT 1001);
        END IF;
    END IF;
    IF cardinality(ids) > 1000 THEN
        PERFORM pg_notify('playgate_policy', TG_TABLE_NAME);
    ELSE
        -- Identical payloads within one transaction are delivered once.
        PERFORM pg_notify('playgate_policy', 'user:' || id) FROM unnest(ids) AS id;
    END IF;
    RETURN NULL;
END $$;

DROP TRIGGER users_policy_changed ON users;
DROP TRIGGER tokens_policy_changed ON tokens;
DROP TRIGGER user_packages_policy_changed ON user_packages;

-- Transition tables are allowed on single-event triggers only: three per table.
CREATE TRIGGER users_policy_inserted AFTER INSERT ON users
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION playgate_policy_users_changed();
CREATE TRIGGER users_policy_updated AFTER UPDATE ON users
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION playgate_policy_users_changed();
CREATE TRIGGER users_policy_deleted AFTER DELETE ON users
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION playgate_policy_users_changed();
CREATE TRIGGER users_policy_truncated AFTER TRUNCATE ON users
    FOR EACH STATEMENT EXECUTE FUNCTION playgate_policy_changed();

CREATE TRIGGER tokens_policy_inserted AFTER INSERT ON tokens
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION playgate_policy_users_changed();
CREATE TRIGGER tokens_policy_updated AFTER UPDATE ON tokens
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION playgate_policy_users_changed();
CREATE TRIGGER tokens_policy_deleted AFTER DELETE ON tokens
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION playgate_policy_users_changed();
CREATE TRIGGER tokens_policy_truncated AFTER TRUNCATE ON tokens
    FOR EACH STATEMENT EXECUTE FUNCTION playgate_policy_changed();

CREATE TRIGGER user_packages_policy_inserted AFTER INSERT ON user_packages
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION playgate_policy_users_changed();
CREATE TRIGGER user_packages_policy_updated AFTER UPDATE ON user_packages
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION playgate_policy_users_changed();
CREATE TRIGGER user_packages_policy_deleted AFTER DELETE ON user_packages
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION playgate_policy_users_changed();
CREATE TRIGGER user_packages_policy_truncated AFTER TRUNCATE ON user_packages
    FOR EACH STATEMENT EXECUTE FUNCTION playgate_policy_changed();
