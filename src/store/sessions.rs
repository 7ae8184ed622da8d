//! Viewing sessions: the shared state of every replica (SPEC §2 steps 6–8).
//!
//! A session is active while `ended_at IS NULL AND expires_at > now()`.
//! Connection limits are kept exact by serialising the admissions of one user
//! with a transaction-scoped advisory lock on the login (inside the
//! `playgate_admit` function, sql/V8): every replica on the same database
//! takes the same lock.

use std::net::IpAddr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::sql::params;
use super::{Client, StoreError};
use crate::domain::LimitPolicy;

/// Lock that lets one replica at a time run the sweeper.
const SWEEP_LOCK: i64 = 0x0070_6773_7765_6570; // "pgsweep"

/// Everything needed to start or refresh one session.
#[derive(Clone, Debug)]
pub struct Admission {
    pub key: String,
    /// None for an anonymous viewer (allow-listed IP): no limit applies.
    pub login: Option<String>,
    pub max_sessions: Option<i32>,
    pub limit_policy: LimitPolicy,
    pub stream: String,
    pub client_ip: IpAddr,
    pub protocol: String,
    pub dialect: &'static str,
    pub streamer: String,
    pub user_agent: String,
    pub bytes: Option<i64>,
    /// Session duration + grace: how long the session stays active without a refresh.
    pub hold: Duration,
    /// How long a session ended by `kick_oldest` or zapping keeps its key
    /// refused (to refreshes, for a replaced one).
    pub block: Duration,
    /// The viewer's device (SPEC §1): zapping and device limits count it.
    pub device: String,
    pub max_devices: Option<i32>,
    /// The packages whose patterns match the stream: their `max_viewers`
    /// caps apply, and the session counts against them.
    pub packages: Vec<String>,
    /// The streamer said this is a refresh (not only a start it cannot
    /// tell from one): a key ended `replaced` stays refused.
    pub refresh: bool,
    /// PLAYGATE_ZAPPING=replace.
    pub zapping: bool,
    /// PLAYGATE_MAX_VIEWERS: the whole service's cap.
    pub max_viewers: Option<i32>,
    /// Where the client is (SPEC §10), recorded on a new session: None for
    /// each kind of GeoIP database not configured.
    pub country: Option<[u8; 2]>,
    pub asn: Option<u32>,
    /// SHA-256 of the token the viewer was admitted with: deleting the
    /// token ends the session (sql/V20).
    pub token_hash: Option<[u8; 32]>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// An admin kicked this session recently.
    Kicked,
    /// The user is at the limit (`reject_new`), or this session was ended
    /// by `kick_oldest` or replaced by another stream of its device.
    Limit,
    /// A package of the stream, or the service, is at its `max_viewers`.
    Full,
    /// The user's `max_devices` are all watching.
    Device,
}

