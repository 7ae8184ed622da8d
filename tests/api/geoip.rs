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
