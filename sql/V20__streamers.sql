-- Streamers and the calls that cut their viewers off (issue 21; SPEC §12).
--
-- A session that playgate ends for a reason of its own (kicked, limit,
-- replaced) is written, in the same transaction, to `streamer_calls` when
-- the streamer whose networks hold the hook caller's address has a control
-- API registered; the outbox workers (src/outbox/streamer_calls.rs) make the
-- call. Account changes end the sessions they bar (`kicked`, without a kick
-- hold) so that the streamers are told at once rather than at the next
-- refresh, which Astra never sends.

CREATE TABLE streamers (
    name        text PRIMARY KEY CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$'),
    kind        text NOT NULL CHECK (kind IN ('nginx-rtmp', 'srs', 'mediamtx', 'astra', 'flussonic')),
    control_url text NOT NULL,
    -- HTTP Basic for the control API; the password is read back to make
    -- the call, so it is kept as given (never returned by the API, never logged).
    username    text NOT NULL DEFAULT '',
    password    text NOT NULL DEFAULT '',
    comment     text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- The networks a streamer's hook calls come from. One network belongs to
-- one streamer (the key: a second claim is a 409); a caller belongs to the
-- most specific network holding it.
CREATE TABLE streamer_networks (
    network  cidr PRIMARY KEY,
    streamer text NOT NULL REFERENCES streamers (name) ON DELETE CASCADE ON UPDATE CASCADE
);
CREATE INDEX streamer_networks_streamer_idx ON streamer_networks (streamer);

-- One drop call per ended session: `target` is the streamer's own id of
-- the viewer (the session id it sent, as the session key holds it).
-- `next_attempt_at` is also the lease of the replica making the call.
CREATE TABLE streamer_calls (
    id              bigserial PRIMARY KEY,
    streamer        text NOT NULL REFERENCES streamers (name) ON DELETE CASCADE ON UPDATE CASCADE,
    session_id      uuid NOT NULL,
    target          text NOT NULL,
    stream          text NOT NULL,
    protocol        text NOT NULL,
    end_reason      text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    attempts        integer NOT NULL DEFAULT 0,
    status          text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'done', 'failed')),
    result          text,
    finished_at     timestamptz
);
CREATE INDEX streamer_calls_due_idx ON streamer_calls (next_attempt_at) WHERE status = 'pending';
CREATE INDEX streamer_calls_streamer_idx ON streamer_calls (streamer, created_at DESC);
CREATE INDEX streamer_calls_finished_idx ON streamer_calls (finished_at) WHERE finished_at IS NOT NULL;

-- The token a session was admitted with (SHA-256, as `tokens.hash`): its
-- revocation ends the session. Appended to both tables in the same order:
-- the sweeper moves rows with SELECT *.
ALTER TABLE sessions ADD COLUMN token_hash bytea;
ALTER TABLE session_history ADD COLUMN token_hash bytea;

-- An address as text, or null for anything else (`/hook/decide`'s
-- `streamer` is free text): for matching sessions to streamers' networks.
CREATE FUNCTION playgate_try_inet(p_text text) RETURNS inet LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    RETURN p_text::inet;
EXCEPTION WHEN invalid_text_representation THEN
    RETURN NULL;
END
$$;

CREATE FUNCTION playgate_streamer_call() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v_prefix text := 's:' || NEW.dialect || ':' || NEW.streamer || ':';
    v_caller inet;
    v_streamer text;
    v_kind text;
BEGIN
    -- Only a session id the streamer sent names the viewer to it.
    IF left(NEW.key, length(v_prefix)) <> v_prefix OR NOT EXISTS (SELECT 1 FROM streamer_networks) THEN
        RETURN NULL;
    END IF;
    v_caller := playgate_try_inet(NEW.streamer);
    SELECT n.streamer, s.kind INTO v_streamer, v_kind
      FROM streamer_networks n JOIN streamers s ON s.name = n.streamer
     WHERE n.network >>= v_caller
     ORDER BY masklen(n.network) DESC LIMIT 1;
    IF v_caller IS NULL OR v_streamer IS NULL OR v_kind <> NEW.dialect THEN
        RETURN NULL;
    END IF;
    INSERT INTO streamer_calls (streamer, session_id, target, stream, protocol, end_reason)
    VALUES (v_streamer, NEW.id, substr(NEW.key, length(v_prefix) + 1), NEW.stream, NEW.protocol,
            NEW.end_reason);
    RETURN NULL;