impl Refusal {
    fn parse(code: &str) -> Option<Refusal> {
        match code {
            "kicked" => Some(Refusal::Kicked),
            "limit" => Some(Refusal::Limit),
            "full" => Some(Refusal::Full),
            "device" => Some(Refusal::Device),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum AdmitOutcome {
    Allowed {
        session_id: Uuid,
        active_sessions: i64,
        /// A new session row (not a refresh of an active one).
        started: bool,
        /// Seconds watched since the session was last seen (refreshes).
        watched_seconds: f64,
        /// Other sessions of the user this start ended: `replaced`
        /// (zapping) and `limit` (kick_oldest).
        replaced: u32,
        limited: u32,
    },
    Refused {
        refusal: Refusal,
        active_sessions: i64,
    },
}

fn seconds(duration: Duration) -> f64 {
    duration.as_secs_f64()
}

/// Steps 7–10 for several admissions in one round trip and one commit
/// (`playgate_admit_batch_v20`, sql/V14, V20): refresh the active session under
/// the key, else refuse a recently kicked viewer, enforce the caps and the
/// limits under advisory locks (zapping where it makes room), and start the
/// session. `synchronous` false commits without waiting for the WAL
/// flush (PLAYGATE_SESSION_COMMIT=async). The outcomes are in the order of
/// `admissions`.
pub async fn admit_batch(
    client: &Client,
    admissions: &[Admission],
    synchronous: bool,
) -> Result<Vec<AdmitOutcome>, StoreError> {
    fn column<'a, T>(admissions: &'a [Admission], field: impl Fn(&'a Admission) -> T) -> Vec<T> {
        admissions.iter().map(field).collect()
    }
    let keys = column(admissions, |a| a.key.as_str());
    let logins = column(admissions, |a| a.login.as_deref());
    let max_sessions = column(admissions, |a| a.max_sessions);
    let kick_oldest = column(admissions, |a| a.limit_policy == LimitPolicy::KickOldest);
    let streams = column(admissions, |a| a.stream.as_str());
    let client_ips = column(admissions, |a| a.client_ip);
    let protocols = column(admissions, |a| a.protocol.as_str());
    let dialects = column(admissions, |a| a.dialect);
    let streamers = column(admissions, |a| a.streamer.as_str());
    let user_agents = column(admissions, |a| a.user_agent.as_str());
    let bytes = column(admissions, |a| a.bytes);
    let holds = column(admissions, |a| seconds(a.hold));
    let blocks = column(admissions, |a| seconds(a.block));
    let devices = column(admissions, |a| a.device.as_str());
    let max_devices = column(admissions, |a| a.max_devices);
    let packages = serde_json::Value::Array(
        admissions
            .iter()
            .map(|a| serde_json::json!(a.packages))
            .collect(),
    );
    let refreshes = column(admissions, |a| a.refresh);
    let countries = column(admissions, |a| {
        a.country
            .as_ref()
            .and_then(|code| std::str::from_utf8(code).ok())
    });
    let asns = column(admissions, |a| a.asn.map(i64::from));
    let token_hashes = column(admissions, |a| a.token_hash.as_ref().map(|hash| &hash[..]));
    // Settings of the replica, the same for every admission of a batch.
    let zapping = admissions.first().is_some_and(|a| a.zapping);
    let max_viewers = admissions.first().and_then(|a| a.max_viewers);
    let rows = client
        .query_hot(
            "SELECT o_ord, o_refusal, o_session_id, o_active, o_started, o_watched, o_replaced, o_limited
               FROM playgate_admit_batch_v20($1::text[], $2::text[], $3::int4[], $4::bool[], $5::text[],
                                             $6::inet[], $7::text[], $8::text[], $9::text[], $10::text[],
                                             $11::int8[], $12::float8[], $13::float8[], $14::text[],
                                             $15::int4[], $16::jsonb, $17::bool[], $18, $19::int4, $20,
                                             $21::text[], $22::int8[], $23::bytea[])",
            params![
                &keys,
                &logins,
                &max_sessions,
                &kick_oldest,
                &streams,
                &client_ips,
                &protocols,
                &dialects,
                &streamers,
                &user_agents,
                &bytes,
                &holds,
                &blocks,
                &devices,
                &max_devices,
                &packages,
                &refreshes,
                &zapping,
                &max_viewers,
                &synchronous,
                &countries,
                &asns,
                &token_hashes,
            ],
        )
        .await?;
    let mut outcomes: Vec<Option<AdmitOutcome>> = vec![None; admissions.len()];
    for row in &rows {
        let position = usize::try_from(row.get::<_, i32>(0) - 1)
            .ok()
            .filter(|position| *position < admissions.len())
            .ok_or_else(|| {
                StoreError::Other("playgate_admit_batch_v20: position out of range".into())
            })?;
        let refusal: Option<&str> = row.get(1);
        let active_sessions: i64 = row.get(3);
        outcomes[position] = Some(match refusal {
            None => AdmitOutcome::Allowed {
                session_id: row.get(2),
                active_sessions,
                started: row.get(4),
                watched_seconds: row.get(5),
                replaced: row.get::<_, i32>(6).max(0) as u32,
                limited: row.get::<_, i32>(7).max(0) as u32,
            },
            Some(code) => AdmitOutcome::Refused {
                refusal: Refusal::parse(code).ok_or_else(|| {
                    StoreError::Other(format!(
                        "playgate_admit_batch_v20: unknown refusal '{code}'"
                    ))
                })?,
                active_sessions,
            },
        });
    }
    outcomes
        .into_iter()
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| {
            StoreError::Other("playgate_admit_batch_v20 left an admission unanswered".into())
        })
}

/// One refresh answered from memory, to be written.
#[derive(Clone, Debug, PartialEq)]
pub struct Heartbeat {
    pub session_id: Uuid,
    /// How long ago the refresh was answered; the database's clock places it.
    pub age: Duration,
    pub hold: Duration,
    pub bytes: Option<i64>,
}

/// A row a heartbeat extended.
#[derive(Clone, Debug, PartialEq)]
pub struct Extended {
    pub session_id: Uuid,
    pub stream: String,
    /// Seconds watched since the row was last seen.
    pub watched_seconds: f64,
}

/// Writes a batch of heartbeats in one statement: each active row is seen
/// again and extended by its hold. Rows that ended or expired meanwhile are
/// left alone (and missing from the answer). Rows are locked in id order so
/// that two batches cannot deadlock.
pub async fn heartbeat(client: &Client, beats: &[Heartbeat]) -> Result<Vec<Extended>, StoreError> {
    if beats.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<Uuid> = beats.iter().map(|beat| beat.session_id).collect();
    let ages: Vec<f64> = beats.iter().map(|beat| seconds(beat.age)).collect();
    let holds: Vec<f64> = beats.iter().map(|beat| seconds(beat.hold)).collect();
    let bytes: Vec<Option<i64>> = beats.iter().map(|beat| beat.bytes).collect();
    let rows = client
        .query_hot(
            "WITH beat AS (
                SELECT id, now() - make_interval(secs => age) AS seen, hold, bytes
                  FROM unnest($1::uuid[], $2::float8[], $3::float8[], $4::int8[]) AS b(id, age, hold, bytes)),
             previous AS (
                SELECT s.id, s.last_seen_at FROM sessions s JOIN beat USING (id)
                 WHERE s.ended_at IS NULL AND s.expires_at > now()
                 ORDER BY s.id FOR UPDATE OF s)
             UPDATE sessions s
                SET last_seen_at = GREATEST(s.last_seen_at, beat.seen),
                    expires_at = GREATEST(s.expires_at, beat.seen + make_interval(secs => beat.hold)),
                    bytes = COALESCE(beat.bytes, s.bytes)
               FROM beat, previous
              WHERE s.id = beat.id AND previous.id = s.id
          RETURNING s.id, s.stream,
                    GREATEST(extract(epoch FROM beat.seen - previous.last_seen_at), 0)::float8",
            params![&ids, &ages, &holds, &bytes],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|row| Extended {
            session_id: row.get(0),
            stream: row.get(1),
            watched_seconds: row.get(2),
        })
        .collect())
}

