//! The sessions this replica answered for: a refresh of one of them is
//! answered from memory, and its heartbeat joins the next batch written to
//! PostgreSQL (`store::sessions::heartbeat`), one statement for all.
//!
//! An entry is only trusted while the row it stands for is known to be
//! active in PostgreSQL with room to spare (`margin`); the shared state stays
//! the database. Kicks, stops and timeouts remove entries: on this replica
//! directly, on the others through the `playgate_session_ended` notification,
//! and at the latest when a batch finds the row ended.

use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use uuid::Uuid;

/// Keys come from clients (session ids, user agents): a seeded hash, cheaper than SipHash.
type HashMap<K, V> = foldhash::HashMap<K, V>;

/// Beyond this many entries, those that can no longer answer are pruned.
const MAX_ENTRIES: usize = 200_000;
/// A session's row is written at most this often (or a quarter of its hold,
/// if shorter): every write updates the row and its indexes, and a player
/// fetching a segment a second would otherwise cost a row update a second.
/// The newest heartbeat is never dropped, only delayed.
const WRITE_SPACING: Duration = Duration::from_secs(5);

/// Who fetches a stream: how a forward-auth request without credentials (an
/// HLS segment) finds the session its playlist request started.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Viewer {
    pub dialect: &'static str,
    pub stream: String,
    pub client_ip: IpAddr,
    pub user_agent: String,
}

/// A viewer as a request names it, borrowed: a segment's lookup copies no
/// string.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ViewerRef<'a> {
    pub dialect: &'static str,
    pub stream: &'a str,
    pub client_ip: IpAddr,
    pub user_agent: &'a str,
}

impl Viewer {
    pub fn as_ref(&self) -> ViewerRef<'_> {
        ViewerRef {
            dialect: self.dialect,
            stream: &self.stream,
            client_ip: self.client_ip,
            user_agent: &self.user_agent,
        }
    }
}

/// What is known of one session after PostgreSQL admitted or refreshed it.
#[derive(Clone, Debug)]
pub struct Admitted {
    pub session_id: Uuid,
    pub login: Option<String>,
    pub viewer: Viewer,
    /// Session duration + grace: how far a heartbeat extends the row.
    pub hold: Duration,
    pub active_sessions: i64,
    /// Taken before the database was asked: the row's expiry is at least
    /// this + `hold`.
    pub asked_at: Instant,
}

/// One session's latest unwritten refresh.
#[derive(Clone, Debug, PartialEq)]
pub struct Beat {
    pub session_id: Uuid,
    pub seen_at: Instant,
    pub hold: Duration,
    pub bytes: Option<i64>,
}

/// A session found by what its player presents, or by who is watching.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    pub key: String,
    pub login: Option<String>,
    pub stream: String,
    pub playback_id: Option<String>,
    pub cookie_seen: bool,
}

/// A viewer's request continued from memory (`LiveSessions::continue_viewer`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Continued {
    pub login: Option<String>,
    pub hit: Hit,
    /// The heartbeat it replaced, for `LiveSessions::undo`.
    previous: Option<(Instant, Option<i64>)>,
}

/// A refresh answered from memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hit {
    pub session_id: Uuid,
    /// The user's count when this session was last written.
    pub active_sessions: i64,
}

struct Entry {
    session_id: Uuid,
    login: Option<String>,
    viewer: Viewer,
    hold: Duration,
    /// The row stays active in PostgreSQL at least until then.
    db_expires: Instant,
    /// When the row was last written (or asked for) by this replica.
    written_at: Instant,
    active_sessions: i64,
    pending: Option<(Instant, Option<i64>)>,
    /// The row's binding to its player, as far as this replica knows.
    playback_id: Option<String>,
    cookie_seen: bool,
    /// The database found this session by stream, client IP and user agent,
    /// so it was not bound then. Only such entries continue a viewer by
    /// IP here: a binding made elsewhere is announced (the session is
    /// forgotten, sql/V11), one this replica never saw made is not known.
    ip_continuable: bool,
}

