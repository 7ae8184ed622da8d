//! GeoIP lookups (SPEC §10): the country and the ASN of a client address,
//! from MaxMind-format database files the operator supplies
//! (`PLAYGATE_GEOIP_COUNTRY_DB`, `PLAYGATE_GEOIP_ASN_DB`). playgate downloads
//! nothing; a file that changes on disk is loaded again by the watcher, and a
//! replacement that does not load leaves the previous one in force.
//!
//! Each database is read whole into memory (no mmap: a file replaced or
//! truncated under a mapping would fault the process) and kept behind an
//! `Arc`, swapped whole on reload: a lookup holds the lock only to clone it.

use std::fmt;
use std::fs;
use std::io::{self, Read};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use maxminddb::{MaxMindDbError, Reader, WithinOptions};
use rustc_hash::FxHashSet;
use serde::{Deserialize, Deserializer};

use crate::background::{self, StopSignal};
use crate::domain::canonical_ip;

/// How often the service looks at the files: a change is in force well
/// within the 60 s SPEC §10 allows.
pub const WATCH_INTERVAL: Duration = Duration::from_secs(10);

/// What a lookup found (the decision's own type: `XX` and 0 when nothing
/// is known, SPEC §10).
pub use crate::domain::Geo;

const UNKNOWN_COUNTRY: [u8; 2] = Geo::UNKNOWN.country;

/// Which of the two databases, and the setting that names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DbKind {
    Country,
    Asn,
}

impl DbKind {
    pub fn variable(self) -> &'static str {
        match self {
            DbKind::Country => "PLAYGATE_GEOIP_COUNTRY_DB",
            DbKind::Asn => "PLAYGATE_GEOIP_ASN_DB",
        }
    }
}

/// Why a database file could not be used.
#[derive(Debug)]
pub enum Problem {
    Missing,
    Unreadable(io::Error),
    NotMaxMindDb(MaxMindDbError),
    /// A well-formed file without the fields this variable is for (an ASN
    /// file named as the country one would make every address unknown).
    NoData(DbKind),
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Missing => f.write_str("no such file"),
            Problem::Unreadable(e) => write!(f, "cannot be read: {e}"),
            Problem::NotMaxMindDb(e) => write!(f, "not a MaxMind DB (.mmdb) file: {e}"),
            Problem::NoData(DbKind::Country) => f.write_str(
                "no record has a country code (country.iso_code, registered_country.iso_code \
                 or country_code): not a country database",
            ),
            Problem::NoData(DbKind::Asn) => {
                f.write_str("no record has an autonomous_system_number: not an ASN database")
            }
        }
    }
}

/// A database that cannot be opened, named by its variable and path.
#[derive(Debug, thiserror::Error)]
#[error("{}: {}: {problem}", .kind.variable(), .path.display())]
pub struct GeoIpError {
    pub kind: DbKind,
    pub path: PathBuf,
    pub problem: Problem,
}

impl GeoIpError {
    pub fn variable(&self) -> &'static str {
        self.kind.variable()
    }
}

/// What `reload_if_changed` did with one database.
#[derive(Debug, PartialEq, Eq)]
pub enum Reload {
    NotConfigured,
    Unchanged,
    Reloaded,
    /// The file changed but does not load: the previous database stays in
    /// force (and the warning is logged once per change, not every check).
    KeptPrevious {
        error: String,
    },
}

/// What `reload_if_changed` did, per database.
#[derive(Debug, PartialEq, Eq)]
pub struct ReloadOutcome {
    pub country: Reload,
    pub asn: Reload,
}

/// A file's identity as far as reloading goes: a replacement (rename or
/// copy over) changes its modification time or its length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
}

type Db = Arc<Reader<Vec<u8>>>;

/// One configured database file.
struct Source {
    kind: DbKind,
    path: PathBuf,
    reader: RwLock<Db>,
    /// What the last check saw (None: the file was missing); held for the
    /// whole of a reload, so that two checks never load the same file twice.
    seen: Mutex<Option<Stamp>>,
}

impl Source {
    fn open(kind: DbKind, path: &Path) -> Result<Source, GeoIpError> {
        let (reader, stamp) = load(kind, path)?;
        log_loaded(kind, path, &reader, "loaded");
        Ok(Source {
            kind,
            path: path.to_path_buf(),
            reader: RwLock::new(Arc::new(reader)),
            seen: Mutex::new(Some(stamp)),
        })
    }

    fn current(&self) -> Db {
        Arc::clone(&self.reader.read().unwrap_or_else(PoisonError::into_inner))
    }

