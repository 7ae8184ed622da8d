//! `playgate import-astra <astra.conf>` (issue 9): the real binary against the
//! test's database, then decisions through `/hook/astra`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::json;

use crate::helpers::*;

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/astra.conf");
/// subscriber42's token in the fixture.
const TOKEN: &str = "3e3db68b1486";

struct Run {
    success: bool,
    stdout: String,
    stderr: String,
}

/// Runs `playgate import-astra [--dry-run] <file>` with a clean environment
/// but the test database's URL.
async fn import_astra(app: &TestApp, file: &Path, dry_run: bool) -> Run {
    let url = app.db.url.clone();
    let file = file.to_path_buf();
    let output: Output = tokio::task::spawn_blocking(move || {
        let mut command = Command::new(env!("CARGO_BIN_EXE_playgate"));
        for (name, _) in std::env::vars() {
            if name.starts_with("PLAYGATE_") || name == "DATABASE_URL" {
                command.env_remove(name);
            }
        }
        command.arg("import-astra");
        if dry_run {
            command.arg("--dry-run");
        }
        command
            .arg(&file)
            .env("DATABASE_URL", url)
            .output()
            .expect("run playgate")
    })
    .await
    .unwrap();
    let run = Run {
        success: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    };
    assert!(
        !run.stdout.contains(TOKEN) && !run.stderr.contains(TOKEN),
        "a token was printed: {}{}",
        run.stdout,
        run.stderr
    );
    run
}

/// A file of its own in the temporary directory, removed on drop.
struct TempFile(PathBuf);