/// An active session found by who is watching rather than by its key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActiveViewer {
    pub key: String,
    pub login: Option<String>,
    pub stream: String,
    /// The player's `X-Playback-Session-Id`, when its playlist request sent one.
    pub playback_id: Option<String>,
    /// The viewer cookie came back with a request of this session.
    pub cookie_seen: bool,
}

fn active_viewer(row: &tokio_postgres::Row) -> ActiveViewer {
    ActiveViewer {
        key: row.get(0),
        login: row.get(1),
        stream: row.get(2),
        playback_id: row.get(3),
        cookie_seen: row.get(4),
    }
}

/// The most recently seen active session of this dialect for the same stream,
/// client IP and user agent (a forward-auth HLS/DASH viewer fetching segments
/// without its token), among the sessions not bound to their player by a
/// playback session id or the viewer cookie (SPEC §3). The index holds the
/// user agent's MD5 (sql/V9), so the query names `md5(user_agent)` for it,
/// and the user agent for the answer.
pub async fn find_active_viewer(
    client: &Client,
    dialect: &str,
    stream: &str,
    client_ip: IpAddr,
    user_agent: &str,
) -> Result<Option<ActiveViewer>, StoreError> {
    let rows = client
        .query_hot(
            "SELECT key, login, stream, playback_id, cookie_seen FROM sessions
              WHERE stream = $1 AND ended_at IS NULL AND expires_at > now()
                AND dialect = $2 AND client_ip = $3 AND md5(user_agent) = md5($4) AND user_agent = $4
                AND playback_id IS NULL AND NOT cookie_seen
              ORDER BY last_seen_at DESC LIMIT 1",
            params![&stream, &dialect, &client_ip, &user_agent],
        )
        .await?;
    Ok(rows.first().map(active_viewer))
}

/// The active session of this dialect with this id (a viewer cookie names it).
pub async fn find_active_by_id(
    client: &Client,
    dialect: &str,
    id: Uuid,
) -> Result<Option<ActiveViewer>, StoreError> {
    let rows = client
        .query_hot(
            "SELECT key, login, stream, playback_id, cookie_seen FROM sessions
              WHERE id = $1 AND dialect = $2 AND ended_at IS NULL AND expires_at > now()",
            params![&id, &dialect],
        )
        .await?;
    Ok(rows.first().map(active_viewer))
}