    fn reload_if_changed(&self) -> Reload {
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        let now = match stamp_of(&self.path) {
            Ok(stamp) => Some(stamp),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => {
                // Not remembered: a file that cannot even be examined is
                // looked at again at the next check.
                return self.keep_previous(Problem::Unreadable(e));
            }
        };
        if now == *seen {
            return Reload::Unchanged;
        }
        *seen = now;
        if now.is_none() {
            return self.keep_previous(Problem::Missing);
        }
        match load(self.kind, &self.path) {
            Ok((reader, stamp)) => {
                // The stamp of what was read, should the file have changed
                // again between the check and the read.
                *seen = Some(stamp);
                log_loaded(self.kind, &self.path, &reader, "reloaded");
                *self.reader.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(reader);
                Reload::Reloaded
            }
            Err(e) => self.keep_previous(e.problem),
        }
    }

    fn keep_previous(&self, problem: Problem) -> Reload {
        let error = GeoIpError {
            kind: self.kind,
            path: self.path.clone(),
            problem,
        };
        log::warn!("{error}; the database loaded before stays in force");
        Reload::KeptPrevious {
            error: error.to_string(),
        }
    }
}

fn stamp_of(path: &Path) -> io::Result<Stamp> {
    let metadata = fs::metadata(path)?;
    Ok(Stamp {
        modified: metadata.modified().ok(),
        len: metadata.len(),
    })
}

/// Reads the whole file and checks every record of it (`check_records`).
fn load(kind: DbKind, path: &Path) -> Result<(Reader<Vec<u8>>, Stamp), GeoIpError> {
    let error = |problem| GeoIpError {
        kind,
        path: path.to_path_buf(),
        problem,
    };
    let io_error = |e: io::Error| {
        error(match e.kind() {
            io::ErrorKind::NotFound => Problem::Missing,
            _ => Problem::Unreadable(e),
        })
    };
    let mut file = fs::File::open(path).map_err(io_error)?;
    let metadata = file.metadata().map_err(io_error)?;
    let stamp = Stamp {
        modified: metadata.modified().ok(),
        len: metadata.len(),
    };
    let mut bytes = Vec::with_capacity(metadata.len() as usize);
    file.read_to_end(&mut bytes).map_err(io_error)?;
    let reader = Reader::from_source(bytes).map_err(|e| error(Problem::NotMaxMindDb(e)))?;
    check_records(kind, &reader).map_err(error)?;
    Ok((reader, stamp))
}

/// Walks the whole search tree and decodes each distinct record the way a
/// lookup does, so that a damaged file fails at load rather than on some
/// lookups later. (`Reader::verify` would also refuse the ip-location-db
/// files, whose metadata has an empty description.)
fn check_records(kind: DbKind, reader: &Reader<Vec<u8>>) -> Result<(), Problem> {
    let mut decoded = FxHashSet::default();
    let mut useful = false;
    let networks = reader
        .networks(WithinOptions::default())
        .map_err(Problem::NotMaxMindDb)?;
    for found in networks {
        let found = found.map_err(Problem::NotMaxMindDb)?;
        // Many networks share one record: decode it once.
        match found.offset() {
            Some(offset) if decoded.insert(offset) => {}
            _ => continue,
        }
        useful |= match kind {
            DbKind::Country => found
                .decode::<CountryRecord<'_>>()
                .map_err(Problem::NotMaxMindDb)?
                .and_then(|record| record.code())
                .is_some(),
            DbKind::Asn => found
                .decode::<AsnRecord>()
                .map_err(Problem::NotMaxMindDb)?
                .and_then(|record| record.autonomous_system_number)
                .is_some_and(|asn| asn != 0),
        };
    }
    if useful {
        Ok(())
    } else {
        Err(Problem::NoData(kind))
    }
}

/// Where the file is and which data it holds; nothing from its records.
fn log_loaded(kind: DbKind, path: &Path, reader: &Reader<Vec<u8>>, what: &str) {
    let metadata = reader.metadata();
    let built = i64::try_from(metadata.build_epoch)
        .ok()
        .and_then(|epoch| chrono::DateTime::from_timestamp(epoch, 0))
        .map_or_else(|| metadata.build_epoch.to_string(), |t| t.to_rfc3339());
    log::info!(
        "GeoIP: {what} {} {} ({}, IPv{}, built {built})",
        kind.variable(),
        path.display(),
        metadata.database_type,
        metadata.ip_version,
    );
}

/// The fields of a country record in either layout: MaxMind GeoIP2/GeoLite2
/// (`country.iso_code`, else `registered_country.iso_code`: addresses of
/// satellite and anycast providers often have only the latter) and
/// ip-location-db / DB-IP lite (`country_code` at the top). Borrowed, and
/// every other field skipped undecoded: this is on the hot path.
#[derive(Deserialize)]
struct CountryRecord<'a> {
    #[serde(borrow)]
    country: Option<IsoCode<'a>>,
    #[serde(borrow)]
    registered_country: Option<IsoCode<'a>>,
    country_code: Option<&'a str>,
}

#[derive(Deserialize)]
struct IsoCode<'a> {
    iso_code: Option<&'a str>,
}

