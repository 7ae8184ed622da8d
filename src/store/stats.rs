//! Viewing statistics from the session history (SPEC §4 stats routes, §7 gauges).

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::sql::params;
use super::{Client, StoreError};

/// Cluster-wide readings for the gauges: viewers per stream and per
/// country, active sessions, users.
pub struct ClusterGauges {
    pub viewers_by_stream: Vec<(String, i64)>,
    /// `XX` for sessions with no country known (no entry, or no database).
    pub viewers_by_country: Vec<(String, i64)>,
    pub active_sessions: i64,
    pub users: i64,
}

pub async fn cluster_gauges(client: &Client) -> Result<ClusterGauges, StoreError> {
    // One scan of the active sessions for both groupings.
    let rows = client
        .query_typed(
            "SELECT stream, COALESCE(country, 'XX'), count(*) FROM sessions
              WHERE ended_at IS NULL AND expires_at > now()
              GROUP BY GROUPING SETS ((stream), (COALESCE(country, 'XX')))",
            params![],
        )
        .await?;
    let (mut viewers_by_stream, mut viewers_by_country) = (Vec::new(), Vec::new());
    for row in &rows {
        match row.get::<_, Option<String>>(0) {
            Some(stream) => viewers_by_stream.push((stream, row.get(2))),
            None => viewers_by_country.push((row.get(1), row.get(2))),
        }
    }
    let active_sessions = viewers_by_stream.iter().map(|(_, count)| count).sum();
    let users: i64 = client
        .query_typed_one("SELECT count(*) FROM users", params![])
        .await?
        .get(0);
    Ok(ClusterGauges {
        viewers_by_stream,
        viewers_by_country,
        active_sessions,
        users,
    })
}

#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct StreamStats {
    pub stream: String,
    #[serde(flatten)]
    pub figures: WindowFigures,
}

/// Per country (SPEC §10): `XX` gathers the sessions whose address GeoIP
/// had no entry for, and those recorded without a country database.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct CountryStats {
    /// ISO 3166-1 alpha-2, or `XX`.
    pub country: String,
    #[serde(flatten)]
    pub figures: WindowFigures,
}

/// What the statistics tell of one stream or one country over a window.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct WindowFigures {
    /// Active sessions now.
    pub viewers: i64,
    /// Sessions started in the window.
    pub plays: i64,
    /// Distinct users who watched in the window (anonymous viewers not counted).
    pub unique_users: i64,
    /// Seconds watched inside the window (sessions overlapping it are clipped to it).
    pub watch_seconds: f64,
    /// Most sessions open at once inside the window.
    pub peak_viewers: i64,
}

/// What the window's sessions are grouped by: a column expression of
/// `session_log` and `sessions`.
#[derive(Clone, Copy)]
enum Grouping {
    Stream,
    Country,
}

impl Grouping {
    fn column(self) -> &'static str {
        match self {
            Grouping::Stream => "stream",
            Grouping::Country => "COALESCE(country, 'XX')",
        }
    }
}

/// Sessions overlapping [from, to): ended ones from the history partitions
/// the window touches (and the few not moved yet), open ones from the small
/// active table, so a window at the end of a long history reads only what it
/// needs. `{group}` is what they are counted by.
const WINDOW_SESSIONS: &str = "
    window_sessions AS (
        SELECT {group} AS grp, login, started_at, ended_at FROM session_log
         WHERE ended_at > $1 AND started_at < $2
        UNION ALL
        SELECT {group}, login, started_at, LEAST(expires_at, now()) FROM sessions
         WHERE ended_at IS NULL AND started_at < $2
    ),
    clipped AS (
        SELECT grp, login, started_at,
               GREATEST(started_at, $1) AS from_t, LEAST(ended_at, $2) AS to_t
          FROM window_sessions
    )";