END
$$;

CREATE TRIGGER sessions_streamer_call AFTER UPDATE OF ended_at ON sessions
    FOR EACH ROW WHEN (OLD.ended_at IS NULL AND NEW.ended_at IS NOT NULL
                       AND NEW.end_reason IN ('kicked', 'limit', 'replaced')
                       AND NEW.dialect IN ('nginx-rtmp', 'srs', 'mediamtx', 'astra', 'flussonic'))
    EXECUTE FUNCTION playgate_streamer_call();

-- A user disabled, or given an expiry that has passed: its sessions end.
-- (An expiry passing by itself is the sweeper's: store::sessions::sweep.)
CREATE FUNCTION playgate_user_barred() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE sessions s SET ended_at = now(), end_reason = 'kicked'
     WHERE s.login = OLD.login AND s.ended_at IS NULL;
    RETURN NULL;
END
$$;

CREATE TRIGGER users_barred AFTER UPDATE OF enabled, expires_at ON users
    FOR EACH ROW WHEN ((OLD.enabled AND NOT NEW.enabled)
                       OR (NEW.enabled AND NEW.expires_at <= now()
                           AND (OLD.expires_at IS NULL OR OLD.expires_at > now())))
    EXECUTE FUNCTION playgate_user_barred();

-- A token deleted: the sessions admitted with it end.
CREATE FUNCTION playgate_tokens_revoked() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE sessions s SET ended_at = now(), end_reason = 'kicked'
      FROM revoked r JOIN users u ON u.id = r.user_id
     WHERE s.login = u.login AND s.token_hash = r.hash AND s.ended_at IS NULL;
    RETURN NULL;
END
$$;

CREATE TRIGGER tokens_revoked AFTER DELETE ON tokens
    REFERENCING OLD TABLE AS revoked FOR EACH STATEMENT
    EXECUTE FUNCTION playgate_tokens_revoked();

-- A user's packages changed: the sessions on streams none of them holds
-- any more end (a user without packages may watch everything). Checked
-- after each statement, so replacing the set (delete all, insert the new
-- ones: store::users::set_packages, the import) ends only what the new set
-- bars. Patterns edited in a package are checked at the next refresh.
CREATE FUNCTION playgate_packages_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE sessions s SET ended_at = now(), end_reason = 'kicked'
      FROM (SELECT DISTINCT user_id FROM changed) c JOIN users u ON u.id = c.user_id
     WHERE s.login = u.login AND s.ended_at IS NULL
       AND EXISTS (SELECT 1 FROM user_packages up WHERE up.user_id = c.user_id)
       AND NOT (s.packages && ARRAY(SELECT p.name FROM user_packages up
                                      JOIN packages p ON p.id = up.package_id
                                     WHERE up.user_id = c.user_id));
    RETURN NULL;
END
$$;

CREATE TRIGGER user_packages_removed AFTER DELETE ON user_packages
    REFERENCING OLD TABLE AS changed FOR EACH STATEMENT
    EXECUTE FUNCTION playgate_packages_changed();
CREATE TRIGGER user_packages_added AFTER INSERT ON user_packages
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT
    EXECUTE FUNCTION playgate_packages_changed();

-- V17's two admission functions, restated whole (PL/pgSQL has no other way
-- to change a body), with the token each admission was made with as one
-- more argument stored on the row it inserts; nothing else differs. The
-- _v17 functions stay for replicas of the previous release during a
-- rolling upgrade (their sessions record no token).
CREATE FUNCTION playgate_admit_v20(
    p_key text, p_login text, p_max_sessions integer, p_kick_oldest boolean,
    p_stream text, p_client_ip inet, p_protocol text, p_dialect text, p_streamer text,
    p_user_agent text, p_bytes bigint, p_hold float8, p_block float8,
    p_device text, p_max_devices integer, p_packages text[], p_refresh boolean,
    p_zapping boolean, p_max_viewers integer, p_country text, p_asn bigint,
    p_token_hash bytea)