/// The active session of this login (None: anonymous) under `key`, and
/// whether its player is bound to its viewer cookie: a signed link past its
/// window, or a `once` link, may only go on with such a session (SPEC §9),
/// never start another.
pub async fn active_of_key(
    client: &Client,
    key: &str,
    login: Option<&str>,
) -> Result<Option<(Uuid, bool)>, StoreError> {
    let rows = client
        .query_hot(
            "SELECT id, cookie_seen FROM sessions
              WHERE key = $1 AND ended_at IS NULL AND expires_at > now()
                AND login IS NOT DISTINCT FROM $2",
            params![&key, &login],
        )
        .await?;
    Ok(rows.first().map(|row| (row.get(0), row.get(1))))
}

/// The active session of this dialect and stream whose player sent this
/// `X-Playback-Session-Id` with its playlist.
pub async fn find_active_by_playback_id(
    client: &Client,
    dialect: &str,
    stream: &str,
    playback_id: &str,
) -> Result<Option<ActiveViewer>, StoreError> {
    let rows = client
        .query_hot(
            "SELECT key, login, stream, playback_id, cookie_seen FROM sessions
              WHERE stream = $1 AND playback_id = $2 AND ended_at IS NULL
                AND expires_at > now() AND dialect = $3
              ORDER BY last_seen_at DESC LIMIT 1",
            params![&stream, &playback_id, &dialect],
        )
        .await?;
    Ok(rows.first().map(active_viewer))
}

/// Binds an active session to its player: the playback session id its
/// playlist request sent (a newer one replaces it: the player restarted),
/// and/or that the viewer cookie came back. A change is announced to every
/// replica (sql/V11); true when something changed.
pub async fn bind_viewer(
    client: &Client,
    id: Uuid,
    playback_id: Option<&str>,
    cookie_seen: bool,
) -> Result<bool, StoreError> {
    let changed = client
        .execute_typed(
            "UPDATE sessions
                SET playback_id = COALESCE($2, playback_id), cookie_seen = cookie_seen OR $3
              WHERE id = $1 AND ended_at IS NULL
                AND (($2::text IS NOT NULL AND playback_id IS DISTINCT FROM $2)
                     OR ($3 AND NOT cookie_seen))",
            params![&id, &playback_id, &cookie_seen],
        )
        .await?;
    Ok(changed == 1)
}

/// A session ended by a stop.
#[derive(Clone, Debug, PartialEq)]
pub struct Stopped {
    pub session_id: Uuid,
    pub login: Option<String>,
    pub stream: String,
    /// Seconds watched since the session was last seen.
    pub watched_seconds: f64,
}

/// Ends the open session with this key (`stopped`). A session that had
/// already expired unnoticed ends as of its expiry and accrues no more time.
pub async fn stop(
    client: &Client,
    key: &str,
    bytes: Option<i64>,
) -> Result<Option<Stopped>, StoreError> {
    let rows = client
        .query_hot(
            "WITH previous AS (
                SELECT id, last_seen_at, LEAST(now(), expires_at) AS ended FROM sessions
                 WHERE key = $1 AND ended_at IS NULL FOR UPDATE)
             UPDATE sessions s
                SET ended_at = previous.ended, end_reason = 'stopped',
                    last_seen_at = GREATEST(s.last_seen_at, previous.ended), bytes = COALESCE($2, s.bytes)
               FROM previous
              WHERE s.id = previous.id
          RETURNING s.id, s.login, s.stream,
                    GREATEST(extract(epoch FROM previous.ended - previous.last_seen_at), 0)::float8",
            params![&key, &bytes],
        )
        .await?;
    Ok(rows.into_iter().next().map(|row| Stopped {
        session_id: row.get(0),
        login: row.get(1),
        stream: row.get(2),
        watched_seconds: row.get(3),
    }))
}

/// An admin ends a session; its key is refused for `block` (one session duration).
pub async fn kick<C: super::Db>(client: &C, id: Uuid, block: Duration) -> Result<bool, StoreError> {
    let ended = client
        .execute_typed(
            "UPDATE sessions
                SET ended_at = now(), end_reason = 'kicked', blocked_until = now() + make_interval(secs => $2)
              WHERE id = $1 AND ended_at IS NULL",
            params![&id, &seconds(block)],
        )
        .await?;
    Ok(ended == 1)
}

