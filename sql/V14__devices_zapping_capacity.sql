-- Sessions that match real viewing (issue 18; SPEC §1 Device, §2 steps
-- 7–9, §11): devices, zapping, device limits, capacity caps, kicks that
-- hold whatever session id the reconnect brings.

-- Distinct devices a user may watch on at once; null = unlimited.
ALTER TABLE users ADD COLUMN max_devices integer CHECK (max_devices >= 0);
-- Active sessions on the package's streams at most, all viewers together;
-- null = no cap.
ALTER TABLE packages ADD COLUMN max_viewers integer CHECK (max_viewers >= 0);

-- `replaced`: ended by a start of the same device on another stream (zapping).
ALTER TABLE sessions DROP CONSTRAINT sessions_end_reason_check;
ALTER TABLE sessions ADD CONSTRAINT sessions_end_reason_check
    CHECK (end_reason IN ('stopped', 'timeout', 'kicked', 'limit', 'replaced'));

-- `device`: the id the streamer, link or caller sent, else client IP and
-- user agent (src/decision/mod.rs, PlayRequest::device). `packages`: the
-- packages whose patterns matched the stream when the session started, so
-- a package's capacity is counted without matching globs in SQL. Appended
-- in the same order to both tables: the sweeper moves rows with SELECT *.
ALTER TABLE sessions
    ADD COLUMN device text NOT NULL DEFAULT '',
    ADD COLUMN packages text[] NOT NULL DEFAULT '{}';
ALTER TABLE session_history
    ADD COLUMN device text NOT NULL DEFAULT '',
    ADD COLUMN packages text[] NOT NULL DEFAULT '{}';

CREATE OR REPLACE VIEW session_log AS
    SELECT id, key, login, stream, client_ip, protocol, dialect, streamer, user_agent, started_at,
           last_seen_at, expires_at, ended_at, end_reason, bytes, blocked_until, playback_id, cookie_seen,
           device, packages
      FROM sessions
    UNION ALL
    SELECT id, key, login, stream, client_ip, protocol, dialect, streamer, user_agent, started_at,
           last_seen_at, expires_at, ended_at, end_reason, bytes, blocked_until, playback_id, cookie_seen,
           device, packages
      FROM session_history;

-- A package's active sessions (capacity). Partial: sessions of streams in
-- no package never enter it. Heartbeats change neither column, so they
-- stay HOT updates.
CREATE INDEX sessions_open_packages_idx ON sessions USING gin (packages)
    WHERE ended_at IS NULL AND packages <> '{}';
-- The kicks still holding, by what a reconnect brings again: stream and
-- client IP (and the user, compared on the few rows found).
CREATE INDEX sessions_kick_hold_idx ON sessions (stream, client_ip)
    WHERE end_reason = 'kicked' AND blocked_until IS NOT NULL;
