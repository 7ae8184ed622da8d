-- playgate schema, version 1. Released migrations are never edited: add V2__... instead.

CREATE TABLE users (
    id            bigserial PRIMARY KEY,
    login         text NOT NULL,
    password_hash text,                       -- bcrypt; null = token/IP-only account
    kind          text NOT NULL DEFAULT 'user' CHECK (kind IN ('user', 'observer', 'admin')),
    comment       text NOT NULL DEFAULT '',
    ips           cidr[] NOT NULL DEFAULT '{}',
    stb           text NOT NULL DEFAULT '',
    expires_at    timestamptz,
    max_sessions  integer CHECK (max_sessions >= 0),
    enabled       boolean NOT NULL DEFAULT true,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT users_login_key UNIQUE (login)
);

CREATE TABLE tokens (
    id         bigserial PRIMARY KEY,
    user_id    bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    hash       bytea NOT NULL,                -- SHA-256 of the clear token; the clear value is never stored
    label      text NOT NULL DEFAULT '',
    expires_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT tokens_hash_key UNIQUE (hash)
);
CREATE INDEX tokens_user_idx ON tokens (user_id);

CREATE TABLE packages (
    id         bigserial PRIMARY KEY,
    name       text NOT NULL,
    comment    text NOT NULL DEFAULT '',
    streams    text[] NOT NULL DEFAULT '{}',  -- exact names or '*' globs
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT packages_name_key UNIQUE (name)
);

CREATE TABLE user_packages (
    user_id    bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    package_id bigint NOT NULL REFERENCES packages (id) ON DELETE CASCADE,
    PRIMARY KEY (user_id, package_id)
);
CREATE INDEX user_packages_package_idx ON user_packages (package_id);

CREATE TABLE ip_rules (
    id         bigserial PRIMARY KEY,
    network    cidr NOT NULL,
    action     text NOT NULL CHECK (action IN ('allow', 'deny')),
    comment    text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT ip_rules_network_action_key UNIQUE (network, action)
);

-- Active sessions and history in one table: a session is active while
-- ended_at IS NULL AND expires_at > now().
CREATE TABLE sessions (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    key           text NOT NULL,
    login         text,                       -- null for anonymous (allow-listed) viewers; kept after user deletion
    stream        text NOT NULL,
    client_ip     inet NOT NULL,
    protocol      text NOT NULL DEFAULT '',
    dialect       text NOT NULL DEFAULT '',
    streamer      text NOT NULL DEFAULT '',
    user_agent    text NOT NULL DEFAULT '',
    started_at    timestamptz NOT NULL DEFAULT now(),
    last_seen_at  timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL,
    ended_at      timestamptz,
    end_reason    text CHECK (end_reason IN ('stopped', 'timeout', 'kicked', 'limit')),
    bytes         bigint,
    -- A kicked or limit-ended session's key stays refused until then (one session duration).
    blocked_until timestamptz
);
-- One open row per key: reconnecting players reuse their slot.
CREATE UNIQUE INDEX sessions_open_key_idx ON sessions (key) WHERE ended_at IS NULL;
CREATE INDEX sessions_key_recent_idx ON sessions (key, started_at DESC);
CREATE INDEX sessions_open_login_idx ON sessions (login, started_at) WHERE ended_at IS NULL;
CREATE INDEX sessions_open_stream_idx ON sessions (stream) WHERE ended_at IS NULL;
CREATE INDEX sessions_open_expiry_idx ON sessions (expires_at) WHERE ended_at IS NULL;
CREATE INDEX sessions_ended_idx ON sessions (ended_at) WHERE ended_at IS NOT NULL;
CREATE INDEX sessions_started_idx ON sessions (started_at);

CREATE TABLE audit_log (
    id          bigserial PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    actor       text NOT NULL,
    action      text NOT NULL,                -- create | update | delete | kick | import
    object_type text NOT NULL,
    object_id   text NOT NULL,
    changes     jsonb NOT NULL DEFAULT '{}'   -- changed field names/values; never a password or clear token
);
CREATE INDEX audit_log_at_idx ON audit_log (at DESC);

-- Every replica keeps an in-memory view of the policy tables; a change anywhere
-- tells them all to reload.
CREATE FUNCTION playgate_policy_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('playgate_policy', TG_TABLE_NAME);
    RETURN NULL;
END $$;

CREATE TRIGGER users_policy_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON users
    FOR EACH STATEMENT EXECUTE FUNCTION playgate_policy_changed();
CREATE TRIGGER tokens_policy_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON tokens
    FOR EACH STATEMENT EXECUTE FUNCTION playgate_policy_changed();
CREATE TRIGGER packages_policy_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON packages
    FOR EACH STATEMENT EXECUTE FUNCTION playgate_policy_changed();
CREATE TRIGGER user_packages_policy_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON user_packages
    FOR EACH STATEMENT EXECUTE FUNCTION playgate_policy_changed();
CREATE TRIGGER ip_rules_policy_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON ip_rules
    FOR EACH STATEMENT EXECUTE FUNCTION playgate_policy_changed();