/// The sessions that account changes made in this transaction have ended
/// so far, through the triggers of sql/V20 (counted by sql/V23).
pub async fn ended_by_account_changes<C: super::Db>(client: &C) -> Result<u64, StoreError> {
    let ended: i64 = client
        .query_typed_one(
            "SELECT COALESCE(NULLIF(current_setting('playgate.kicked', true), ''), '0')::bigint",
            params![],
        )
        .await?
        .get(0);
    Ok(ended.max(0) as u64)
}

/// Ends every open session of a user (account deleted).
pub async fn end_all_for_user(
    client: &Client,
    login: &str,
    reason: &str,
) -> Result<u64, StoreError> {
    Ok(client
        .execute_typed(
            "UPDATE sessions SET ended_at = now(), end_reason = $2 WHERE login = $1 AND ended_at IS NULL",
            params![&login, &reason],
        )
        .await?)
}

#[derive(Debug, Default, PartialEq)]
pub struct SweepResult {
    /// False when another replica holds the sweep lock.
    pub ran: bool,
    pub timed_out: u64,
    /// Sessions ended because their user's or token's expiry passed, or
    /// admitted by a policy view that had not heard of a change (sql/V23).
    pub barred: u64,
    /// Seconds watched by the timed-out sessions since they were last seen, per stream.
    pub watched_by_stream: Vec<(String, f64)>,
    /// Ended sessions moved to `session_history`.
    pub moved: u64,
    /// Daily history partitions dropped (older than `history_days`).
    pub partitions_dropped: u64,
}

/// Ended sessions moved to the history per sweep at most: a backlog (after
/// an outage, or a mass kick) drains over a few sweeps instead of one long
/// transaction.
const MOVE_BATCH: i64 = 50_000;

/// How long a change that bars a user is remembered (sql/V23): its open
/// sessions are checked against the database at every sweep in between.
/// Far longer than a policy view takes to hear of a change, even when its
/// listener's connection died unseen (TCP keepalives find that in about
/// 30 s, then it reconnects and reads everything again).
const BAR_WINDOW_SECS: f64 = 120.0;

/// Ends the open sessions of lately barred logins (sql/V23) that the
/// database says their user may not have: deleted, disabled, expired, the
/// token gone or expired, or no package of the user holding the stream
/// (the tests of V20's triggers, which end those there are when the change
/// is made). What is left is an admission by a replica whose policy view
/// had not heard of the change yet, or one under way as it was made.
async fn end_stale_admissions(
    transaction: &tokio_postgres::Transaction<'_>,
) -> Result<u64, StoreError> {
    let ended = transaction
        .execute_typed(
            "UPDATE sessions s SET ended_at = now(), end_reason = 'kicked'
               FROM (SELECT DISTINCT login FROM session_bars
                      WHERE barred_at > now() - make_interval(secs => $1)) b
               LEFT JOIN users u ON u.login = b.login
              WHERE s.login = b.login AND s.ended_at IS NULL
                AND (u.id IS NULL
                     OR NOT u.enabled
                     OR u.expires_at <= now()
                     OR (s.token_hash IS NOT NULL
                         AND NOT EXISTS (SELECT 1 FROM tokens t
                                          WHERE t.user_id = u.id AND t.hash = s.token_hash
                                            AND (t.expires_at IS NULL OR t.expires_at > now())))
                     OR (EXISTS (SELECT 1 FROM user_packages up WHERE up.user_id = u.id)
                         AND NOT (s.packages && ARRAY(SELECT p.name FROM user_packages up
                                                        JOIN packages p ON p.id = up.package_id
                                                       WHERE up.user_id = u.id))))",
            params![&BAR_WINDOW_SECS],
        )
        .await?;
    transaction
        .execute_typed(
            "DELETE FROM session_bars WHERE barred_at <= now() - make_interval(secs => $1)",
            params![&BAR_WINDOW_SECS],
        )
        .await?;
    Ok(ended)
}