impl TempFile {
    fn new(text: &str) -> TempFile {
        let path =
            std::env::temp_dir().join(format!("astra-{}.conf", uuid::Uuid::new_v4().simple()));
        std::fs::write(&path, text).unwrap();
        TempFile(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// (users, tokens, packages, user↔package links, audit entries by import-astra)
async fn counts(app: &TestApp) -> [i64; 5] {
    let row = app
        .db()
        .await
        .query_one(
            "SELECT (SELECT count(*) FROM users), (SELECT count(*) FROM tokens),
                    (SELECT count(*) FROM packages), (SELECT count(*) FROM user_packages),
                    (SELECT count(*) FROM audit_log WHERE actor = 'import-astra')",
            &[],
        )
        .await
        .unwrap();
    [row.get(0), row.get(1), row.get(2), row.get(3), row.get(4)]
}

fn astra_headers<'a>(channel: &'a str, session: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("X-Session-ID", session),
        ("X-Channel-ID", channel),
        ("X-Real-IP", "203.0.113.42"),
        ("X-Real-Path", "/play/x/index.m3u8"),
        ("X-Real-UA", "VLC/3.0.18"),
    ]
}

#[tokio::test]
async fn the_example_imports_once_and_plays_its_package() {
    let app = spawn_app().await;
    let first = import_astra(&app, Path::new(FIXTURE), false).await;
    assert!(first.success, "{}{}", first.stdout, first.stderr);
    println!("{}", first.stdout);
    assert!(first
        .stdout
        .contains("packages (from categories, 2 streams): 2 created, 0 updated"));
    assert!(first
        .stdout
        .contains("users: 3 created, 0 updated, 0 unchanged; 1 token(s) added"));
    assert!(first.stdout.contains("2 user(s) have no way to log in"));
    assert!(first
        .stdout
        .contains("  admin (admin): no password, no token"));
    assert!(first
        .stdout
        .contains("  support (observer): no password, no token"));
    assert_eq!(counts(&app).await, [3, 1, 2, 1, 1]);

    let row = app
        .db()
        .await
        .query_one(
            "SELECT kind, comment, ips::text[], max_sessions, expires_at = to_timestamp(1893456000),
                    enabled, password_hash IS NULL
               FROM users WHERE login = 'subscriber42'",
            &[],
        )
        .await
        .unwrap();
    let row: (String, String, Vec<String>, Option<i32>, bool, bool, bool) = (
        row.get(0),
        row.get(1),
        row.get(2),
        row.get(3),
        row.get(4),
        row.get(5),
        row.get(6),
    );
    assert_eq!(
        row,
        (
            "user".into(),
            "flat 12, STB in living room".into(),
            vec!["203.0.113.42/32".into()],
            Some(2),
            true,
            true,
            true
        )
    );
    let kinds: Vec<(String, String)> = app
        .db()
        .await
        .query("SELECT login, kind FROM users ORDER BY login", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        kinds,
        [
            ("admin".into(), "admin".into()),
            ("subscriber42".into(), "user".into()),
            ("support".into(), "observer".into())
        ]
    );
    let streams: Vec<(String, Vec<String>)> = app
        .db()
        .await
        .query("SELECT name, streams FROM packages ORDER BY name", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        streams,
        [
            ("Basic".into(), vec!["a00a".into()]),
            ("Premium".into(), vec!["a00b".into()])
        ]
    );
    let updated_at: chrono::DateTime<chrono::Utc> = app
        .db()
        .await
        .query_one("SELECT max(updated_at) FROM users", &[])
        .await
        .unwrap()
        .get(0);

    // Again: nothing changes.
    let second = import_astra(&app, Path::new(FIXTURE), false).await;
    assert!(second.success, "{}{}", second.stdout, second.stderr);
    assert!(second.stdout.contains("2 unchanged"), "{}", second.stdout);
    assert!(
        second
            .stdout
            .contains("users: 0 created, 0 updated, 3 unchanged; 0 token(s) added"),
        "{}",
        second.stdout
    );
    assert!(second.stdout.contains("nothing to change"));
    assert_eq!(counts(&app).await, [3, 1, 2, 1, 1]);
    let again: chrono::DateTime<chrono::Utc> = app
        .db()
        .await
        .query_one("SELECT max(updated_at) FROM users", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(updated_at, again);

    // The other process's writes reach this replica's policy view by NOTIFY;
    // reload to not depend on its timing.
    app.reload().await;
    let news = app
        .hook_get(
            &format!("/hook/astra?token={TOKEN}"),
            &astra_headers("a00a", "1"),
        )
        .await;
    assert_eq!(news.status, 200, "{}", news.body);
    assert_eq!(news.header("x-session-name"), Some("subscriber42"));
    let cinema = app
        .hook_get(
            &format!("/hook/astra?token={TOKEN}"),
            &astra_headers("a00b", "2"),
        )
        .await;
    assert_eq!(cinema.status, 403);
    assert_eq!(
        app.decision_count("astra", "deny", "stream_not_allowed")
            .await,
        1.0
    );
}

#[tokio::test]
async fn an_edit_in_astra_is_an_update_and_dry_run_writes_nothing() {
    let app = spawn_app().await;
    let dry = import_astra(&app, Path::new(FIXTURE), true).await;
    assert!(dry.success, "{}{}", dry.stdout, dry.stderr);
    assert!(dry
        .stdout
        .contains("users: 3 would be created, 0 would be updated, 0 unchanged"));
    assert!(dry.stdout.contains("dry run: nothing written"));
    assert_eq!(counts(&app).await, [0, 0, 0, 0, 0]);

    assert!(import_astra(&app, Path::new(FIXTURE), false).await.success);
    let edited = std::fs::read_to_string(FIXTURE)
        .unwrap()
        .replace("\"conlimit\": 2", "\"conlimit\": 3")
        .replace(
            "\"packages\": [\"Basic\"]",
            "\"packages\": [\"Basic\", \"Premium\"]",
        );
    let file = TempFile::new(&edited);
    let dry = import_astra(&app, &file.0, true).await;
    assert!(
        dry.stdout
            .contains("  ~ subscriber42 (user): max_sessions, packages"),
        "{}",
        dry.stdout
    );
    assert_eq!(counts(&app).await, [3, 1, 2, 1, 1]);
    let run = import_astra(&app, &file.0, false).await;
    assert!(run
        .stdout
        .contains("users: 0 created, 1 updated, 2 unchanged; 0 token(s) added"));
    assert_eq!(counts(&app).await, [3, 1, 2, 2, 2]);
    let limit: Option<i32> = app
        .db()
        .await
        .query_one(
            "SELECT max_sessions FROM users WHERE login = 'subscriber42'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(limit, Some(3));
}

#[tokio::test]
async fn malformed_files_write_nothing() {
    let app = spawn_app().await;
    let bad_json = TempFile::new("{\n  \"users\": {\n    \"bob\": {\"type\": 3,}\n  }\n}\n");
    let run = import_astra(&app, &bad_json.0, false).await;
    assert!(!run.success);
    assert!(
        run.stderr
            .contains("not valid JSON at line 3, column 23: trailing comma"),
        "{}",
        run.stderr
    );

    // A good user and categories first, then a user with a wrong-typed field.
    let wrong_type = TempFile::new(
        r#"{"categories": [{"name": "Basic"}],
            "make_stream": [{"id": "a00a", "groups": {"Basic": "News"}}],
            "users": {"alice": {"type": 3, "token": "alice-token"},
                      "bob": {"type": 3, "expire": "next year"}}}"#,
    );
    let run = import_astra(&app, &wrong_type.0, false).await;
    assert!(!run.success);
    assert!(
        run.stderr.contains("user 'bob': field 'expire'"),
        "{}",
        run.stderr
    );

    // A package that is neither a category nor a playgate package would
    // otherwise mean "every stream": refused.
    let unknown = TempFile::new(
        r#"{"categories": [{"name": "Basic"}],
            "users": {"carol": {"packages": ["Gone"]}}}"#,
    );
    let run = import_astra(&app, &unknown.0, false).await;
    assert!(!run.success);
    assert!(
        run.stderr.contains("user 'carol': field 'packages'"),
        "{}",
        run.stderr
    );
    assert_eq!(counts(&app).await, [0, 0, 0, 0, 0]);
}

#[tokio::test]
async fn numbers_as_strings_and_connlimit() {
    let app = spawn_app().await;
    let file = TempFile::new(
        r#"{"users": {
              "viewer": {"type": "3", "enable": true, "expire": "1893456000", "connlimit": "4",
                         "ip": "198.51.100.7"},
              "noc": {"type": "2", "expire": "0", "conlimit": "0"}
           }}"#,
    );
    let run = import_astra(&app, &file.0, false).await;
    assert!(run.success, "{}{}", run.stdout, run.stderr);
    let rows: Vec<(String, String, Option<i32>, Option<f64>)> = app
        .db()
        .await
        .query(
            "SELECT login, kind, max_sessions, extract(epoch FROM expires_at)::float8
               FROM users ORDER BY login",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect();
    assert_eq!(
        rows,
        [
            ("noc".into(), "observer".into(), None, None),
            ("viewer".into(), "user".into(), Some(4), Some(1893456000.0)),
        ]
    );
    // The viewer plays by IP alone.
    app.reload().await;
    let answer = app
        .hook_get(
            "/hook/astra",
            &[
                ("X-Session-ID", "5"),
                ("X-Channel-ID", "a00a"),
                ("X-Real-IP", "198.51.100.7"),
            ],
        )
        .await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.header("x-session-name"), Some("viewer"));
}

