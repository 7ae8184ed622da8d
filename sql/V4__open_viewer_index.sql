-- Forward-auth continuation (sessions::find_active_viewer): the active session
-- of one stream, client IP and user agent. Without it every HLS segment
-- scanned all open sessions of the stream (10 000 viewers: ~9 ms a request).
CREATE INDEX sessions_open_viewer_idx ON sessions (stream, client_ip, user_agent) WHERE ended_at IS NULL;