/// Marks sessions that were not refreshed in time as ended (`timeout`),
/// moves ended sessions into `session_history` (sql/V12), makes sure the
/// daily partitions around today exist and drops those older than
/// `history_days`, with the denial counts of those days. One replica at a
/// time.
///
/// A timed-out viewer is taken to have watched until its last answer stopped
/// holding (last seen + `session_duration`, at most its expiry): the grace
/// period is slack for late refreshes, not viewing time.
pub async fn sweep(
    client: &mut Client,
    history_days: u32,
    session_duration: Duration,
) -> Result<SweepResult, StoreError> {
    let transaction = client.transaction().await?;
    let locked: bool = transaction
        .query_typed_one("SELECT pg_try_advisory_xact_lock($1)", params![&SWEEP_LOCK])
        .await?
        .get(0);
    if !locked {
        return Ok(SweepResult::default());
    }
    let watched = transaction
        .query_typed(
            "WITH ended AS (
                UPDATE sessions
                   SET ended_at = LEAST(expires_at, last_seen_at + make_interval(secs => $1)),
                       end_reason = 'timeout'
                 WHERE ended_at IS NULL AND expires_at <= now()
             RETURNING stream, GREATEST(extract(epoch FROM ended_at - last_seen_at), 0)::float8 AS watched)
             SELECT stream, count(*), sum(watched)::float8 FROM ended GROUP BY stream",
            params![&seconds(session_duration)],
        )
        .await?;
    let timed_out = watched.iter().map(|row| row.get::<_, i64>(1) as u64).sum();
    // Accounts and tokens whose expiry has just passed: their sessions end
    // now (and their streamers are told, sql/V20), not at a refresh that
    // Astra never sends. A day back is far more than any session outlives
    // a refused refresh.
    let barred = transaction
        .execute_typed(
            "UPDATE sessions s SET ended_at = now(), end_reason = 'kicked'
               FROM users u
              WHERE s.login = u.login AND s.ended_at IS NULL
                AND u.expires_at <= now() AND u.expires_at > now() - interval '1 day'",
            params![],
        )
        .await?
        + transaction
            .execute_typed(
                "UPDATE sessions s SET ended_at = now(), end_reason = 'kicked'
                   FROM tokens t JOIN users u ON u.id = t.user_id
                  WHERE s.login = u.login AND s.token_hash = t.hash AND s.ended_at IS NULL
                    AND t.expires_at <= now() AND t.expires_at > now() - interval '1 day'",
                params![],
            )
            .await?;
    let barred = barred + end_stale_admissions(&transaction).await?;
    let watched_by_stream = watched.iter().map(|row| (row.get(0), row.get(2))).collect();
    // Yesterday (a session ended just before midnight, moved after it) to
    // the day after tomorrow, so a move never waits for a partition.
    transaction
        .query_typed_one(
            "SELECT playgate_history_partitions((now() AT TIME ZONE 'UTC')::date - 1,
                                                (now() AT TIME ZONE 'UTC')::date + 2)",
            params![],
        )
        .await?;
    let moved = transaction
        .execute_typed(
            "WITH moved AS (
                DELETE FROM sessions
                 WHERE id IN (SELECT id FROM sessions
                               WHERE ended_at IS NOT NULL AND (blocked_until IS NULL OR blocked_until <= now())
                               LIMIT $1)
             RETURNING id, key, login, stream, client_ip, protocol, dialect, streamer, user_agent,
                       started_at, last_seen_at, expires_at, ended_at, end_reason, bytes,
                       blocked_until, playback_id, cookie_seen, device, packages, country, asn,
                       token_hash)
             INSERT INTO session_history SELECT * FROM moved",
            params![&MOVE_BATCH],
        )
        .await?;
    // A `once` link's nonce is kept a day past its end: longer than any
    // PLAYGATE_LINK_SKEW, so the link is refused by its window by then.
    transaction
        .execute_typed(
            "DELETE FROM link_uses WHERE expires_at < now() - interval '1 day'",
            params![],
        )
        .await?;
    let partitions_dropped: i32 = transaction
        .query_typed_one(
            "SELECT playgate_purge_history(now() - make_interval(days => $1))",
            params![&(history_days as i32)],
        )
        .await?
        .get(0);
    // Denials by reason are kept as long as the history they sit beside.
    transaction
        .execute_typed(
            "DELETE FROM denial_counts WHERE minute < now() - make_interval(days => $1)",
            params![&(history_days as i32)],
        )
        .await?;
    // Drop calls are kept as long as the history, for the streamers page.
    transaction
        .execute_typed(
            "DELETE FROM streamer_calls WHERE finished_at < now() - make_interval(days => $1)",
            params![&(history_days as i32)],
        )
        .await?;
    // Webhook events and their attempts, as long as the history too.
    super::webhooks::purge(&transaction, history_days).await?;
    transaction.commit().await?;
    Ok(SweepResult {
        ran: true,
        timed_out,
        barred,
        watched_by_stream,
        moved,
        partitions_dropped: partitions_dropped as u64,
    })
}