RETURNS TABLE (o_refusal text, o_session_id uuid, o_active bigint, o_started boolean,
               o_watched float8, o_replaced integer, o_limited integer)
LANGUAGE plpgsql AS $$
DECLARE
    v_id uuid;
    v_last_seen timestamptz;
    v_refreshable boolean;
    v_end_reason text;
    v_others bigint := 0;
    v_started boolean;
    v_replace uuid[] := '{}';
    v_limit uuid[] := '{}';
    v_ending uuid[];
    v_over boolean;
    v_devices bigint;
    v_device_known boolean;
    v_cap record;
BEGIN
    SELECT s.id, s.last_seen_at, s.expires_at > now() AND s.login IS NOT DISTINCT FROM p_login
      INTO v_id, v_last_seen, v_refreshable
      FROM sessions s
     WHERE s.key = p_key AND s.ended_at IS NULL
       FOR UPDATE;
    -- A refresh of an active session never counts against its own limits
    -- or caps (SPEC §2).
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
                            extract(epoch FROM now() - v_last_seen)::float8, 0, 0;
        RETURN;
    END IF;

    IF p_login IS NOT NULL THEN
        SELECT count(*) INTO v_others FROM sessions s
         WHERE s.login = p_login AND s.ended_at IS NULL AND s.expires_at > now() AND s.key <> p_key;
    END IF;

    -- Step 7 and the keys playgate ended itself.
    SELECT s.end_reason INTO v_end_reason FROM sessions s
     WHERE s.key = p_key AND s.blocked_until > now()
     ORDER BY s.started_at DESC LIMIT 1;
    IF FOUND AND (v_end_reason <> 'replaced' OR p_refresh) THEN
        RETURN QUERY SELECT CASE WHEN v_end_reason = 'kicked' THEN 'kicked' ELSE 'limit' END,
                            NULL::uuid, v_others, false, 0::float8, 0, 0;
        RETURN;
    END IF;
    PERFORM 1 FROM sessions s
      WHERE s.stream = p_stream AND s.client_ip = p_client_ip AND s.end_reason = 'kicked'
        AND s.blocked_until > now() AND s.login IS NOT DISTINCT FROM p_login
      LIMIT 1;
    IF FOUND THEN
        RETURN QUERY SELECT 'kicked'::text, NULL::uuid, v_others, false, 0::float8, 0, 0;
        RETURN;
    END IF;

    -- Step 9 decided before step 8 is checked, without ending anything
    -- yet: the sessions zapping would end do not count against a cap.
    v_over := p_login IS NOT NULL AND p_max_sessions IS NOT NULL
              AND v_others >= GREATEST(p_max_sessions, 0);
    IF v_over AND p_zapping AND p_max_sessions > 0 THEN
        SELECT COALESCE(array_agg(z.id), '{}') INTO v_replace
          FROM (SELECT s.id FROM sessions s
                 WHERE s.login = p_login AND s.ended_at IS NULL AND s.expires_at > now()
                   AND s.key <> p_key AND s.device = p_device AND s.stream <> p_stream
                 ORDER BY s.last_seen_at, s.id
                 LIMIT v_others + 1 - p_max_sessions) AS z;
        IF cardinality(v_replace) = v_others + 1 - p_max_sessions THEN
            v_over := false;
        ELSE
            v_replace := '{}';
        END IF;
    END IF;
    IF v_over AND p_kick_oldest AND p_max_sessions > 0 THEN
        SELECT COALESCE(array_agg(o.id), '{}') INTO v_limit
          FROM (SELECT s.id FROM sessions s
                 WHERE s.login = p_login AND s.ended_at IS NULL AND s.expires_at > now()
                   AND s.key <> p_key
                 ORDER BY s.started_at, s.id
                 LIMIT v_others + 1 - p_max_sessions) AS o;
        v_over := false;
    END IF;
    v_ending := v_replace || v_limit;

    -- Step 8: capacity.
    FOR v_cap IN
        SELECT p.name, p.max_viewers FROM packages p
         WHERE p.name = ANY (p_packages) AND p.max_viewers IS NOT NULL
    LOOP
        IF (SELECT count(*) FROM sessions s
             WHERE s.packages @> ARRAY[v_cap.name] AND s.ended_at IS NULL AND s.packages <> '{}'
               AND s.expires_at > now() AND s.key <> p_key AND NOT (s.id = ANY (v_ending)))
           >= v_cap.max_viewers THEN
            RETURN QUERY SELECT 'full'::text, NULL::uuid, v_others, false, 0::float8, 0, 0;
            RETURN;
        END IF;
    END LOOP;
    IF p_max_viewers IS NOT NULL
       AND (SELECT count(*) FROM sessions s
             WHERE s.ended_at IS NULL AND s.expires_at > now() AND s.key <> p_key
               AND NOT (s.id = ANY (v_ending))) >= p_max_viewers THEN
        RETURN QUERY SELECT 'full'::text, NULL::uuid, v_others, false, 0::float8, 0, 0;
        RETURN;
    END IF;

    -- Step 9: the limit (reject_new), then the devices left once the
    -- sessions to end are gone.
    IF v_over THEN
        RETURN QUERY SELECT 'limit'::text, NULL::uuid, v_others, false, 0::float8, 0, 0;
        RETURN;
    END IF;
    IF p_login IS NOT NULL AND p_max_devices IS NOT NULL THEN
        SELECT count(DISTINCT s.device), COALESCE(bool_or(s.device = p_device), false)
          INTO v_devices, v_device_known
          FROM sessions s
         WHERE s.login = p_login AND s.ended_at IS NULL AND s.expires_at > now()
           AND s.key <> p_key AND NOT (s.id = ANY (v_ending));
        IF NOT v_device_known AND v_devices >= p_max_devices THEN
            RETURN QUERY SELECT 'device'::text, NULL::uuid, v_others, false, 0::float8, 0, 0;
            RETURN;
        END IF;
    END IF;

    -- Admitted. The sessions it displaces end now; their keys are refused
    -- to refreshes for p_block, so two players cannot push each other out
    -- in turn.
    IF cardinality(v_ending) > 0 THEN
        UPDATE sessions s
           SET ended_at = now(),
               end_reason = CASE WHEN s.id = ANY (v_replace) THEN 'replaced' ELSE 'limit' END,
               blocked_until = now() + make_interval(secs => p_block)
         WHERE s.id = ANY (v_ending);
    END IF;
    v_others := v_others - cardinality(v_ending);

    -- An open row for this key that is no longer active (or belongs to
    -- another user) is closed so the key can be reused.
    IF v_id IS NOT NULL THEN
        UPDATE sessions s
           SET ended_at = LEAST(s.expires_at, now()),
               end_reason = CASE WHEN s.expires_at <= now() THEN 'timeout' ELSE 'stopped' END
         WHERE s.id = v_id;
    END IF;

    INSERT INTO sessions AS s (key, login, stream, client_ip, protocol, dialect, streamer, user_agent,
                               started_at, last_seen_at, expires_at, bytes, device, packages,
                               country, asn, token_hash)
    VALUES (p_key, p_login, p_stream, p_client_ip, p_protocol, p_dialect, p_streamer, p_user_agent,
            clock_timestamp(), clock_timestamp(), now() + make_interval(secs => p_hold), p_bytes,
            p_device, p_packages, p_country, p_asn, p_token_hash)
    ON CONFLICT (key) WHERE ended_at IS NULL
    DO UPDATE SET last_seen_at = now(), expires_at = EXCLUDED.expires_at,
                  bytes = COALESCE(EXCLUDED.bytes, s.bytes)
         WHERE s.login IS NOT DISTINCT FROM EXCLUDED.login
    RETURNING s.id, s.xmax = 0 INTO v_id, v_started;
    IF v_id IS NULL THEN
        UPDATE sessions s SET ended_at = now(), end_reason = 'stopped'
         WHERE s.key = p_key AND s.ended_at IS NULL;
        INSERT INTO sessions AS s (key, login, stream, client_ip, protocol, dialect, streamer,
                                   user_agent, started_at, last_seen_at, expires_at, bytes, device,
                                   packages, country, asn, token_hash)
        VALUES (p_key, p_login, p_stream, p_client_ip, p_protocol, p_dialect, p_streamer,
                p_user_agent, clock_timestamp(), clock_timestamp(),
                now() + make_interval(secs => p_hold), p_bytes, p_device, p_packages, p_country,
                p_asn, p_token_hash)
        RETURNING s.id, true INTO v_id, v_started;
    END IF;
    RETURN QUERY SELECT NULL::text, v_id, CASE WHEN p_login IS NULL THEN 0 ELSE v_others + 1 END,
                        v_started, 0::float8, cardinality(v_replace), cardinality(v_limit);
