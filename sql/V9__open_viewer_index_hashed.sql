-- Forward-auth continuation (sessions::find_active_viewer) looks up the
-- active session of one stream, client IP and user agent. V4 indexed the user
-- agent itself: a btree entry holds at most about 2.7 KB, so a long enough
-- (incompressible) stream + user agent made the session INSERT fail with
-- "index row size exceeds btree maximum", and the viewer was admitted
-- without a session row (PLAYGATE_ON_DB_ERROR=allow) or refused (deny). The
-- user agent enters the index as its MD5 (32 characters) instead; the query
-- compares md5(user_agent) for the index and the user agent itself for the
-- answer. (Hooks also cut user agents to 256 bytes now; rows written before
-- may be longer.)
DROP INDEX sessions_open_viewer_idx;
CREATE INDEX sessions_open_viewer_idx ON sessions (stream, client_ip, md5(user_agent)) WHERE ended_at IS NULL;
