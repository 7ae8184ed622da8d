-- Per-user statistics over the session history (GET /api/v1/stats/users/{login}).
CREATE INDEX sessions_login_started_idx ON sessions (login, started_at);