pub async fn streams(
    client: &Client,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<StreamStats>, StoreError> {
    Ok(grouped(client, Grouping::Stream, from, to)
        .await?
        .into_iter()
        .map(|(stream, figures)| StreamStats { stream, figures })
        .collect())
}

pub async fn countries(
    client: &Client,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<CountryStats>, StoreError> {
    Ok(grouped(client, Grouping::Country, from, to)
        .await?
        .into_iter()
        .map(|(country, figures)| CountryStats { country, figures })
        .collect())
}

/// The window's figures per group, most viewers now first.
async fn grouped(
    client: &Client,
    grouping: Grouping,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<(String, WindowFigures)>, StoreError> {
    let group = grouping.column();
    let window_sessions = WINDOW_SESSIONS.replace("{group}", group);
    let query = format!(
        "WITH {window_sessions},
         totals AS (
            SELECT grp,
                   count(*) FILTER (WHERE started_at >= $1) AS plays,
                   count(DISTINCT login) AS unique_users,
                   COALESCE(sum(GREATEST(extract(epoch FROM to_t - from_t), 0)), 0)::float8 AS watch_seconds
              FROM clipped GROUP BY grp
         ),
         events AS (
            SELECT grp, from_t AS t, 1 AS delta FROM clipped WHERE to_t > from_t
            UNION ALL
            SELECT grp, to_t, -1 FROM clipped WHERE to_t > from_t
         ),
         running AS (
            SELECT grp, sum(delta) OVER (PARTITION BY grp ORDER BY t, delta ROWS UNBOUNDED PRECEDING) AS open
              FROM events
         ),
         peaks AS (SELECT grp, max(open)::int8 AS peak FROM running GROUP BY grp),
         now_viewing AS (
            SELECT {group} AS grp, count(*) AS viewers FROM sessions
             WHERE ended_at IS NULL AND expires_at > now() GROUP BY 1
         )
         SELECT COALESCE(t.grp, n.grp), COALESCE(n.viewers, 0), COALESCE(t.plays, 0),
                COALESCE(t.unique_users, 0), COALESCE(t.watch_seconds, 0), COALESCE(p.peak, 0)
           FROM totals t
           FULL JOIN now_viewing n ON n.grp = t.grp
           LEFT JOIN peaks p ON p.grp = t.grp
          ORDER BY 2 DESC, 3 DESC, 1"
    );
    Ok(client
        .query_typed(&query, params![&from, &to])
        .await?
        .iter()
        .map(|row| {
            let figures = WindowFigures {
                viewers: row.get(1),
                plays: row.get(2),
                unique_users: row.get(3),
                watch_seconds: row.get(4),
                peak_viewers: row.get(5),
            };
            (row.get(0), figures)
        })
        .collect())
}

#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct UserStreamStats {
    pub stream: String,
    pub sessions: i64,
    pub watch_seconds: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct UserStats {
    pub login: String,
    pub sessions: i64,
    pub watch_seconds: f64,
    pub streams: Vec<UserStreamStats>,
}

/// One user's sessions overlapping [from, to), per stream.
pub async fn user(
    client: &Client,
    login: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<UserStats, StoreError> {
    let rows = client
        .query_typed(
            "SELECT stream, count(*),
                    COALESCE(sum(GREATEST(extract(epoch FROM
                        LEAST(COALESCE(ended_at, LEAST(expires_at, now())), $3) - GREATEST(started_at, $2)), 0)), 0)::float8
               FROM session_log
              WHERE login = $1 AND started_at < $3 AND (ended_at IS NULL OR ended_at > $2)
              GROUP BY stream ORDER BY 3 DESC, 1",
            params![&login, &from, &to],
        )
        .await?;
    let streams: Vec<UserStreamStats> = rows
        .iter()
        .map(|row| UserStreamStats {
            stream: row.get(0),
            sessions: row.get(1),
            watch_seconds: row.get(2),
        })
        .collect();
    Ok(UserStats {
        login: login.to_string(),
        sessions: streams.iter().map(|s| s.sessions).sum(),
        watch_seconds: streams.iter().map(|s| s.watch_seconds).sum(),
        streams,
    })
}

/// Whether any session (of any time) was recorded for this login.
pub async fn has_history(client: &Client, login: &str) -> Result<bool, StoreError> {
    Ok(client
        .query_typed_one(
            "SELECT EXISTS (SELECT 1 FROM session_log WHERE login = $1)",
            params![&login],
        )
        .await?
        .get(0))
}

/// One point of the concurrent-viewers timeline.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TimelinePoint {
    pub t: DateTime<Utc>,
    pub viewers: i64,
}

/// Concurrent viewers at `from`, `from + step`, … up to `to` (inclusive):
/// sessions (of `stream`, or of every stream) open at that instant, open
/// ones counting until their expiry or now.
pub async fn timeline(
    client: &Client,
    stream: Option<&str>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    step_seconds: i64,
) -> Result<Vec<TimelinePoint>, StoreError> {
    let step = step_seconds as f64;
    Ok(client
        .query_typed(
            "WITH points AS (
                SELECT generate_series($1::timestamptz, $2::timestamptz,
                                       make_interval(secs => $3::float8)) AS t
             ),
             window_sessions AS (
                SELECT started_at, ended_at AS to_t FROM session_log
                 WHERE ended_at > $1 AND started_at <= $2 AND ($4::text IS NULL OR stream = $4)
                UNION ALL
                SELECT started_at, LEAST(expires_at, now()) FROM sessions
                 WHERE ended_at IS NULL AND started_at <= $2 AND ($4::text IS NULL OR stream = $4)
             )
             SELECT p.t, count(w.started_at)
               FROM points p
               LEFT JOIN window_sessions w ON w.started_at <= p.t AND w.to_t > p.t
              GROUP BY p.t ORDER BY p.t",
            params![&from, &to, &step, &stream],
        )
        .await?
        .iter()
        .map(|row| TimelinePoint {
            t: row.get(0),
            viewers: row.get(1),
        })
        .collect())
}