impl<'a> CountryRecord<'a> {
    fn code(&self) -> Option<[u8; 2]> {
        fn iso<'a>(field: &Option<IsoCode<'a>>) -> Option<&'a str> {
            field.as_ref().and_then(|c| c.iso_code)
        }
        [
            iso(&self.country),
            iso(&self.registered_country),
            self.country_code,
        ]
        .into_iter()
        .flatten()
        .find_map(country_code)
    }
}

/// Two ASCII letters, upper-cased; anything else is no code at all.
fn country_code(text: &str) -> Option<[u8; 2]> {
    match text.as_bytes() {
        [a, b] if a.is_ascii_alphabetic() && b.is_ascii_alphabetic() => {
            Some([a.to_ascii_uppercase(), b.to_ascii_uppercase()])
        }
        _ => None,
    }
}

/// Both layouts name it `autonomous_system_number`.
#[derive(Deserialize)]
struct AsnRecord {
    #[serde(default, deserialize_with = "any_unsigned")]
    autonomous_system_number: Option<u32>,
}

/// The reader decodes a `u32` field only from the format's uint32 type;
/// writers other than MaxMind's may pick another integer width.
fn any_unsigned<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u32>, D::Error> {
    struct Unsigned;
    impl<'de> serde::de::Visitor<'de> for Unsigned {
        type Value = Option<u32>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an unsigned integer")
        }
        fn visit_u64<E>(self, n: u64) -> Result<Option<u32>, E> {
            Ok(u32::try_from(n).ok())
        }
        fn visit_i64<E>(self, n: i64) -> Result<Option<u32>, E> {
            Ok(u32::try_from(n).ok())
        }
        fn visit_u128<E>(self, n: u128) -> Result<Option<u32>, E> {
            Ok(u32::try_from(n).ok())
        }
    }
    deserializer.deserialize_any(Unsigned)
}

/// The country and ASN databases, either of them optional.
pub struct GeoIp {
    country: Option<Source>,
    asn: Option<Source>,
}

impl GeoIp {
    /// Opens the configured files, each read whole and checked; the error
    /// names the variable and the path. Blocking file I/O: call it from
    /// `spawn_blocking` on a runtime.
    pub fn open(country: Option<&Path>, asn: Option<&Path>) -> Result<GeoIp, GeoIpError> {
        Ok(GeoIp {
            country: country
                .map(|path| Source::open(DbKind::Country, path))
                .transpose()?,
            asn: asn
                .map(|path| Source::open(DbKind::Asn, path))
                .transpose()?,
        })
    }

    /// No databases: every address is `XX`, ASN 0.
    pub fn disabled() -> GeoIp {
        GeoIp {
            country: None,
            asn: None,
        }
    }

    pub fn has_country_db(&self) -> bool {
        self.country.is_some()
    }

    pub fn has_asn_db(&self) -> bool {
        self.asn.is_some()
    }

    /// The country and ASN of `ip`; an IPv4-mapped IPv6 address is looked
    /// up as the IPv4 address it is. Never fails: no database, no entry, an
    /// IPv6 address in an IPv4-only file or an undecodable record are all
    /// "unknown".
    pub fn lookup(&self, ip: IpAddr) -> Geo {
        let ip = canonical_ip(ip);
        Geo {
            country: self
                .country
                .as_ref()
                .and_then(|source| lookup_country(&source.current(), ip))
                .unwrap_or(UNKNOWN_COUNTRY),
            asn: self
                .asn
                .as_ref()
                .and_then(|source| lookup_asn(&source.current(), ip))
                .unwrap_or(0),
        }
    }

    /// Loads again each configured file whose modification time or length
    /// changed; one that does not load keeps the previous database (with a
    /// warning). Blocking file I/O.
    pub fn reload_if_changed(&self) -> ReloadOutcome {
        let check = |source: &Option<Source>| {
            source
                .as_ref()
                .map_or(Reload::NotConfigured, Source::reload_if_changed)
        };
        ReloadOutcome {
            country: check(&self.country),
            asn: check(&self.asn),
        }
    }

    /// Checks the files every `every` (on the blocking pool) until the
    /// application stops. Nothing to watch without a database.
    pub fn spawn_watcher(
        self: &Arc<Self>,
        every: Duration,
        mut stop: StopSignal,
    ) -> Option<tokio::task::JoinHandle<()>> {
        if !self.has_country_db() && !self.has_asn_db() {
            return None;
        }
        let geoip = Arc::clone(self);
        Some(tokio::spawn(async move {
            while background::tick(every, &mut stop).await {
                let geoip = Arc::clone(&geoip);
                if let Err(e) = tokio::task::spawn_blocking(move || geoip.reload_if_changed()).await
                {
                    log::warn!("GeoIP: checking the database files failed: {e}");
                }
            }
        }))
    }
}