#[tokio::test]
async fn a_reimport_is_stable_with_mixed_case_and_spaced_categories() {
    let app = spawn_app().await;
    let file = TempFile::new(
        r#"{"categories": [{"name": "basic"}, {"name": "Premium Sport"}, {"name": "Zeta"}],
            "make_stream": [{"id": "s2", "groups": {"basic": "a", "Zeta": "z"}},
                            {"id": "S1", "groups": {"Premium Sport": "b", "basic": "a"}}],
            "users": {"u1": {"token": "t-u1", "packages": ["basic", "Premium Sport", "Zeta"]},
                      "u2": {"ip": "192.0.2.0/24 198.51.100.9"}}}"#,
    );
    let first = import_astra(&app, &file.0, false).await;
    assert!(first.success, "{}{}", first.stdout, first.stderr);
    assert!(
        first.stdout.contains("  + Premium_Sport (1 stream)"),
        "{}",
        first.stdout
    );
    let second = import_astra(&app, &file.0, false).await;
    assert!(
        second
            .stdout
            .contains("packages (from categories, 2 streams): 0 created, 0 updated, 3 unchanged"),
        "{}",
        second.stdout
    );
    assert!(
        second
            .stdout
            .contains("users: 0 created, 0 updated, 2 unchanged; 0 token(s) added"),
        "{}",
        second.stdout
    );
    assert_eq!(counts(&app).await, [2, 1, 3, 3, 1]);
}

/// Issue 15: an Astra admin's token is used in play URLs, so it is imported
/// as a playback token: it plays, and it does not open the admin API.
#[tokio::test]
async fn an_imported_admin_token_plays_but_opens_no_api() {
    let app = spawn_app().await;
    let with_token = std::fs::read_to_string(FIXTURE).unwrap().replacen(
        "\"type\": 1, \"enable\": true,",
        "\"type\": 1, \"enable\": true, \"token\": \"astra-admin-token-1\",",
        1,
    );
    let file = TempFile::new(&with_token);
    let run = import_astra(&app, &file.0, false).await;
    assert!(run.success, "{}{}", run.stdout, run.stderr);
    app.reload().await;
    let play = app
        .decide(json!({"stream": "anything", "ip": "192.0.2.1", "token": "astra-admin-token-1"}))
        .await;
    assert_eq!(play["user"], "admin");
    let answer = app
        .api(
            "GET",
            "/api/v1/users",
            Auth::Bearer("astra-admin-token-1"),
            None,
        )
        .await;
    assert_eq!(answer.status, 401);
}
