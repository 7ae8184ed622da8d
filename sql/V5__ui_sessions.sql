-- Sessions of the web interface (/ui/): the cookie's value is never stored,
-- only its SHA-256. A session ends at expires_at, at sign-out, or with its user.
CREATE TABLE ui_sessions (
    hash       bytea PRIMARY KEY,
    user_id    bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL
);
CREATE INDEX ui_sessions_expiry_idx ON ui_sessions (expires_at);
CREATE INDEX ui_sessions_user_idx ON ui_sessions (user_id);