impl Entry {
    /// This viewer's session, found by the database by client IP and bound
    /// to no player: a request without cookie or playback id continues it.
    fn continues(&self, viewer: ViewerRef<'_>) -> bool {
        self.viewer.as_ref() == viewer
            && self.ip_continuable
            && self.playback_id.is_none()
            && !self.cookie_seen
    }

    fn found(&self, key: &str) -> Found {
        Found {
            key: key.to_string(),
            login: self.login.clone(),
            stream: self.viewer.stream.clone(),
            playback_id: self.playback_id.clone(),
            cookie_seen: self.cookie_seen,
        }
    }
}

/// (dialect, stream, playback session id).
type PlaybackKey = (&'static str, String, String);

#[derive(Default)]
struct Inner {
    by_key: HashMap<String, Entry>,
    key_by_id: HashMap<Uuid, String>,
    /// By the viewer's seeded hash (`viewer_slot`), so that a lookup needs no
    /// owned `Viewer`; the entry's own viewer is compared on every hit, so
    /// two viewers sharing a slot only cost the earlier one a database lookup.
    latest_by_viewer: HashMap<u64, String>,
    viewer_seed: foldhash::fast::RandomState,
    key_by_playback: HashMap<PlaybackKey, String>,
    /// The size at which an admission next prunes (0: MAX_ENTRIES).
    prune_at: usize,
    /// Full scans by an admission so far (what `prune_at` keeps rare).
    admission_prunes: u64,
}

fn playback_key(viewer: &Viewer, playback_id: &str) -> PlaybackKey {
    (
        viewer.dialect,
        viewer.stream.clone(),
        playback_id.to_string(),
    )
}

impl Inner {
    fn viewer_slot(&self, viewer: ViewerRef<'_>) -> u64 {
        use std::hash::BuildHasher;
        self.viewer_seed.hash_one(viewer)
    }

    fn remove(&mut self, key: &str) -> Option<Entry> {
        let entry = self.by_key.remove(key)?;
        self.key_by_id.remove(&entry.session_id);
        let slot = self.viewer_slot(entry.viewer.as_ref());
        if self.latest_by_viewer.get(&slot).map(String::as_str) == Some(key) {
            self.latest_by_viewer.remove(&slot);
        }
        if let Some(id) = &entry.playback_id {
            self.key_by_playback
                .remove(&playback_key(&entry.viewer, id));
        }
        Some(entry)
    }

    fn bind(&mut self, key: &str, playback_id: Option<&str>, cookie_seen: bool) {
        let Some(entry) = self.by_key.get_mut(key) else {
            return;
        };
        entry.cookie_seen |= cookie_seen;
        let Some(id) = playback_id else {
            return;
        };
        if entry.playback_id.as_deref() == Some(id) {
            return;
        }
        let old = entry.playback_id.replace(id.to_string());
        let viewer = entry.viewer.clone();
        if let Some(old) = old {
            self.key_by_playback.remove(&playback_key(&viewer, &old));
        }
        self.key_by_playback
            .insert(playback_key(&viewer, id), key.to_string());
    }

    fn prune(&mut self, now: Instant, outage_grace: Duration) {
        let stale: Vec<String> = self
            .by_key
            .iter()
            .filter(|(_, entry)| entry.db_expires + outage_grace <= now && entry.pending.is_none())
            .map(|(key, _)| key.clone())
            .collect();
        for key in stale {
            self.remove(&key);
        }
    }
}

pub struct LiveSessions {
    inner: Mutex<Inner>,
    /// Answer from memory only while the row has at least this long to live:
    /// room for the next batch to extend it.
    margin: Duration,
    /// Through a database outage, a known session keeps playing this long
    /// past its row's expiry.
    outage_grace: Duration,
}

impl LiveSessions {
    pub fn new(margin: Duration, outage_grace: Duration) -> LiveSessions {
        LiveSessions {
            inner: Mutex::new(Inner::default()),
            margin,
            outage_grace,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Remembers a session PostgreSQL just admitted or refreshed.
    pub fn admitted(&self, key: &str, admitted: Admitted) {
        let mut inner = self.lock();
        // A prune scans every entry under the lock. When the sessions are
        // all still active (a flash crowd, long holds) it frees nothing, so
        // the next one waits until the map has doubled: one scan per
        // admission past the cap stalled every worker (issue 16, 330
        // admissions a second past 200 000 active sessions).
        if inner.by_key.len() >= inner.prune_at.max(MAX_ENTRIES) && !inner.by_key.contains_key(key)
        {
            inner.prune(Instant::now(), self.outage_grace);
            inner.admission_prunes += 1;
            inner.prune_at = inner.by_key.len().saturating_mul(2);
        }
        // A new row under this key (the old one ended): forget the old one.
        if inner
            .by_key
            .get(key)
            .is_some_and(|entry| entry.session_id != admitted.session_id)
        {
            inner.remove(key);
        }
        inner.key_by_id.insert(admitted.session_id, key.to_string());
        let slot = inner.viewer_slot(admitted.viewer.as_ref());
        inner.latest_by_viewer.insert(slot, key.to_string());
        let db_expires = admitted.asked_at + admitted.hold;
        let entry = inner.by_key.entry(key.to_string()).or_insert(Entry {
            session_id: admitted.session_id,
            login: admitted.login.clone(),
            viewer: admitted.viewer.clone(),
            hold: admitted.hold,
            db_expires,
            written_at: admitted.asked_at,
            active_sessions: admitted.active_sessions,
            pending: None,
            playback_id: None,
            cookie_seen: false,
            ip_continuable: false,
        });
        entry.written_at = entry.written_at.max(admitted.asked_at);
        entry.login = admitted.login;
        entry.hold = admitted.hold;
        entry.db_expires = entry.db_expires.max(db_expires);
        entry.active_sessions = admitted.active_sessions;
    }

    /// A refresh of a known session of the same user whose row is safely
    /// active: answered here, its heartbeat queued. None sends the refresh to
    /// PostgreSQL.
    pub fn refresh(
        &self,
        key: &str,
        login: Option<&str>,
        hold: Duration,
        bytes: Option<i64>,
    ) -> Option<Hit> {
        let now = Instant::now();
        let mut inner = self.lock();
        let entry = inner.by_key.get_mut(key)?;
        if entry.login.as_deref() != login
            || entry.hold != hold
            || entry.db_expires < now + self.margin
        {
            return None;
        }
        let bytes = bytes.or(entry.pending.and_then(|(_, bytes)| bytes));
        entry.pending = Some((now, bytes));
        Some(Hit {
            session_id: entry.session_id,
            active_sessions: entry.active_sessions,
        })
    }

    /// An HLS segment's fast path, under one lock: the latest session of
    /// this viewer that may be continued by client IP (`latest_of`) and
    /// answered from memory (`refresh`), its heartbeat queued. The caller
    /// re-checks the user and `undo`es the heartbeat if it denies.
    pub fn continue_viewer(&self, viewer: ViewerRef<'_>, hold: Duration) -> Option<Continued> {
        let now = Instant::now();
        let mut guard = self.lock();
        let slot = guard.viewer_slot(viewer);
        let inner = &mut *guard;
        let key = inner.latest_by_viewer.get(&slot)?;
        let entry = inner.by_key.get_mut(key)?;
        if !entry.continues(viewer) || entry.hold != hold || entry.db_expires < now + self.margin {
            return None;
        }
        let previous = entry.pending;
        entry.pending = Some((now, entry.pending.and_then(|(_, bytes)| bytes)));
        Some(Continued {
            login: entry.login.clone(),
            hit: Hit {
                session_id: entry.session_id,
                active_sessions: entry.active_sessions,
            },
            previous,
        })
    }

    /// Takes back the heartbeat `continue_viewer` queued (the request was
    /// denied after all): a denied viewer must not extend the row.
    pub fn undo(&self, continued: &Continued) {
        let mut inner = self.lock();
        let Some(key) = inner.key_by_id.get(&continued.hit.session_id).cloned() else {
            return;
        };
        if let Some(entry) = inner.by_key.get_mut(&key) {
            entry.pending = continued.previous;
        }
    }

    /// The session this replica holds under `key`, and whether its player
    /// is bound to its viewer cookie.
    pub fn session_of(&self, key: &str) -> Option<(Uuid, bool)> {
        let inner = self.lock();
        let entry = inner.by_key.get(key)?;
        Some((entry.session_id, entry.cookie_seen))
    }

    /// Through a database outage: the session under this key, if its row was
    /// active recently enough.
    pub fn outage_answer(&self, key: &str) -> Option<Uuid> {
        let inner = self.lock();
        inner
            .by_key
            .get(key)
            .filter(|entry| entry.db_expires + self.outage_grace > Instant::now())
            .map(|entry| entry.session_id)
    }

    /// The most recently answered session of this viewer that the database
    /// found continuable by client IP and that is bound to no player.
    pub fn latest_of(&self, viewer: ViewerRef<'_>) -> Option<Found> {
        let inner = self.lock();
        let key = inner.latest_by_viewer.get(&inner.viewer_slot(viewer))?;
        let entry = inner.by_key.get(key)?;
        (entry.continues(viewer) && self.is_safe(entry)).then(|| entry.found(key))
    }

    /// The session with this id (a viewer cookie names it).
    pub fn by_session(&self, session_id: Uuid) -> Option<Found> {
        let inner = self.lock();
        let key = inner.key_by_id.get(&session_id)?;
        let entry = inner.by_key.get(key)?;
        self.is_safe(entry).then(|| entry.found(key))
    }

    /// The session of this stream whose player sent this playback session id.
    pub fn by_playback(&self, dialect: &'static str, stream: &str, id: &str) -> Option<Found> {
        let inner = self.lock();
        let key = inner
            .key_by_playback
            .get(&(dialect, stream.to_string(), id.to_string()))?;
        let entry = inner.by_key.get(key)?;
        self.is_safe(entry).then(|| entry.found(key))
    }

    /// The row is known to stay active long enough to answer from memory.
    fn is_safe(&self, entry: &Entry) -> bool {
        entry.db_expires > Instant::now() + self.margin
    }

    /// After a continued request was allowed: what its session's row is
    /// known to be bound to (`bound`), and, when it was found by client IP
    /// (bound to no player), that it may go on being found so. One lock.
    pub fn continued(
        &self,
        key: &str,
        playback_id: Option<&str>,
        cookie_seen: bool,
        found_by_ip: bool,
    ) {
        let mut inner = self.lock();
        if let (true, Some(entry)) = (found_by_ip, inner.by_key.get_mut(key)) {
            entry.ip_continuable = true;
        }
        inner.bind(key, playback_id, cookie_seen);
    }

    /// What the row's binding is known to be (read from or written to the
    /// database): a playback session id, the cookie seen.
    pub fn bound(&self, key: &str, playback_id: Option<&str>, cookie_seen: bool) {
        self.lock().bind(key, playback_id, cookie_seen);
    }

    /// The binding this replica knows of a session: (playback id, cookie seen).
    pub fn binding_of(&self, key: &str) -> Option<(Option<String>, bool)> {
        let inner = self.lock();
        let entry = inner.by_key.get(key)?;
        Some((entry.playback_id.clone(), entry.cookie_seen))
    }

    /// A stop on this replica.
    pub fn forget_key(&self, key: &str) {
        self.lock().remove(key);
    }

    /// A session ended anywhere (kicked, stopped, timed out, limit).
    pub fn forget_session(&self, session_id: Uuid) {
        let mut inner = self.lock();
        if let Some(key) = inner.key_by_id.get(&session_id).cloned() {
            inner.remove(&key);
        }
    }

    /// All sessions of a user (the account was deleted).
    pub fn forget_login(&self, login: &str) {
        let mut inner = self.lock();
        let keys: Vec<String> = inner
            .by_key
            .iter()
            .filter(|(_, entry)| entry.login.as_deref() == Some(login))
            .map(|(key, _)| key.clone())
            .collect();
        for key in keys {
            inner.remove(&key);
        }
    }

    /// At most `max` of the queued heartbeats due for a batch: one per
    /// session, of sessions not written for `WRITE_SPACING`, those whose rows
    /// expire first first. Bounded, so that a slow database gets batches it
    /// can finish in time instead of ever larger ones (a refresh only ever
    /// replaces its session's queued beat, so the queue is at most one beat
    /// per known session).
    pub fn take_beats(&self, max: usize) -> Vec<Beat> {
        let mut inner = self.lock();
        let now = Instant::now();
        inner.prune(now, self.outage_grace);
        let mut due: Vec<(Instant, &mut Entry)> = inner
            .by_key
            .values_mut()
            .filter(|entry| {
                let spacing = WRITE_SPACING.min(entry.hold / 4);
                entry.pending.is_some() && now >= entry.written_at + spacing
            })
            .map(|entry| (entry.db_expires, entry))
            .collect();
        if due.len() > max {
            due.select_nth_unstable_by_key(max, |(expires, _)| *expires);
            due.truncate(max);
        }
        due.into_iter()
            .filter_map(|(_, entry)| {
                entry.written_at = now;
                let (seen_at, bytes) = entry.pending.take()?;
                Some(Beat {
                    session_id: entry.session_id,
                    seen_at,
                    hold: entry.hold,
                    bytes,
                })
            })
            .collect()
    }

    /// After a batch: the rows PostgreSQL extended live on (to their new
    /// expiry); the others ended meanwhile and are forgotten, so that their
    /// next refresh is decided by the database.
    pub fn written(&self, beats: &[Beat], extended: &[Uuid]) {
        let extended: std::collections::HashSet<&Uuid> = extended.iter().collect();
        let mut inner = self.lock();
        for beat in beats {
            let Some(key) = inner.key_by_id.get(&beat.session_id).cloned() else {
                continue;
            };
            if extended.contains(&beat.session_id) {
                if let Some(entry) = inner.by_key.get_mut(&key) {
                    entry.db_expires = entry.db_expires.max(beat.seen_at + beat.hold);
                }
            } else {
                inner.remove(&key);
            }
        }
    }

    /// After a failed batch: the beats wait for the next one (unless a newer
    /// refresh replaced them).
    pub fn unwritten(&self, beats: Vec<Beat>) {
        let mut inner = self.lock();
        for beat in beats {
            let Some(key) = inner.key_by_id.get(&beat.session_id).cloned() else {
                continue;
            };
            if let Some(entry) = inner.by_key.get_mut(&key) {
                if entry.pending.is_none() {
                    entry.pending = Some((beat.seen_at, beat.bytes));
                }
                // Due again at the next batch.
                entry.written_at = entry
                    .written_at
                    .checked_sub(WRITE_SPACING)
                    .unwrap_or(entry.written_at);
            }
        }
    }

    pub fn clear(&self) {
        *self.lock() = Inner::default();
    }

    pub fn len(&self) -> usize {
        self.lock().by_key.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOLD: Duration = Duration::from_secs(90);
    const BATCH: usize = 1000;

    fn live() -> LiveSessions {
        LiveSessions::new(Duration::from_secs(1), Duration::from_secs(300))
    }

    fn viewer(stream: &str) -> Viewer {
        Viewer {
            dialect: "forward-auth",
            stream: stream.into(),
            client_ip: "192.0.2.7".parse().unwrap(),
            user_agent: "VLC".into(),
        }
    }

    fn admitted(id: Uuid, login: Option<&str>, asked_at: Instant, hold: Duration) -> Admitted {
        Admitted {
            session_id: id,
            login: login.map(str::to_string),
            viewer: viewer("news"),
            hold,
            active_sessions: 1,
            asked_at,
        }
    }

    /// Admitted long enough ago for its first heartbeat to be due.
    fn a_while_ago() -> Instant {
        Instant::now() - WRITE_SPACING - Duration::from_millis(1)
    }

    #[test]
    fn refresh_is_answered_and_queues_one_beat_per_session() {
        let live = live();
        let id = Uuid::new_v4();
        live.admitted("k", admitted(id, Some("alice"), a_while_ago(), HOLD));
        for bytes in [Some(10), None, Some(30)] {
            let hit = live.refresh("k", Some("alice"), HOLD, bytes).unwrap();
            assert_eq!(hit.session_id, id);
        }
        let beats = live.take_beats(BATCH);
        assert_eq!(beats.len(), 1);
        assert_eq!(beats[0].bytes, Some(30));
        assert!(live.take_beats(BATCH).is_empty(), "a beat is taken once");
    }

    #[test]
    fn a_viewer_continued_from_memory_queues_a_beat_that_a_denial_takes_back() {
        let live = live();
        let id = Uuid::new_v4();
        live.admitted("k", admitted(id, Some("alice"), a_while_ago(), HOLD));
        // Not yet found by IP in the database: it may be bound elsewhere.
        assert_eq!(live.continue_viewer(viewer("news").as_ref(), HOLD), None);
        live.continued("k", None, false, true);
        assert_eq!(live.continue_viewer(viewer("sport").as_ref(), HOLD), None);
        assert_eq!(
            live.continue_viewer(viewer("news").as_ref(), HOLD / 2),
            None,
            "another hold goes to the database"
        );
        let continued = live.continue_viewer(viewer("news").as_ref(), HOLD).unwrap();
        assert_eq!(
            (continued.login.as_deref(), continued.hit.session_id),
            (Some("alice"), id)
        );
        assert_eq!(live.take_beats(BATCH).len(), 1);
        // Denied after the user's re-check: no heartbeat extends the row.
        let denied = live.continue_viewer(viewer("news").as_ref(), HOLD).unwrap();
        live.undo(&denied);
        assert!(live.lock().by_key["k"].pending.is_none());
        // Bound to its player: no longer continued by IP.
        live.bound("k", None, true);
        assert_eq!(live.continue_viewer(viewer("news").as_ref(), HOLD), None);
    }

    #[test]
    fn a_row_is_written_at_most_once_per_spacing() {
        let live = live();
        live.admitted("k", admitted(Uuid::new_v4(), None, Instant::now(), HOLD));
        live.refresh("k", None, HOLD, None).unwrap();
        assert!(live.take_beats(BATCH).is_empty(), "just written");
        // A short hold writes sooner: a quarter of it.
        let hold = Duration::from_millis(3200);
        live.admitted(
            "short",
            admitted(Uuid::new_v4(), None, Instant::now(), hold),
        );
        live.refresh("short", None, hold, None).unwrap();
        assert!(live.take_beats(BATCH).is_empty());
        std::thread::sleep(hold / 4);
        assert_eq!(live.take_beats(BATCH).len(), 1);
    }

    #[test]
    fn another_user_or_an_unknown_key_goes_to_the_database() {
        let live = live();
        live.admitted(
            "k",
            admitted(Uuid::new_v4(), Some("alice"), Instant::now(), HOLD),
        );
        assert!(live.refresh("k", Some("bob"), HOLD, None).is_none());
        assert!(live.refresh("k", None, HOLD, None).is_none());
        assert!(live.refresh("other", Some("alice"), HOLD, None).is_none());
    }

    #[test]
    fn a_row_close_to_its_expiry_goes_to_the_database() {
        let live = live();
        // Admitted long ago: the row has less than the margin left.
        let asked_at = Instant::now() - (HOLD - Duration::from_millis(500));
        live.admitted("k", admitted(Uuid::new_v4(), Some("alice"), asked_at, HOLD));
        assert!(live.refresh("k", Some("alice"), HOLD, None).is_none());
        // A session whose hold is shorter than the margin is never answered here.
        live.admitted(
            "short",
            admitted(
                Uuid::new_v4(),
                None,
                Instant::now(),
                Duration::from_millis(900),
            ),
        );
        assert!(live
            .refresh("short", None, Duration::from_millis(900), None)
            .is_none());
    }

    #[test]
    fn written_beats_extend_and_ended_rows_are_forgotten() {
        let live = live();
        let (kept, ended) = (Uuid::new_v4(), Uuid::new_v4());
        let asked_at = Instant::now() - (HOLD - Duration::from_secs(2));
        live.admitted("kept", admitted(kept, None, asked_at, HOLD));
        live.admitted("ended", admitted(ended, None, asked_at, HOLD));
        live.refresh("kept", None, HOLD, None).unwrap();
        live.refresh("ended", None, HOLD, None).unwrap();
        let beats = live.take_beats(BATCH);
        live.written(&beats, &[kept]);
        assert!(live.refresh("ended", None, HOLD, None).is_none());
        // Extended from the beat: far from its expiry now.
        std::thread::sleep(Duration::from_millis(1100));
        assert!(live.refresh("kept", None, HOLD, None).is_some());
    }

    #[test]
    fn failed_batches_keep_their_beats() {
        let live = live();
        live.admitted("k", admitted(Uuid::new_v4(), None, a_while_ago(), HOLD));
        live.refresh("k", None, HOLD, Some(5)).unwrap();
        let beats = live.take_beats(BATCH);
        live.unwritten(beats.clone());
        assert_eq!(live.take_beats(BATCH), beats);
    }

    #[test]
    fn batches_are_bounded_and_the_soonest_to_expire_go_first() {
        let live = live();
        let now = Instant::now();
        let mut ids = Vec::new();
        for n in 0..10u64 {
            let id = Uuid::new_v4();
            ids.push(id);
            // Asked earlier = its row expires earlier.
            let asked_at = now - Duration::from_secs(60 - n);
            live.admitted(&format!("k{n}"), admitted(id, None, asked_at, HOLD));
            live.refresh(&format!("k{n}"), None, HOLD, None).unwrap();
        }
        let first = live.take_beats(4);
        let mut taken: Vec<Uuid> = first.iter().map(|beat| beat.session_id).collect();
        taken.sort();
        let mut soonest = ids[..4].to_vec();
        soonest.sort();
        assert_eq!(taken, soonest);
        // A failed batch does not make the next one bigger.
        live.unwritten(first);
        assert_eq!(live.take_beats(4).len(), 4);
        assert_eq!(live.take_beats(100).len(), 6);
    }

    #[test]
    fn ended_sessions_are_forgotten_by_id_key_and_login() {
        let live = live();
        let (a, b, c) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        live.admitted("a", admitted(a, Some("alice"), Instant::now(), HOLD));
        live.admitted("b", admitted(b, Some("bob"), Instant::now(), HOLD));
        live.admitted("c", admitted(c, Some("bob"), Instant::now(), HOLD));
        live.forget_session(a);
        live.forget_key("b");
        assert!(live.refresh("a", Some("alice"), HOLD, None).is_none());
        assert!(live.refresh("b", Some("bob"), HOLD, None).is_none());
        assert_eq!(live.len(), 1);
        live.forget_login("bob");
        assert!(live.is_empty());
    }

    #[test]
    fn the_latest_session_of_a_viewer_is_found_once_the_database_found_it() {
        let live = live();
        live.admitted(
            "old",
            admitted(Uuid::new_v4(), Some("alice"), Instant::now(), HOLD),
        );
        live.admitted(
            "new",
            admitted(Uuid::new_v4(), Some("alice"), Instant::now(), HOLD),
        );
        // Admitted here, but not yet found by IP in the database: it may be
        // bound elsewhere.
        assert_eq!(live.latest_of(viewer("news").as_ref()), None);
        live.continued("new", None, false, true);
        let found = live.latest_of(viewer("news").as_ref()).unwrap();
        assert_eq!(
            (found.key.as_str(), found.login.as_deref()),
            ("new", Some("alice"))
        );
        // Bound to its player: never continued by IP again.
        live.bound("new", None, true);
        assert_eq!(live.latest_of(viewer("news").as_ref()), None);
        live.forget_key("new");
        assert_eq!(live.latest_of(viewer("news").as_ref()), None);
        assert_eq!(live.latest_of(viewer("sport").as_ref()), None);
    }

    #[test]
    fn sessions_are_found_by_id_and_playback_id() {
        let live = live();
        let id = Uuid::new_v4();
        live.admitted("k", admitted(id, Some("alice"), Instant::now(), HOLD));
        assert_eq!(live.by_session(id).unwrap().key, "k");
        assert!(live.by_session(Uuid::new_v4()).is_none());
        assert!(live.by_playback("forward-auth", "news", "p1").is_none());
        live.bound("k", Some("p1"), false);
        assert_eq!(
            live.by_playback("forward-auth", "news", "p1").unwrap().key,
            "k"
        );
        assert!(live.by_playback("forward-auth", "sport", "p1").is_none());
        // A restarted player's new id replaces the old one.
        live.bound("k", Some("p2"), false);
        assert!(live.by_playback("forward-auth", "news", "p1").is_none());
        assert_eq!(live.binding_of("k"), Some((Some("p2".to_string()), false)));
        live.forget_session(id);
        assert!(live.by_playback("forward-auth", "news", "p2").is_none());
        assert!(live.by_session(id).is_none());
    }

    #[test]
    fn a_new_row_under_a_known_key_replaces_the_old_one() {
        let live = live();
        let (old, new) = (Uuid::new_v4(), Uuid::new_v4());
        live.admitted("k", admitted(old, None, Instant::now(), HOLD));
        live.admitted("k", admitted(new, None, Instant::now(), HOLD));
        // The old row's end notification must not forget the new one.
        live.forget_session(old);
        assert_eq!(live.refresh("k", None, HOLD, None).unwrap().session_id, new);
    }

    #[test]
    fn admissions_past_the_cap_prune_rarely_and_keep_active_sessions() {
        let live = live();
        let now = Instant::now();
        let hold = Duration::from_secs(3600);
        for i in 0..MAX_ENTRIES + 5_000 {
            live.admitted(
                &format!("k{i}"),
                admitted(Uuid::new_v4(), Some("u"), now, hold),
            );
        }
        assert_eq!(live.len(), MAX_ENTRIES + 5_000, "active sessions are kept");
        assert_eq!(
            live.lock().admission_prunes,
            1,
            "one scan, not one per admission"
        );
    }

    #[test]
    fn outage_answers_last_past_the_row_expiry_for_the_grace() {
        let live = LiveSessions::new(Duration::from_secs(1), Duration::from_secs(300));
        let asked_at = Instant::now() - HOLD - Duration::from_secs(10);
        live.admitted("k", admitted(Uuid::new_v4(), None, asked_at, HOLD));
        assert!(live.refresh("k", None, HOLD, None).is_none());
        assert!(live.outage_answer("k").is_some());
        let none = LiveSessions::new(Duration::from_secs(1), Duration::ZERO);
        none.admitted("k", admitted(Uuid::new_v4(), None, asked_at, HOLD));
        assert!(none.outage_answer("k").is_none());
    }
}
