-- Denials by reason over time (issue 22; SPEC §4 `GET /api/v1/stats/denials`):
-- each replica counts its denials per minute in memory and adds them here
-- every PLAYGATE_STATS_INTERVAL, so there is never one row per denial (a
-- flood of refusals writes at most one row per reason and minute). Kept as
-- long as the session history (PLAYGATE_HISTORY_DAYS).
CREATE TABLE denial_counts (
    minute timestamptz NOT NULL,
    reason text NOT NULL,
    count bigint NOT NULL CHECK (count > 0),
    PRIMARY KEY (minute, reason)
);
