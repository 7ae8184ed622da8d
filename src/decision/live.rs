//! The sessions this replica answered for: a refresh of one of them is
//! answered from memory, and its heartbeat joins the next batch written to
//! PostgreSQL (`store::sessions::heartbeat`), one statement for all.
//!
//! An entry is only trusted while the row it stands for is known to be
//! active in PostgreSQL with room to spare (`margin`); the shared state stays
//! the database. Kicks, stops and timeouts remove entries: on this replica
//! directly, on the others through the `playgate_session_ended` notification,
//! and at the latest when a batch finds the row ended.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use uuid::Uuid;

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
}

#[derive(Default)]
struct Inner {
    by_key: HashMap<String, Entry>,
    key_by_id: HashMap<Uuid, String>,
    latest_by_viewer: HashMap<Viewer, String>,
}

impl Inner {
    fn remove(&mut self, key: &str) -> Option<Entry> {
        let entry = self.by_key.remove(key)?;
        self.key_by_id.remove(&entry.session_id);
        if self.latest_by_viewer.get(&entry.viewer).map(String::as_str) == Some(key) {
            self.latest_by_viewer.remove(&entry.viewer);
        }
        Some(entry)
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
        if inner.by_key.len() >= MAX_ENTRIES && !inner.by_key.contains_key(key) {
            inner.prune(Instant::now(), self.outage_grace);
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
        inner
            .latest_by_viewer
            .insert(admitted.viewer.clone(), key.to_string());
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

    /// The key and login of the most recently answered session of this viewer.
    pub fn latest_of(&self, viewer: &Viewer) -> Option<(String, Option<String>)> {
        let inner = self.lock();
        let key = inner.latest_by_viewer.get(viewer)?;
        let entry = inner.by_key.get(key)?;
        (entry.db_expires > Instant::now() + self.margin)
            .then(|| (key.clone(), entry.login.clone()))
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

    /// The queued heartbeats due for a batch: one per session, of sessions
    /// not written for `WRITE_SPACING`.
    pub fn take_beats(&self) -> Vec<Beat> {
        let mut inner = self.lock();
        let now = Instant::now();
        inner.prune(now, self.outage_grace);
        inner
            .by_key
            .values_mut()
            .filter_map(|entry| {
                let spacing = WRITE_SPACING.min(entry.hold / 4);
                if entry.pending.is_none() || now < entry.written_at + spacing {
                    return None;
                }
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
        let beats = live.take_beats();
        assert_eq!(beats.len(), 1);
        assert_eq!(beats[0].bytes, Some(30));
        assert!(live.take_beats().is_empty(), "a beat is taken once");
    }

    #[test]
    fn a_row_is_written_at_most_once_per_spacing() {
        let live = live();
        live.admitted("k", admitted(Uuid::new_v4(), None, Instant::now(), HOLD));
        live.refresh("k", None, HOLD, None).unwrap();
        assert!(live.take_beats().is_empty(), "just written");
        // A short hold writes sooner: a quarter of it.
        let hold = Duration::from_millis(3200);
        live.admitted(
            "short",
            admitted(Uuid::new_v4(), None, Instant::now(), hold),
        );
        live.refresh("short", None, hold, None).unwrap();
        assert!(live.take_beats().is_empty());
        std::thread::sleep(hold / 4);
        assert_eq!(live.take_beats().len(), 1);
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
        let beats = live.take_beats();
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
        let beats = live.take_beats();
        live.unwritten(beats.clone());
        assert_eq!(live.take_beats(), beats);
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
    fn the_latest_session_of_a_viewer_is_found() {
        let live = live();
        live.admitted(
            "old",
            admitted(Uuid::new_v4(), Some("alice"), Instant::now(), HOLD),
        );
        live.admitted(
            "new",
            admitted(Uuid::new_v4(), Some("alice"), Instant::now(), HOLD),
        );
        assert_eq!(
            live.latest_of(&viewer("news")),
            Some(("new".to_string(), Some("alice".to_string())))
        );
        live.forget_key("new");
        assert_eq!(live.latest_of(&viewer("news")), None);
        assert_eq!(live.latest_of(&viewer("sport")), None);
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