/// A viewing session as stored (SPEC §4; the admin API's `Session`).
#[derive(Clone, Debug, serde::Serialize, utoipa::ToSchema)]
#[schema(as = Session)]
pub struct SessionRow {
    pub id: Uuid,
    /// Login; null for anonymous (allow-listed) viewers.
    pub user: Option<String>,
    pub stream: String,
    pub client_ip: String,
    pub protocol: String,
    pub dialect: String,
    pub streamer: String,
    pub user_agent: String,
    pub started_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    /// `stopped`, `timeout`, `kicked`, `limit` or `replaced`.
    pub end_reason: Option<String>,
    pub bytes: Option<i64>,
    /// What the viewer watches on (SPEC §1): the id its streamer, link or
    /// caller sent, else "<client ip> <user agent>".
    pub device: String,
    /// ISO 3166-1 alpha-2 code GeoIP gave the client address at the start,
    /// `XX` for an address it has no entry for; null without a country
    /// database (SPEC §10).
    pub country: Option<String>,
    /// Autonomous system number, 0 for no entry; null without an ASN database.
    pub asn: Option<i64>,
}

pub async fn get<C: super::Db>(client: &C, id: Uuid) -> Result<Option<SessionRow>, StoreError> {
    let row = client
        .query_typed_opt(
            "SELECT id, login, stream, host(client_ip), protocol, dialect, streamer, user_agent,
                    started_at, last_seen_at, expires_at, ended_at, end_reason, bytes, device,
                    country, asn
               FROM session_log WHERE id = $1 LIMIT 1",
            params![&id],
        )
        .await?;
    Ok(row.as_ref().map(session_row))
}

/// Which sessions an admin lists.
#[derive(Clone, Debug, Default)]
pub struct SessionFilter {
    /// Ended sessions (history, newest first) instead of active ones.
    pub ended: bool,
    pub login: Option<String>,
    pub stream: Option<String>,
    pub streamer: Option<String>,
    /// A piece of the login, the stream or the client address, in any case.
    pub search: Option<String>,
    /// When the session ended (history) or started (active) is in
    /// [from, to).
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    /// The order asked for; None: the state's own (oldest first, history newest first).
    pub sort: Option<SessionSort>,
}

/// What a session list may be ordered by (`?sort=`, `-` for descending).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionSort {
    pub key: SortKey,
    pub descending: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SortKey {
    Started,
    LastSeen,
    Ended,
    User,
    Stream,
    Bytes,
}

impl SessionSort {
    /// `started`, `last_seen`, `ended`, `user`, `stream`, `bytes`, each
    /// optionally after `-`; None for anything else.
    pub fn parse(text: &str) -> Option<SessionSort> {
        let (descending, name) = match text.strip_prefix('-') {
            Some(name) => (true, name),
            None => (false, text),
        };
        let key = match name {
            "started" => SortKey::Started,
            "last_seen" => SortKey::LastSeen,
            "ended" => SortKey::Ended,
            "user" => SortKey::User,
            "stream" => SortKey::Stream,
            "bytes" => SortKey::Bytes,
            _ => return None,
        };
        Some(SessionSort { key, descending })
    }

    /// The ORDER BY clause: ties by id, so pages never overlap.
    fn clause(self) -> &'static str {
        match (self.key, self.descending) {
            (SortKey::Started, false) => "started_at, id",
            (SortKey::Started, true) => "started_at DESC, id",
            (SortKey::LastSeen, false) => "last_seen_at, id",
            (SortKey::LastSeen, true) => "last_seen_at DESC, id",
            (SortKey::Ended, false) => "ended_at NULLS LAST, id",
            (SortKey::Ended, true) => "ended_at DESC NULLS LAST, id",
            (SortKey::User, false) => "login NULLS LAST, started_at, id",
            (SortKey::User, true) => "login DESC NULLS LAST, started_at, id",
            (SortKey::Stream, false) => "stream, started_at, id",
            (SortKey::Stream, true) => "stream DESC, started_at, id",
            (SortKey::Bytes, false) => "bytes NULLS FIRST, id",
            (SortKey::Bytes, true) => "bytes DESC NULLS LAST, id",
        }
    }
}

