//! GeoIP in the decision (issue 20, SPEC §10): country and ASN conditions
//! of access rules and users' countries, from small databases written in
//! the test by the independent PyPI writer `mmdb-writer`
//! (tests/referees/make_mmdb.py, in the referees' venv of
//! scripts/install-test-deps), and a database replaced under the running
//! binary: a good file is in force within 60 s, a corrupt one leaves the
//! previous in force with a warning.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::e2e_support::tools_or_skip;
use crate::helpers::*;

const MAKE_MMDB: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/referees/make_mmdb.py");

/// The venv's python with `mmdb-writer` (scripts/install-test-deps).
fn writer_python(test: &str) -> Option<PathBuf> {
    tools_or_skip(test, || {
        let venv = std::env::var_os("REFEREES_VENV")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("target/referees-venv"));
        let python = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(venv)
            .join("bin/python");
        let imports = Command::new(&python)
            .args(["-c", "import mmdb_writer"])
            .output()
            .is_ok_and(|output| output.status.success());
        imports
            .then_some(python)
            .ok_or("mmdb-writer (PyPI, in target/referees-venv)")
    })
}

/// Writes `out` (`country`, `asn` or `garbage`) from `network=value` pairs.
fn make_mmdb(python: &Path, kind: &str, out: &Path, pairs: &[&str]) {
    let output = Command::new(python)
        .arg(MAKE_MMDB)
        .arg(kind)
        .arg(out)
        .args(pairs)
        .output()
        .expect("run make_mmdb.py");
    assert!(
        output.status.success(),
        "make_mmdb.py: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn temp_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("playgate-geoip-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

const COUNTRIES: &[&str] = &["192.0.2.0/24=RU", "198.51.100.0/24=KZ", "203.0.113.0/24=DE"];
const ASNS: &[&str] = &["192.0.2.0/25=64500", "203.0.113.0/24=64501"];

fn play_from(ip: &str, stream: &str) -> Value {
    json!({"stream": stream, "ip": ip, "token": "alice-token"})
}

#[tokio::test]
async fn rules_and_users_see_the_client_country_and_asn() {
    let test = "rules_and_users_see_the_client_country_and_asn";
    let Some(python) = writer_python(test) else {
        return;
    };
    let dir = temp_dir();
    let (country_db, asn_db) = (dir.join("country.mmdb"), dir.join("asn.mmdb"));
    make_mmdb(&python, "country", &country_db, COUNTRIES);
    make_mmdb(&python, "asn", &asn_db, ASNS);
    let app = spawn_app_with(|settings| {
        settings.geoip.country_db = Some(country_db.clone());
        settings.geoip.asn_db = Some(asn_db.clone());
    })
    .await;
    seed_admins(&app).await;
    app.create(user("alice").token("alice-token")).await;

    let lock = app
        .admin(
            "POST",
            "/api/v1/access-rules",
            Some(
                json!({"action": "deny", "streams": ["sport/*"], "countries": ["RU", "KZ"],
                        "negate": ["countries"], "comment": "sports rights: RU and KZ"}),
            ),
            201,
        )
        .await;
    let hosting = app
        .admin(
            "POST",
            "/api/v1/access-rules",
            Some(json!({"action": "deny", "asns": [64500], "comment": "a hosting network"})),
            201,
        )
        .await;
    let cases = [
        // (client, stream, expected reason, rule)
        ("192.0.2.200", "sport/1", "ok", Value::Null), // RU, not AS64500
        ("198.51.100.7", "sport/1", "ok", Value::Null), // KZ
        ("203.0.113.9", "sport/1", "rule_denied", lock["id"].clone()), // DE
        ("100.64.0.1", "sport/1", "rule_denied", lock["id"].clone()), // no entry: XX
        ("203.0.113.9", "news", "ok", Value::Null),    // DE, AS64501, not sport
        ("192.0.2.10", "news", "rule_denied", hosting["id"].clone()), // AS64500
    ];
    for (ip, stream, expected, rule) in cases {
        let decision = app.decide(play_from(ip, stream)).await;
        assert_eq!(reason(&decision), expected, "{ip} {stream}: {decision}");
        assert_eq!(decision["rule"], rule, "{ip} {stream}");
    }

    // A user limited to KZ.
    app.admin(
        "PATCH",
        "/api/v1/users/alice",
        Some(json!({"countries": ["KZ"]})),
        200,
    )
    .await;
    let home = app.decide(play_from("198.51.100.7", "news")).await;
    assert_eq!(reason(&home), "ok", "{home}");
    let abroad = app.decide(play_from("203.0.113.9", "news")).await;
    assert_eq!(reason(&abroad), "country_mismatch", "{abroad}");
    std::fs::remove_dir_all(&dir).ok();
}

/// The real binary, its watcher and its log: a good replacement is loaded
/// within 60 s (the watcher looks every 10 s), a corrupt one is refused
/// with a warning and the previous database stays in force.
#[tokio::test]
async fn a_replaced_database_is_loaded_and_a_corrupt_one_keeps_the_old() {
    let test = "a_replaced_database_is_loaded_and_a_corrupt_one_keeps_the_old";
    let Some(python) = writer_python(test) else {
        return;
    };
    let dir = temp_dir();
    let country_db = dir.join("country.mmdb");
    make_mmdb(&python, "country", &country_db, &["192.0.2.0/24=RU"]);
    let db = TestDb::new();
    let mut served = ServedBinary::serve(&[
        ("DATABASE_URL", db.url.clone()),
        ("PLAYGATE_BOOTSTRAP_ADMIN", "root:root-password-1".into()),
        (
            "PLAYGATE_GEOIP_COUNTRY_DB",
            country_db.display().to_string(),
        ),
        ("RUST_LOG", "info".into()),
    ]);
    let http = reqwest::Client::new();
    let base = served.base.clone();
    let rule = http
        .post(format!("{base}/api/v1/access-rules"))
        .basic_auth("root", Some("root-password-1"))
        .json(&json!({"action": "deny", "countries": ["DE"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(rule.status().as_u16(), 201);
    let decide = || async {
        let answer: Value = http
            .post(format!("{base}/hook/decide"))
            .json(&json!({"stream": "news", "ip": "192.0.2.10"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        answer["reason"].as_str().unwrap().to_string()
    };
    // Anonymous and not denied by the rule: RU.
    assert_eq!(decide().await, "no_credentials");

    // Replaced the way a downloader does: a new file moved over the old.
    let fresh = dir.join("country.mmdb.new");
    make_mmdb(&python, "country", &fresh, &["192.0.2.0/24=DE"]);
    std::fs::rename(&fresh, &country_db).unwrap();
    let started = Instant::now();
    while decide().await != "rule_denied" {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the new database is not in force after {:?}",
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    println!("replacement in force after {:?}", started.elapsed());

    // A corrupt replacement: a warning naming the variable, DE still in force.
    make_mmdb(&python, "garbage", &fresh, &[]);
    std::fs::rename(&fresh, &country_db).unwrap();
    let warning = served.line_where(Duration::from_secs(60), |line| {
        line.contains("WARN") && line.contains("PLAYGATE_GEOIP_COUNTRY_DB")
    });
    assert!(warning.is_some(), "no warning: {:#?}", served.log);
    assert_eq!(
        decide().await,
        "rule_denied",
        "the previous database is kept"
    );
    assert!(served.stop(), "{:#?}", served.log);
    std::fs::remove_dir_all(&dir).ok();
}

/// Polls `path` (an admin GET) until `check` holds of its answer.
async fn admin_until(app: &TestApp, path: &str, check: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let answer = app.admin("GET", path, None, 200).await;
        if check(&answer) {
            return answer;
        }
        assert!(Instant::now() < deadline, "{path} never matched: {answer}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn by_field<'a>(items: &'a Value, field: &str, value: &str) -> Option<&'a Value> {
    items["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|item| item[field] == value)
}

/// Each session records where its viewer was at the start (SPEC §10): the
/// sessions API shows it, active and (moved by the sweeper) ended; the
/// statistics and the gauge count viewers by country, `XX` for an address
/// the database has no entry for.
#[tokio::test]
async fn sessions_record_the_country_and_asn_and_viewers_are_counted_by_country() {
    let test = "sessions_record_the_country_and_asn_and_viewers_are_counted_by_country";
    let Some(python) = writer_python(test) else {
        return;
    };
    let dir = temp_dir();
    let (country_db, asn_db) = (dir.join("country.mmdb"), dir.join("asn.mmdb"));
    make_mmdb(&python, "country", &country_db, COUNTRIES);
    make_mmdb(&python, "asn", &asn_db, ASNS);
    let app = spawn_app_with(|settings| {
        settings.geoip.country_db = Some(country_db.clone());
        settings.geoip.asn_db = Some(asn_db.clone());
        settings.stats_interval = Duration::from_secs(1);
        settings.sweep_interval = Duration::from_secs(1);
    })
    .await;
    seed_admins(&app).await;
    app.create(user("alice").token("alice-token").limit(10))
        .await;
    // bob's device limit sends his starts down the one-by-one admission
    // (sql/V20 playgate_admit_v20), alice's take the batch's common path.
    app.create(user("bob").token("bob-token")).await;
    app.admin(
        "PATCH",
        "/api/v1/users/bob",
        Some(json!({"max_devices": 10})),
        200,
    )
    .await;
    let start = |ip: &str, session: &str, event: &str| {
        let token = if session < "2" {
            "alice-token"
        } else {
            "bob-token"
        };
        json!({"stream": "news", "ip": ip, "token": token, "session": session, "event": event})
    };
    // (client, country, asn): RU in AS64500; RU outside every AS network;
    // DE in AS64501; no entry in either database.
    let viewers = [
        ("192.0.2.10", "RU", 64500),
        ("192.0.2.200", "RU", 0),
        ("203.0.113.9", "DE", 64501),
        ("100.64.0.1", "XX", 0),
    ];
    for (n, (ip, _, _)) in viewers.iter().enumerate() {
        let decision = app.decide(start(ip, &n.to_string(), "start")).await;
        assert_eq!(reason(&decision), "ok", "{ip}: {decision}");
    }
    let active = app.admin("GET", "/api/v1/sessions", None, 200).await;
    for (ip, country, asn) in viewers {
        let session = by_field(&active, "client_ip", ip).unwrap_or_else(|| panic!("{active}"));
        assert_eq!(session["country"], country, "{session}");
        assert_eq!(session["asn"], asn, "{session}");
    }

    // The German viewer stops: the ended session keeps where it was.
    app.decide(start("203.0.113.9", "2", "stop")).await;
    let ended = admin_until(&app, "/api/v1/sessions?state=ended", |page| {
        page["total"] == 1
    })
    .await;
    assert_eq!(ended["items"][0]["country"], "DE", "{ended}");
    assert_eq!(ended["items"][0]["asn"], 64501, "{ended}");

    let countries = app.admin("GET", "/api/v1/stats/countries", None, 200).await;
    let ru = by_field(&countries, "country", "RU").unwrap_or_else(|| panic!("{countries}"));
    assert_eq!(
        (&ru["viewers"], &ru["plays"]),
        (&json!(2), &json!(2)),
        "{ru}"
    );
    assert_eq!(ru["unique_users"], 1, "alice alone: {ru}");
    let de = by_field(&countries, "country", "DE").unwrap_or_else(|| panic!("{countries}"));
    assert_eq!(
        (&de["viewers"], &de["plays"]),
        (&json!(0), &json!(1)),
        "{de}"
    );
    let unknown = by_field(&countries, "country", "XX").unwrap_or_else(|| panic!("{countries}"));
    assert_eq!(unknown["viewers"], 1, "{unknown}");
    assert_eq!(
        countries["items"][0]["country"], "RU",
        "most viewers first: {countries}"
    );

    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let samples = parse_metrics(&app.metrics_text().await);
        let gauge = |country: &str| {
            samples
                .get(&format!(
                    r#"playgate_viewers_by_country{{country="{country}"}}"#
                ))
                .copied()
        };
        if gauge("RU") == Some(2.0) && gauge("XX") == Some(1.0) && gauge("DE").is_none() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "gauge never matched: {samples:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// Without GeoIP databases a session records no country and no ASN, and
/// the statistics count every viewer as `XX` (SPEC §10).
#[tokio::test]
async fn without_databases_sessions_record_no_country() {
    let app = spawn_app().await;
    seed_admins(&app).await;
    app.create(user("alice").token("alice-token")).await;
    let decision = app.decide(play_from("192.0.2.10", "news")).await;
    assert_eq!(reason(&decision), "ok", "{decision}");
    let active = app.admin("GET", "/api/v1/sessions", None, 200).await;
    assert_eq!(active["items"][0]["country"], Value::Null, "{active}");
    assert_eq!(active["items"][0]["asn"], Value::Null, "{active}");
    let countries = app.admin("GET", "/api/v1/stats/countries", None, 200).await;
    assert_eq!(
        countries["items"].as_array().unwrap().len(),
        1,
        "{countries}"
    );
    assert_eq!(countries["items"][0]["country"], "XX");
    assert_eq!(countries["items"][0]["viewers"], 1);
}
