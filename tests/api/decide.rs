//! SPEC §2 through `POST /hook/decide`: every reason code, IPv6, IP
//! authorization, packages, bad input.

use playgate::domain::RuleAction;
use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn every_policy_reason_code() {
    let app = spawn_app().await;
    app.package("sports", &["sport/*", "espn"]).await;
    app.create(
        user("alice")
            .token("alice-token")
            .password("alice-pw")
            .packages(&["sports"])
            .limit(1),
    )
    .await;
    app.create(
        user("bob")
            .token("bob-token")
            .expires_at("2020-01-01T00:00:00Z"),
    )
    .await;
    app.create(user("carol").token("carol-token").disabled())
        .await;
    app.create(user("dave").token("dave-token").ips(&["10.1.0.0/16"]))
        .await;
    let erin = app.create(user("erin")).await;
    app.db()
        .await
        .execute(
            "INSERT INTO tokens (user_id, hash, expires_at) VALUES ($1, sha256('old-token'), now() - interval '1 minute')",
            &[&erin],
        )
        .await
        .unwrap();
    app.ip_rule("198.51.100.0/24", RuleAction::Deny).await;
    app.ip_rule("203.0.113.0/24", RuleAction::Allow).await;
    app.reload().await;

    let token = |t: &str| json!({"token": t});
    let cases = [
        (
            with(play("espn", "198.51.100.7"), token("alice-token")),
            false,
            "ip_denied",
        ),
        (play("anything", "203.0.113.9"), true, "ip_allowed"),
        (
            with(play("espn", "192.0.2.1"), token("no-such-token")),
            false,
            "unknown_token",
        ),
        (
            with(play("espn", "192.0.2.1"), token("old-token")),
            false,
            "token_expired",
        ),
        (
            with(
                play("espn", "192.0.2.1"),
                json!({"login": "alice", "password": "wrong"}),
            ),
            false,
            "bad_credentials",
        ),
        (
            with(
                play("espn", "192.0.2.1"),
                json!({"login": "nobody", "password": "x"}),
            ),
            false,
            "bad_credentials",
        ),
        (play("espn", "192.0.2.1"), false, "no_credentials"),
        (
            with(play("espn", "192.0.2.1"), token("carol-token")),
            false,
            "user_disabled",
        ),
        (
            with(play("espn", "192.0.2.1"), token("bob-token")),
            false,
            "user_expired",
        ),
        (
            with(play("espn", "192.0.2.1"), token("dave-token")),
            false,
            "ip_mismatch",
        ),
        (
            with(play("cnn", "192.0.2.1"), token("alice-token")),
            false,
            "stream_not_allowed",
        ),
        (
            with(
                play("sport/f1", "192.0.2.1"),
                json!({"login": "alice", "password": "alice-pw", "session": "p1"}),
            ),
            true,
            "ok",
        ),
        // Another device (another player here): at the limit. The same
        // device would be zapping, and replace its session on sport/f1.
        (
            with(
                play("espn", "192.0.2.1"),
                json!({"token": "alice-token", "session": "p2", "user_agent": "tv-2"}),
            ),
            false,
            "session_limit",
        ),
    ];
    for (request, allow, expected) in cases {
        let decision = app.decide(request.clone()).await;
        assert_eq!(reason(&decision), expected, "{request}");
        assert_eq!(decision["allow"], allow, "{request}");
        assert_eq!(decision["duration"], 60);
    }

    // The allowed login carries who, the limit and the count.
    let decision = app
        .decide(with(
            play("sport/f1", "192.0.2.1"),
            json!({"login": "alice", "password": "alice-pw", "session": "p1"}),
        ))
        .await;
    assert_eq!(decision["user"], "alice");
    assert_eq!(decision["max_sessions"], 1);
    assert_eq!(decision["active_sessions"], 1);
    assert!(decision["session_id"].as_str().unwrap().len() == 36);

    // Every decision is counted by dialect, result and reason.
    let samples = parse_metrics(&app.metrics_text().await);
    assert_eq!(decisions(&samples, "decide", "deny", "ip_denied"), 1.0);
    assert_eq!(decisions(&samples, "decide", "allow", "ip_allowed"), 1.0);
    assert_eq!(
        decisions(&samples, "decide", "deny", "bad_credentials"),
        2.0
    );
    assert_eq!(decisions(&samples, "decide", "allow", "ok"), 2.0);
    assert_eq!(
        samples[r#"playgate_decision_duration_seconds_count{dialect="decide"}"#],
        14.0
    );
}

#[tokio::test]
async fn ip_allowed_is_anonymous_and_unlimited() {
    let app = spawn_app().await;
    app.ip_rule("203.0.113.0/24", RuleAction::Allow).await;
    for n in 0..3 {
        let decision = app
            .decide(with(
                play("news", "203.0.113.5"),
                json!({"session": format!("s{n}")}),
            ))
            .await;
        assert_eq!(reason(&decision), "ip_allowed");
        assert_eq!(decision["user"], serde_json::Value::Null);
        assert!(decision["session_id"].is_string());
    }
    let anonymous: i64 = app
        .db()
        .await
        .query_one(
            "SELECT count(*) FROM sessions WHERE login IS NULL AND ended_at IS NULL",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(anonymous, 3);
}

#[tokio::test]
async fn deny_rule_beats_allow_rule_and_valid_credentials() {
    let app = spawn_app().await;
    app.create(user("alice").token("t")).await;
    app.ip_rule("192.0.2.0/24", RuleAction::Allow).await;
    app.ip_rule("192.0.2.128/25", RuleAction::Deny).await;
    let denied = app
        .decide(with(play("news", "192.0.2.200"), json!({"token": "t"})))
        .await;
    assert_eq!(reason(&denied), "ip_denied");
    let allowed = app.decide(play("news", "192.0.2.10")).await;
    assert_eq!(reason(&allowed), "ip_allowed");
}

#[tokio::test]
async fn ipv6_rules_and_bindings() {
    let app = spawn_app().await;
    app.create(user("v6user").token("v6-token").ips(&["2001:db8:1::/48"]))
        .await;
    app.ip_rule("2001:db8:bad::/48", RuleAction::Deny).await;
    app.ip_rule("2001:db8:f00::1", RuleAction::Allow).await;

    let cases = [
        (
            with(play("news", "2001:db8:1::42"), json!({"token": "v6-token"})),
            "ok",
        ),
        (
            with(play("news", "2001:db8:2::42"), json!({"token": "v6-token"})),
            "ip_mismatch",
        ),
        (play("news", "2001:db8:1:ffff::1"), "ok"),
        (
            with(
                play("news", "2001:db8:bad::1"),
                json!({"token": "v6-token"}),
            ),
            "ip_denied",
        ),
        (play("news", "2001:db8:f00::1"), "ip_allowed"),
        (play("news", "2001:db8:f00::2"), "no_credentials"),
    ];
    for (request, expected) in cases {
        assert_eq!(
            reason(&app.decide(request.clone()).await),
            expected,
            "{request}"
        );
    }
    let by_ip = app.decide(play("news", "2001:db8:1:ffff::1")).await;
    assert_eq!(by_ip["user"], "v6user");
    let row = app
        .db()
        .await
        .query_one(
            "SELECT host(client_ip) FROM sessions WHERE login = 'v6user' LIMIT 1",
            &[],
        )
        .await
        .unwrap();
    assert!(row.get::<_, String>(0).starts_with("2001:db8:1:"));
}

#[tokio::test]
async fn ip_authorization_most_specific_network_wins() {
    let app = spawn_app().await;
    app.create(user("building").ips(&["10.0.0.0/8"])).await;
    app.create(user("floor").ips(&["10.1.0.0/16"])).await;
    app.create(user("room").ips(&["10.1.2.0/24", "192.0.2.77"]))
        .await;
    let cases = [
        ("10.1.2.3", "room"),
        ("10.1.3.3", "floor"),
        ("10.200.0.1", "building"),
        ("192.0.2.77", "room"),
        ("::ffff:10.1.2.3", "room"),
    ];
    for (ip, expected) in cases {
        let decision = app.decide(play("news", ip)).await;
        assert_eq!(reason(&decision), "ok", "{ip}");
        assert_eq!(decision["user"], expected, "{ip}");
    }
    assert_eq!(
        reason(&app.decide(play("news", "11.0.0.1")).await),
        "no_credentials"
    );
}

#[tokio::test]
async fn package_globs() {
    let app = spawn_app().await;
    app.package("sports", &["sport/*", "espn"]).await;
    app.package("hd", &["*_hd"]).await;
    app.package("empty", &[]).await;
    app.create(user("fan").token("fan").packages(&["sports", "hd"]))
        .await;
    app.create(user("everything").token("all")).await;
    app.create(user("nothing").token("none").packages(&["empty"]))
        .await;
    let cases = [
        ("fan", "sport/f1", "ok"),
        ("fan", "sport/tennis/live", "ok"),
        ("fan", "espn", "ok"),
        ("fan", "espn2", "stream_not_allowed"),
        ("fan", "sports/f1", "stream_not_allowed"),
        ("fan", "movies_hd", "ok"),
        ("fan", "movies_sd", "stream_not_allowed"),
        ("all", "anything/at/all", "ok"),
        ("none", "espn", "stream_not_allowed"),
    ];
    for (token, stream, expected) in cases {
        let decision = app
            .decide(with(play(stream, "192.0.2.1"), json!({"token": token})))
            .await;
        assert_eq!(reason(&decision), expected, "{token} {stream}");
    }
}

#[tokio::test]
async fn bad_input_gets_400_with_a_reason() {
    let app = spawn_app().await;
    let send = |body: Vec<u8>| {
        app.http
            .post(format!("{}/hook/decide", app.address))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"not json".to_vec(), "invalid request body"),
        (br#"{"ip": "192.0.2.1"}"#.to_vec(), "stream"),
        (br#"{"stream": "news"}"#.to_vec(), "ip"),
        (br#"{"stream": "news", "ip": "192.0.2.300"}"#.to_vec(), "ip"),
        (
            br#"{"stream": "news", "ip": "192.0.2.1", "event": "pause"}"#.to_vec(),
            "event",
        ),
        (
            br#"{"stream": ["news"], "ip": "192.0.2.1"}"#.to_vec(),
            "invalid type",
        ),
        (
            br#"{"stream": "news", "ip": "192.0.2.1", "bytes": "many"}"#.to_vec(),
            "invalid type",
        ),
        (br#"{"stream": "", "ip": "192.0.2.1"}"#.to_vec(), "stream"),
        (
            b"{\"stream\": \"n\xffws\", \"ip\": \"192.0.2.1\"}".to_vec(),
            "invalid request body",
        ),
        (Vec::new(), "invalid request body"),
    ];
    let count = cases.len() as f64;
    for (body, expected) in cases {
        let shown = String::from_utf8_lossy(&body).to_string();
        let response = send(body).await.unwrap();
        assert_eq!(response.status().as_u16(), 400, "{shown}");
        let answer: serde_json::Value = response.json().await.unwrap();
        let message = answer["error"].as_str().unwrap();
        assert!(message.contains(expected), "{shown}: {message}");
        assert!(!message.contains('\n'));
    }
    let oversized = format!(
        r#"{{"stream": "news", "ip": "192.0.2.1", "user_agent": "{}"}}"#,
        "x".repeat(100_000)
    );
    let response = send(oversized.into_bytes()).await.unwrap();
    assert_eq!(response.status().as_u16(), 413);

    let samples = parse_metrics(&app.metrics_text().await);
    assert_eq!(decisions(&samples, "decide", "deny", "bad_request"), count);
    // Nothing reached the engine or the database.
    let sessions: i64 = app
        .db()
        .await
        .query_one("SELECT count(*) FROM session_log", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(sessions, 0);
}

#[tokio::test]
async fn secrets_are_stored_hashed() {
    let app = spawn_app().await;
    app.create(
        user("alice")
            .token("clear-token-value")
            .password("clear-password"),
    )
    .await;
    app.decide(with(
        play("news", "192.0.2.1"),
        json!({"token": "clear-token-value"}),
    ))
    .await;
    let client = app.db().await;
    let dump: String = client
        .query_one(
            "SELECT (SELECT string_agg(t::text, '|') FROM users t) || (SELECT string_agg(t::text, '|') FROM tokens t)
                 || (SELECT string_agg(t::text, '|') FROM sessions t)",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(dump.contains("alice"));
    assert!(!dump.contains("clear-token-value"));
    assert!(!dump.contains("clear-password"));
    assert!(dump.contains("$2b$"), "password stored as bcrypt");
}