/// What `?q=` searches: the login, stream and client address as one lower
/// case text, the expression session history's trigram index is on (V22;
/// the two must stay the same). `\x01` between the fields keeps a match
/// inside one field: the admin API refuses control characters in a search. LIKE on text lowered
/// once also costs half what ILIKE does in a UTF-8 database, which lowers
/// the pattern again for every row (live sessions are scanned).
const SEARCH_TEXT: &str =
    "(lower(login) || E'\\x01' || lower(stream) || E'\\x01' || host(client_ip))";

/// One page of active sessions (oldest first) or of history (newest first),
/// and the total matching.
pub async fn list(
    client: &Client,
    filter: &SessionFilter,
    limit: i64,
    offset: i64,
) -> Result<(Vec<SessionRow>, i64), StoreError> {
    // History is spread over session_history and the rows the sweeper has
    // not moved yet; active sessions are all in `sessions`.
    let (table, state, order, time) = if filter.ended {
        (
            "session_log",
            "ended_at IS NOT NULL",
            "ended_at DESC, id",
            "ended_at",
        )
    } else {
        (
            "sessions",
            "ended_at IS NULL AND expires_at > now()",
            "started_at, id",
            "started_at",
        )
    };
    let order = filter.sort.map_or(order, SessionSort::clause);
    // A streamer as the session records it (the caller's address), or a
    // registered streamer's name: the sessions its networks called in.
    let condition = format!(
        "{state} AND ($1::text IS NULL OR login = $1) AND ($2::text IS NULL OR stream = $2)
         AND ($3::text IS NULL OR streamer = $3
              OR EXISTS (SELECT 1 FROM streamer_networks n
                          WHERE n.streamer = $3 AND n.network >>= playgate_try_inet({table}.streamer)))
         AND ($4::text IS NULL OR {SEARCH_TEXT} LIKE lower($4))
         AND ($5::timestamptz IS NULL OR {time} >= $5) AND ($6::timestamptz IS NULL OR {time} < $6)"
    );
    let search = filter.search.as_deref().map(super::users::contains_pattern);
    // A search of live sessions reads every live row (no index, above), so
    // one scan both counts and pages. Elsewhere indexes find the page, and
    // a window count would read every matching row of the history.
    let counted_in_page = !filter.ended && search.is_some();
    let count_column = if counted_in_page {
        ", count(*) OVER ()"
    } else {
        ""
    };
    let filters = params![
        &filter.login,
        &filter.stream,
        &filter.streamer,
        &search,
        &filter.from,
        &filter.to,
    ];
    let paged: Vec<_> = filters
        .iter()
        .cloned()
        .chain([super::sql::typed(&limit), super::sql::typed(&offset)])
        .collect();
    let rows = client
        .query_typed(
            &format!(
                "SELECT id, login, stream, host(client_ip), protocol, dialect, streamer, user_agent,
                        started_at, last_seen_at, expires_at, ended_at, end_reason, bytes, device,
                        country, asn{count_column}
                   FROM {table} WHERE {condition} ORDER BY {order} LIMIT $7 OFFSET $8"
            ),
            &paged,
        )
        .await?;
    let total: i64 = match rows.first() {
        // The window count is the last column.
        Some(row) if counted_in_page => row.get(row.len() - 1),
        None if counted_in_page && offset == 0 => 0,
        // Also a page past the end, where no row carries the count.
        _ => client
            .query_typed_one(
                &format!("SELECT count(*) FROM {table} WHERE {condition}"),
                filters,
            )
            .await?
            .get(0),
    };
    Ok((rows.iter().map(session_row).collect(), total))
}

fn session_row(row: &tokio_postgres::Row) -> SessionRow {
    SessionRow {
        id: row.get(0),
        user: row.get(1),
        stream: row.get(2),
        client_ip: row.get(3),
        protocol: row.get(4),
        dialect: row.get(5),
        streamer: row.get(6),
        user_agent: row.get(7),
        started_at: row.get(8),
        last_seen_at: row.get(9),
        expires_at: row.get(10),
        ended_at: row.get(11),
        end_reason: row.get(12),
        bytes: row.get(13),
        device: row.get(14),
        country: row.get(15),
        asn: row.get(16),
    }
}