fn lookup_country(db: &Reader<Vec<u8>>, ip: IpAddr) -> Option<[u8; 2]> {
    let found = db.lookup(ip).ok()?;
    found.decode::<CountryRecord<'_>>().ok()??.code()
}

fn lookup_asn(db: &Reader<Vec<u8>>, ip: IpAddr) -> Option<u32> {
    let found = db.lookup(ip).ok()?;
    found
        .decode::<AsnRecord>()
        .ok()??
        .autonomous_system_number
        .filter(|&asn| asn != 0)
}

impl fmt::Debug for GeoIp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = |source: &Option<Source>| source.as_ref().map(|s| s.path.clone());
        f.debug_struct("GeoIp")
            .field("country", &path(&self.country))
            .field("asn", &path(&self.asn))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Small MaxMind DB files written by the tests themselves, following the
    /// MaxMind DB File Format Specification 2.0: a binary search tree of
    /// 24-bit records, 16 zero bytes, the data section (no pointers), then
    /// the metadata map after its marker. `GeoIp::open` walks every record
    /// of them, which is what shows they are well formed.
    mod mmdb {
        use ipnet::IpNet;

        pub enum Value {
            Str(String),
            U16(u16),
            U32(u32),
            U64(u64),
            Map(Vec<(&'static str, Value)>),
            Array(Vec<Value>),
        }

        pub fn str(text: &str) -> Value {
            Value::Str(text.to_string())
        }

        pub fn map(pairs: Vec<(&'static str, Value)>) -> Value {
            Value::Map(pairs)
        }

        const TYPE_STRING: u8 = 2;
        const TYPE_UINT16: u8 = 5;
        const TYPE_UINT32: u8 = 6;
        const TYPE_MAP: u8 = 7;
        const TYPE_UINT64: u8 = 9;
        const TYPE_ARRAY: u8 = 11;
        const METADATA_MARKER: &[u8] = b"\xab\xcd\xefMaxMind.com";

        /// The control byte (extended types in a second byte) and the size
        /// with its 1-3 continuation bytes.
        fn control(out: &mut Vec<u8>, type_num: u8, size: usize) {
            let (low, extra): (u8, Vec<u8>) = match size {
                0..=28 => (size as u8, vec![]),
                29..=284 => (29, vec![(size - 29) as u8]),
                285..=65_820 => (30, ((size - 285) as u16).to_be_bytes().to_vec()),
                _ => (31, ((size - 65_821) as u32).to_be_bytes()[1..].to_vec()),
            };
            if type_num <= 7 {
                out.push(type_num << 5 | low);
            } else {
                out.push(low);
                out.push(type_num - 7);
            }
            out.extend(extra);
        }

        fn unsigned(out: &mut Vec<u8>, type_num: u8, n: u64) {
            let bytes = n.to_be_bytes();
            let first = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
            control(out, type_num, bytes.len() - first);
            out.extend(&bytes[first..]);
        }

        pub fn encode(value: &Value, out: &mut Vec<u8>) {
            match value {
                Value::Str(text) => {
                    control(out, TYPE_STRING, text.len());
                    out.extend(text.as_bytes());
                }
                Value::U16(n) => unsigned(out, TYPE_UINT16, u64::from(*n)),
                Value::U32(n) => unsigned(out, TYPE_UINT32, u64::from(*n)),
                Value::U64(n) => unsigned(out, TYPE_UINT64, *n),
                Value::Map(pairs) => {
                    control(out, TYPE_MAP, pairs.len());
                    for (key, value) in pairs {
                        encode(&str(key), out);
                        encode(value, out);
                    }
                }
                Value::Array(items) => {
                    control(out, TYPE_ARRAY, items.len());
                    for item in items {
                        encode(item, out);
                    }
                }
            }
        }

        #[derive(Clone, Copy)]
        enum Record {
            Empty,
            Node(usize),
            Data(usize),
        }

        /// A database of `ip_version` 4 or 6 mapping each network to its
        /// record; in an IPv6 database IPv4 networks live under ::/96, where
        /// readers look for them. A more specific network must come after
        /// the ones containing it.
        pub fn build(ip_version: u16, database_type: &str, entries: &[(&str, Value)]) -> Vec<u8> {
            let width: u32 = if ip_version == 4 { 32 } else { 128 };
            let mut nodes: Vec<[Record; 2]> = vec![[Record::Empty; 2]];
            let mut data = Vec::new();
            for (network, value) in entries {
                let network: IpNet = network.parse().expect("test network");
                // Left-aligned in 128 bits; IPv4 in IPv6 is ::a.b.c.d.
                let (bits, len) = match network {
                    IpNet::V4(v4) if width == 32 => (
                        u128::from(u32::from(v4.addr())) << 96,
                        u32::from(v4.prefix_len()),
                    ),
                    IpNet::V4(v4) => (
                        u128::from(u32::from(v4.addr())),
                        u32::from(v4.prefix_len()) + 96,
                    ),
                    IpNet::V6(v6) => {
                        assert_eq!(width, 128, "IPv6 network in an IPv4 database");
                        (u128::from(v6.addr()), u32::from(v6.prefix_len()))
                    }
                };
                assert!(len > 0);
                let offset = data.len();
                encode(value, &mut data);
                let mut node = 0;
                for depth in 0..len {
                    let bit = ((bits >> (127 - depth)) & 1) as usize;
                    if depth == len - 1 {
                        nodes[node][bit] = Record::Data(offset);
                    } else {
                        node = match nodes[node][bit] {
                            Record::Node(next) => next,
                            inherited => {
                                nodes.push([inherited; 2]);
                                let next = nodes.len() - 1;
                                nodes[node][bit] = Record::Node(next);
                                next
                            }
                        };
                    }
                }
            }
            let node_count = nodes.len();
            let mut file = Vec::new();
            for node in &nodes {
                for record in node {
                    let value = match *record {
                        Record::Node(next) => next,
                        Record::Empty => node_count,
                        Record::Data(offset) => node_count + 16 + offset,
                    };
                    file.extend(&(value as u32).to_be_bytes()[1..]);
                }
            }
            file.extend([0u8; 16]);
            file.extend(&data);
            file.extend(METADATA_MARKER);
            let metadata = Value::Map(vec![
                ("node_count", Value::U32(node_count as u32)),
                ("record_size", Value::U16(24)),
                ("ip_version", Value::U16(ip_version)),
                ("database_type", str(database_type)),
                ("languages", Value::Array(vec![str("en")])),
                ("binary_format_major_version", Value::U16(2)),
                ("binary_format_minor_version", Value::U16(0)),
                ("build_epoch", Value::U64(1_767_225_600)),
                (
                    "description",
                    map(vec![("en", str("playgate test database"))]),
                ),
            ]);
            encode(&metadata, &mut file);
            file
        }
    }

    use mmdb::{map, str, Value};

    /// A directory of its own under the system's temporary directory,
    /// removed when dropped.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new() -> TempDir {
            static COUNT: AtomicUsize = AtomicUsize::new(0);
            let dir = std::env::temp_dir().join(format!(
                "playgate-geoip-{}-{}",
                std::process::id(),
                COUNT.fetch_add(1, Ordering::Relaxed)
            ));
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }

        /// Writes `bytes` as `name` the way an operator's update should:
        /// to a temporary name, then renamed over (no reader sees half a
        /// file); a modification time of its own, so that filesystems with
        /// coarse timestamps still show the change.
        fn put(&self, name: &str, bytes: &[u8]) -> PathBuf {
            static GENERATION: AtomicUsize = AtomicUsize::new(1);
            let path = self.0.join(name);
            let temporary = self.0.join(format!(".{name}.tmp"));
            fs::write(&temporary, bytes).unwrap();
            let modified = SystemTime::UNIX_EPOCH
                + Duration::from_secs(1_700_000_000)
                + Duration::from_secs(GENERATION.fetch_add(1, Ordering::Relaxed) as u64);
            fs::File::options()
                .write(true)
                .open(&temporary)
                .unwrap()
                .set_modified(modified)
                .unwrap();
            fs::rename(&temporary, &path).unwrap();
            path
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn geo(country: &str, asn: u32) -> Geo {
        Geo {
            country: country.as_bytes().try_into().unwrap(),
            asn,
        }
    }

    /// A GeoIP2/GeoLite2 Country record, with the fields the real files
    /// have around the ones playgate reads.
    fn maxmind_country(country: Option<&str>, registered: Option<&str>) -> Value {
        let place = |code: &str| {
            map(vec![
                ("geoname_id", Value::U32(2_921_044)),
                ("is_in_european_union", Value::U16(1)),
                ("iso_code", str(code)),
                (
                    "names",
                    map(vec![("en", str("Somewhere")), ("de", str("Irgendwo"))]),
                ),
            ])
        };
        let mut record = vec![(
            "continent",
            map(vec![
                ("code", str("EU")),
                ("geoname_id", Value::U32(6_255_148)),
            ]),
        )];
        if let Some(code) = country {
            record.push(("country", place(code)));
        }
        if let Some(code) = registered {
            record.push(("registered_country", place(code)));
        }
        Value::Map(record)
    }

    fn maxmind_asn(number: Value, organization: &str) -> Value {
        map(vec![
            ("autonomous_system_number", number),
            ("autonomous_system_organization", str(organization)),
        ])
    }

    fn maxmind_country_db() -> Vec<u8> {
        mmdb::build(
            6,
            "GeoLite2-Country",
            &[
                ("81.2.69.0/24", maxmind_country(Some("GB"), Some("GB"))),
                // A more specific network inside the one before.
                ("81.2.69.160/27", maxmind_country(Some("de"), Some("GB"))),
                // Satellite or anycast providers: only the registration.
                ("89.160.20.0/24", maxmind_country(None, Some("SE"))),
                ("2001:db8::/32", maxmind_country(Some("FR"), None)),
                // Not a code: unknown rather than garbage.
                ("203.0.113.0/24", maxmind_country(Some("EU1"), None)),
            ],
        )
    }

    fn maxmind_asn_db() -> Vec<u8> {
        mmdb::build(
            6,
            "GeoLite2-ASN",
            &[
                (
                    "81.2.69.0/24",
                    maxmind_asn(Value::U32(20_712), "Andrews & Arnold Ltd"),
                ),
                (
                    "2001:db8::/32",
                    maxmind_asn(Value::U32(4_200_000_001), "Private use"),
                ),
                // Written by a tool that picked a narrower integer type.
                (
                    "89.160.20.0/24",
                    maxmind_asn(Value::U16(29_518), "Bredband2 AB"),
                ),
                (
                    "198.51.100.0/24",
                    maxmind_asn(Value::U64(64_496), "Documentation"),
                ),
            ],
        )
    }

    /// The ip-location-db (and DB-IP lite) layout: `country_code` at the
    /// top, IPv4 and IPv6 in separate files or together.
    fn ip_location_db_country(ip_version: u16) -> Vec<u8> {
        let code = |c: &str| map(vec![("country_code", str(c))]);
        let mut entries = vec![
            ("133.11.0.0/16", code("JP")),
            ("130.149.0.0/16", code("de")),
        ];
        if ip_version == 6 {
            entries.push(("2a00:1450::/32", code("IE")));
        }
        mmdb::build(ip_version, "geolite2-country", &entries)
    }

    #[test]
    fn maxmind_layout_country_and_asn() {
        let dir = TempDir::new();
        let country = dir.put("GeoLite2-Country.mmdb", &maxmind_country_db());
        let asn = dir.put("GeoLite2-ASN.mmdb", &maxmind_asn_db());
        let geoip = GeoIp::open(Some(&country), Some(&asn)).unwrap();
        assert!(geoip.has_country_db() && geoip.has_asn_db());

        assert_eq!(geoip.lookup(ip("81.2.69.142")), geo("GB", 20_712));
        // The most specific network wins; codes are upper-cased.
        assert_eq!(geoip.lookup(ip("81.2.69.170")), geo("DE", 20_712));
        assert_eq!(geoip.lookup(ip("81.2.69.170")).country_str(), "DE");
        // IPv4-mapped IPv6 is the IPv4 address.
        assert_eq!(geoip.lookup(ip("::ffff:81.2.69.142")), geo("GB", 20_712));
        // registered_country when there is no country.
        assert_eq!(geoip.lookup(ip("89.160.20.128")), geo("SE", 29_518));
        assert_eq!(geoip.lookup(ip("2001:db8::1")), geo("FR", 4_200_000_001));
        assert_eq!(geoip.lookup(ip("203.0.113.9")), geo("XX", 0));
        assert_eq!(geoip.lookup(ip("198.51.100.7")), geo("XX", 64_496));
    }

    #[test]
    fn ip_location_db_layout() {
        let dir = TempDir::new();
        let both = dir.put("geolite2-country.mmdb", &ip_location_db_country(6));
        let v4 = dir.put("geolite2-country-ipv4.mmdb", &ip_location_db_country(4));

        let geoip = GeoIp::open(Some(&both), None).unwrap();
        assert!(geoip.has_country_db() && !geoip.has_asn_db());
        assert_eq!(geoip.lookup(ip("133.11.0.1")), geo("JP", 0));
        assert_eq!(geoip.lookup(ip("130.149.7.201")), geo("DE", 0));
        assert_eq!(geoip.lookup(ip("::ffff:133.11.0.1")), geo("JP", 0));
        assert_eq!(geoip.lookup(ip("2a00:1450:4001::1")), geo("IE", 0));

        let geoip = GeoIp::open(Some(&v4), None).unwrap();
        assert_eq!(geoip.lookup(ip("133.11.200.1")), geo("JP", 0));
        assert_eq!(geoip.lookup(ip("::ffff:130.149.0.1")), geo("DE", 0));
        // An IPv4-only file knows no IPv6 address.
        assert_eq!(geoip.lookup(ip("2a00:1450:4001::1")), Geo::UNKNOWN);
    }

    #[test]
    fn no_entry_and_no_database_are_unknown() {
        let dir = TempDir::new();
        let country = dir.put("country.mmdb", &maxmind_country_db());
        let asn = dir.put("asn.mmdb", &maxmind_asn_db());
        let geoip = GeoIp::open(Some(&country), Some(&asn)).unwrap();
        for address in [
            "192.0.2.1",
            "10.0.0.1",
            "::1",
            "2001:db9::1",
            "::ffff:192.0.2.1",
        ] {
            assert_eq!(geoip.lookup(ip(address)), Geo::UNKNOWN, "{address}");
        }

        let none = GeoIp::disabled();
        assert!(!none.has_country_db() && !none.has_asn_db());
        assert_eq!(none.lookup(ip("81.2.69.142")), Geo::UNKNOWN);
        assert_eq!(none.lookup(ip("81.2.69.142")).country_str(), "XX");
        assert_eq!(
            none.reload_if_changed(),
            ReloadOutcome {
                country: Reload::NotConfigured,
                asn: Reload::NotConfigured
            }
        );
        let none = GeoIp::open(None, None).unwrap();
        assert_eq!(none.lookup(ip("2001:db8::1")), Geo::UNKNOWN);
        // Only one of the two.
        let asn_only = GeoIp::open(None, Some(&asn)).unwrap();
        assert_eq!(asn_only.lookup(ip("81.2.69.142")), geo("XX", 20_712));
    }

    #[test]
    fn good_replacement_is_loaded() {
        let dir = TempDir::new();
        let country = dir.put("country.mmdb", &maxmind_country_db());
        let asn = dir.put("asn.mmdb", &maxmind_asn_db());
        let geoip = GeoIp::open(Some(&country), Some(&asn)).unwrap();
        assert_eq!(
            geoip.reload_if_changed(),
            ReloadOutcome {
                country: Reload::Unchanged,
                asn: Reload::Unchanged
            }
        );

        let moved = mmdb::build(
            6,
            "GeoLite2-Country",
            &[("81.2.69.0/24", maxmind_country(Some("IE"), Some("GB")))],
        );
        dir.put("country.mmdb", &moved);
        let outcome = geoip.reload_if_changed();
        assert_eq!(outcome.country, Reload::Reloaded);
        assert_eq!(outcome.asn, Reload::Unchanged);
        assert_eq!(geoip.lookup(ip("81.2.69.142")), geo("IE", 20_712));
        // Gone from the new file.
        assert_eq!(geoip.lookup(ip("89.160.20.128")), geo("XX", 29_518));
        assert_eq!(geoip.reload_if_changed().country, Reload::Unchanged);
    }

    #[test]
    fn corrupt_replacement_keeps_the_previous_database() {
        let dir = TempDir::new();
        let good = maxmind_country_db();
        let country = dir.put("country.mmdb", &good);
        let geoip = GeoIp::open(Some(&country), None).unwrap();

        let mut flipped = good.clone();
        // Search tree records pointing far past the data section.
        flipped[..12].fill(0xff);
        let replacements: [(&str, Vec<u8>); 4] = [
            ("not a database", b"<html>502 Bad Gateway</html>".to_vec()),
            ("cut short", good[..good.len() / 2].to_vec()),
            ("empty", Vec::new()),
            ("a broken search tree", flipped),
        ];
        for (what, bytes) in replacements {
            dir.put("country.mmdb", &bytes);
            let outcome = geoip.reload_if_changed();
            match &outcome.country {
                Reload::KeptPrevious { error } => {
                    assert!(
                        error.starts_with("PLAYGATE_GEOIP_COUNTRY_DB: ")
                            && error.contains(&*country.to_string_lossy())
                            && error.contains("not a MaxMind DB"),
                        "{what}: {error}"
                    );
                }
                other => panic!("{what}: {other:?}"),
            }
            assert_eq!(outcome.asn, Reload::NotConfigured);
            assert_eq!(geoip.lookup(ip("81.2.69.142")), geo("GB", 0), "{what}");
            // Warned once per change, not at every check.
            assert_eq!(
                geoip.reload_if_changed().country,
                Reload::Unchanged,
                "{what}"
            );
        }

        // Removed: the previous one stays too, and a good file comes back in.
        fs::remove_file(&country).unwrap();
        match geoip.reload_if_changed().country {
            Reload::KeptPrevious { error } => assert!(error.contains("no such file"), "{error}"),
            other => panic!("removed: {other:?}"),
        }
        assert_eq!(geoip.lookup(ip("81.2.69.142")), geo("GB", 0));
        assert_eq!(geoip.reload_if_changed().country, Reload::Unchanged);
        dir.put("country.mmdb", &ip_location_db_country(4));
        assert_eq!(geoip.reload_if_changed().country, Reload::Reloaded);
        assert_eq!(geoip.lookup(ip("133.11.0.1")), geo("JP", 0));
        assert_eq!(geoip.lookup(ip("81.2.69.142")), Geo::UNKNOWN);
    }

    #[test]
    fn open_errors_name_the_variable_and_the_path() {
        let dir = TempDir::new();
        let asn = dir.put("asn.mmdb", &maxmind_asn_db());
        let country = dir.put("country.mmdb", &maxmind_country_db());
        let missing = dir.0.join("GeoLite2-Country.mmdb");
        let error = GeoIp::open(Some(&missing), Some(&asn)).unwrap_err();
        assert_eq!(error.variable(), "PLAYGATE_GEOIP_COUNTRY_DB");
        assert!(matches!(error.problem, Problem::Missing));
        assert_eq!(
            error.to_string(),
            format!(
                "PLAYGATE_GEOIP_COUNTRY_DB: {}: no such file",
                missing.display()
            )
        );

        let text = dir.put("asn.csv", b"1.0.0.0,1.0.0.255,13335\n");
        let error = GeoIp::open(Some(&country), Some(&text)).unwrap_err();
        assert_eq!(error.variable(), "PLAYGATE_GEOIP_ASN_DB");
        let message = error.to_string();
        assert!(
            message.starts_with(&format!("PLAYGATE_GEOIP_ASN_DB: {}: ", text.display()))
                && message.contains("not a MaxMind DB"),
            "{message}"
        );

        // Each variable names a file of its kind.
        let error = GeoIp::open(Some(&asn), Some(&country)).unwrap_err();
        assert!(
            matches!(error.problem, Problem::NoData(DbKind::Country)),
            "{error}"
        );
        assert!(
            error
                .to_string()
                .starts_with(&format!("PLAYGATE_GEOIP_COUNTRY_DB: {}: ", asn.display()))
                && error.to_string().contains("not a country database"),
            "{error}"
        );
        let error = GeoIp::open(Some(&country), Some(&country)).unwrap_err();
        assert!(error.to_string().contains("not an ASN database"), "{error}");

        // A directory cannot be read (permissions cannot be tested as root).
        let error = GeoIp::open(None, Some(&dir.0)).unwrap_err();
        assert!(matches!(error.problem, Problem::Unreadable(_)), "{error}");
        assert!(
            error.to_string().starts_with("PLAYGATE_GEOIP_ASN_DB: ")
                && error.to_string().contains("cannot be read"),
            "{error}"
        );
    }

    #[tokio::test]
    async fn the_watcher_loads_a_replacement() {
        let dir = TempDir::new();
        let country = dir.put("country.mmdb", &maxmind_country_db());
        let geoip = Arc::new(GeoIp::open(Some(&country), None).unwrap());
        let (stop, stop_signal) = tokio::sync::watch::channel(false);
        let watcher = geoip
            .spawn_watcher(Duration::from_millis(20), stop_signal)
            .expect("a watcher for a configured database");
        dir.put("country.mmdb", &ip_location_db_country(6));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while geoip.lookup(ip("133.11.0.1")) != geo("JP", 0) {
            assert!(tokio::time::Instant::now() < deadline, "not reloaded");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        stop.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(5), watcher)
            .await
            .expect("the watcher stops")
            .unwrap();

        let (_stop, stop_signal) = tokio::sync::watch::channel(false);
        let nothing = Arc::new(GeoIp::disabled());
        assert!(nothing
            .spawn_watcher(Duration::from_millis(20), stop_signal)
            .is_none());
    }

    /// The GeoLite2 Country data as ip-location-db publishes it on npm
    /// (scripts/install-test-deps puts it in target/geoip-test-db; the
    /// package version is pinned there, so these answers stay put).
    #[test]
    fn real_database_from_package() {
        let path = std::env::var_os("GEOIP_TEST_DB").map_or_else(
            || {
                Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("target/geoip-test-db/package/geolite2-country.mmdb")
            },
            PathBuf::from,
        );
        if !path.is_file() {
            let missing = format!(
                "{} is not installed (the npm package @ip-location-db/geolite2-country-mmdb; \
                 run scripts/install-test-deps)",
                path.display()
            );
            assert!(std::env::var("CI").as_deref() != Ok("true"), "{missing}");
            eprintln!("skipped real_database_from_package: {missing}");
            return;
        }
        let started = std::time::Instant::now();
        let geoip = GeoIp::open(Some(&path), None).unwrap();
        eprintln!(
            "real_database_from_package: opened and checked in {:?}",
            started.elapsed()
        );
        let known = [
            ("8.8.8.8", "US"),
            ("::ffff:8.8.8.8", "US"),
            ("2001:4860:4860::8888", "US"),
            ("133.11.0.1", "JP"),
            ("130.149.0.1", "DE"),
            ("10.0.0.1", "XX"),
            ("::1", "XX"),
        ];
        for (address, country) in known {
            assert_eq!(
                geoip.lookup(ip(address)).country_str(),
                country,
                "{address}"
            );
        }

        // What one lookup costs, for the record (no assertion: machines differ).
        let rounds = 200_000u32;
        let started = std::time::Instant::now();
        let mut known = 0u32;
        for i in 0..rounds {
            let address = IpAddr::from(std::net::Ipv4Addr::from(i.wrapping_mul(2_654_435_761)));
            known += u32::from(geoip.lookup(address).country != UNKNOWN_COUNTRY);
        }
        let each = started.elapsed() / rounds;
        eprintln!("real_database_from_package: {each:?} per lookup ({known} of {rounds} known)");
    }
}