END
$$;

-- V13's playgate_admit_batch with the arguments of playgate_admit_v14
-- (p_packages: a JSON array holding each admission's array of package
-- names; p_max_viewers: the service's cap, null = none).
--
-- The locks, all taken first and in one order (class, then key), so two
-- batches never wait for each other in a cycle: each user's, as before;
-- each package with a max_viewers that an admission's stream matched; the
-- service's, only while PLAYGATE_MAX_VIEWERS is set. Without caps no
-- admission waits for another user's.
--
-- The common case is still one statement for the whole batch: a new key
-- (no open row, not refused, no kick holding, not seen earlier in the
-- batch) under no cap and no device limit, within its user's limit.
-- Everything else goes through playgate_admit_v14, one by one.
CREATE FUNCTION playgate_admit_batch_v20(
    p_keys text[], p_logins text[], p_max_sessions integer[], p_kick_oldest boolean[],
    p_streams text[], p_client_ips inet[], p_protocols text[], p_dialects text[], p_streamers text[],
    p_user_agents text[], p_bytes bigint[], p_holds float8[], p_blocks float8[],
    p_devices text[], p_max_devices integer[], p_packages jsonb, p_refreshes boolean[],
    p_zapping boolean, p_max_viewers integer, p_synchronous boolean,
    p_countries text[], p_asns bigint[], p_token_hashes bytea[])
RETURNS TABLE (o_ord integer, o_refusal text, o_session_id uuid, o_active bigint, o_started boolean,
               o_watched float8, o_replaced integer, o_limited integer)
LANGUAGE plpgsql AS $$
DECLARE
    v_ord integer;
    v_capped text[];
    v_done integer[];
    v_refusals text[];
    v_ids uuid[];
    v_actives bigint[];
    v_started boolean[];
BEGIN
    -- As V13: plan for the table found while it is small.
    IF (SELECT c.reltuples FROM pg_class c WHERE c.oid = 'sessions'::regclass) < 10000 THEN
        PERFORM set_config('plan_cache_mode', 'force_custom_plan', true);
    END IF;
    IF NOT p_synchronous THEN
        PERFORM set_config('synchronous_commit', 'off', true);
    END IF;
    -- The packages matched, with a cap (few: the rest never lock).
    IF p_packages <> '[]'::jsonb THEN
        SELECT COALESCE(array_agg(p.name), '{}') INTO v_capped
          FROM packages p
         WHERE p.max_viewers IS NOT NULL
           AND p.name IN (SELECT jsonb_array_elements_text(item)
                            FROM jsonb_array_elements(p_packages) AS item);
    ELSE
        v_capped := '{}';
    END IF;
    PERFORM pg_advisory_xact_lock(lock_class, lock_key)
       FROM (SELECT DISTINCT 28775 AS lock_class, hashtext(login) AS lock_key -- 0x7067, "pg"
               FROM unnest(p_logins) AS login
              WHERE login IS NOT NULL
             UNION
             SELECT 28776, hashtext(name) FROM unnest(v_capped) AS name
             UNION
             SELECT 28777, 0 WHERE p_max_viewers IS NOT NULL
              ORDER BY 1, 2) AS locks;

    WITH item AS (
        SELECT i AS ord, p_keys[i] AS key, p_logins[i] AS login, p_max_sessions[i] AS max_sessions,
               p_kick_oldest[i] AS kick_oldest
          FROM generate_subscripts(p_keys, 1) AS i
         WHERE p_max_devices[i] IS NULL AND p_max_viewers IS NULL
           AND NOT EXISTS (SELECT 1 FROM jsonb_array_elements_text(p_packages -> (i - 1)) AS name
                            WHERE name = ANY (v_capped))
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
           AND (SELECT 1 FROM sessions s
                 WHERE s.stream = p_streams[item.ord] AND s.client_ip = p_client_ips[item.ord]
                   AND s.end_reason = 'kicked' AND s.blocked_until > now() LIMIT 1) IS NULL
           AND (SELECT 1 FROM item earlier WHERE earlier.key = item.key AND earlier.ord < item.ord LIMIT 1) IS NULL
    ),
    verdict AS (
        SELECT fresh.*,
               fresh.login IS NULL OR fresh.max_sessions IS NULL
                   OR fresh.active + fresh.nth <= fresh.max_sessions AS admit,
               -- Past the limit: refused here when neither zapping nor
               -- kick_oldest could make room; zapping cannot when the device
               -- watches no other stream of the user (the usual refusal:
               -- another device, account sharing).
               fresh.login IS NOT NULL AND fresh.max_sessions IS NOT NULL
                   AND fresh.active + fresh.nth > fresh.max_sessions
                   AND (fresh.max_sessions <= 0
                        OR (NOT fresh.kick_oldest
                            AND (NOT p_zapping
                                 OR (SELECT 1 FROM sessions s
                                      WHERE s.login = fresh.login AND s.ended_at IS NULL
                                        AND s.expires_at > now()
                                        AND s.device = p_devices[fresh.ord]
                                        AND s.stream <> p_streams[fresh.ord] LIMIT 1) IS NULL
                                    -- nor did earlier in this batch, which
                                    -- this statement cannot see yet.
                                    AND (SELECT 1 FROM item earlier
                                          WHERE earlier.login = fresh.login AND earlier.ord < fresh.ord
                                            AND p_devices[earlier.ord] = p_devices[fresh.ord]
                                          LIMIT 1) IS NULL))) AS refuse
          FROM fresh
    ),
    inserted AS (
        INSERT INTO sessions AS s (key, login, stream, client_ip, protocol, dialect, streamer,
                                   user_agent, started_at, last_seen_at, expires_at, bytes, device,
                                   packages, country, asn, token_hash)
        SELECT v.key, v.login, p_streams[v.ord], p_client_ips[v.ord], p_protocols[v.ord],
               p_dialects[v.ord], p_streamers[v.ord], p_user_agents[v.ord], clock_timestamp(),
               clock_timestamp(), now() + make_interval(secs => p_holds[v.ord]), p_bytes[v.ord],
               p_devices[v.ord],
               ARRAY(SELECT jsonb_array_elements_text(p_packages -> (v.ord - 1))),
               p_countries[v.ord], p_asns[v.ord], p_token_hashes[v.ord]
          FROM verdict v WHERE v.admit ORDER BY v.ord
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
    RETURN QUERY SELECT a.ord, a.refusal, a.session_id, a.active, a.started, 0::float8, 0, 0
                   FROM unnest(v_done, v_refusals, v_ids, v_actives, v_started)
                        AS a(ord, refusal, session_id, active, started);
    FOR v_ord IN
        SELECT i FROM generate_subscripts(p_keys, 1) AS i
         WHERE NOT (i = ANY (COALESCE(v_done, '{}'))) ORDER BY i
    LOOP
        RETURN QUERY SELECT v_ord, a.* FROM playgate_admit_v20(
            p_keys[v_ord], p_logins[v_ord], p_max_sessions[v_ord], p_kick_oldest[v_ord],
            p_streams[v_ord], p_client_ips[v_ord], p_protocols[v_ord], p_dialects[v_ord],
            p_streamers[v_ord], p_user_agents[v_ord], p_bytes[v_ord], p_holds[v_ord],
            p_blocks[v_ord], p_devices[v_ord], p_max_devices[v_ord],
            ARRAY(SELECT jsonb_array_elements_text(p_packages -> (v_ord - 1))),
            p_refreshes[v_ord], p_zapping, p_max_viewers, p_countries[v_ord],
            p_asns[v_ord], p_token_hashes[v_ord]) AS a;
    END LOOP;
END
$$;

-- The sweeper ends the sessions of accounts and tokens whose expiry has
-- just passed (store::sessions::sweep).
CREATE INDEX users_expires_idx ON users (expires_at) WHERE expires_at IS NOT NULL;
CREATE INDEX tokens_expires_idx ON tokens (expires_at) WHERE expires_at IS NOT NULL;
