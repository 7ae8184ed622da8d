//! Access rules (issue 20, SPEC §2 step 3 and §10) through the real server:
//! the admin API (positions, validation, audit, roles), every condition
//! alone and negated, first match wins, an allow shields later denies,
//! referer conditions on starts only, the IP lists before the rules, users'
//! countries, and a change in force on a second replica within a second.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::helpers::*;

const RULES: &str = "/api/v1/access-rules";

fn rule_path(id: &Value) -> String {
    format!("{RULES}/{id}")
}

async fn add_rule(app: &TestApp, rule: Value) -> Value {
    app.admin("POST", RULES, Some(rule), 201).await
}

/// (position, comment) of every rule, in list order.
async fn order(app: &TestApp) -> Vec<(i64, String)> {
    let list = app.admin("GET", RULES, None, 200).await;
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|rule| {
            (
                rule["position"].as_i64().unwrap(),
                rule["comment"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn names(order: &[(i64, String)]) -> Vec<&str> {
    order.iter().map(|(_, name)| name.as_str()).collect()
}

#[tokio::test]
async fn rules_keep_their_places_through_inserts_moves_and_deletes() {
    let app = spawn_admin_app().await;
    let a = add_rule(
        &app,
        json!({"action": "deny", "streams": ["a"], "comment": "a"}),
    )
    .await;
    assert_eq!(a["position"], 1);
    assert_eq!(a["enabled"], true);
    assert_eq!(a["networks"], json!([]));
    let b = add_rule(
        &app,
        json!({"action": "deny", "streams": ["b"], "comment": "b"}),
    )
    .await;
    assert_eq!(b["position"], 2);
    // At place 1: the others move down.
    add_rule(
        &app,
        json!({"action": "allow", "streams": ["c"], "comment": "c", "position": 1}),
    )
    .await;
    // Past the end means last.
    let d = add_rule(
        &app,
        json!({"action": "deny", "streams": ["d"], "comment": "d", "position": 99}),
    )
    .await;
    assert_eq!(d["position"], 4);
    let listed = order(&app).await;
    assert_eq!(names(&listed), ["c", "a", "b", "d"]);
    assert_eq!(
        listed.iter().map(|(p, _)| *p).collect::<Vec<_>>(),
        [1, 2, 3, 4]
    );

    // Moves, both ways.
    app.admin(
        "PATCH",
        &rule_path(&d["id"]),
        Some(json!({"position": 1})),
        200,
    )
    .await;
    assert_eq!(names(&order(&app).await), ["d", "c", "a", "b"]);
    app.admin(
        "PATCH",
        &rule_path(&d["id"]),
        Some(json!({"position": 3})),
        200,
    )
    .await;
    assert_eq!(names(&order(&app).await), ["c", "a", "d", "b"]);

    // A PATCH changes only what it names; the merged rule is validated whole.
    let changed = app
        .admin(
            "PATCH",
            &rule_path(&a["id"]),
            Some(json!({"countries": ["ru"], "negate": ["countries"]})),
            200,
        )
        .await;
    assert_eq!(changed["streams"], json!(["a"]));
    assert_eq!(changed["countries"], json!(["RU"]));
    assert_eq!(changed["position"], 2);
    let emptied = app
        .api(
            "PATCH",
            &rule_path(&a["id"]),
            ADMIN,
            Some(json!({"streams": [], "countries": []})),
        )
        .await;
    assert_eq!(emptied.status, 422, "{}", emptied.body);
    assert_eq!(emptied.body["field"], "conditions");

    // A delete closes the gap.
    app.admin("DELETE", &rule_path(&a["id"]), None, 204).await;
    let listed = order(&app).await;
    assert_eq!(names(&listed), ["c", "d", "b"]);
    assert_eq!(
        listed.iter().map(|(p, _)| *p).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    app.admin("GET", &rule_path(&a["id"]), None, 404).await;

    // Every write is in the audit log.
    let audit = app
        .admin("GET", "/api/v1/audit?object_type=access_rule", None, 200)
        .await;
    let actions: Vec<&str> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| entry["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions.iter().filter(|a| **a == "create").count(), 4);
    assert_eq!(actions.iter().filter(|a| **a == "update").count(), 3);
    assert_eq!(actions.iter().filter(|a| **a == "delete").count(), 1);
}

#[tokio::test]
async fn bad_rules_are_refused_naming_the_field() {
    let app = spawn_admin_app().await;
    let cases = [
        (json!({"action": "deny"}), "conditions"),
        (json!({"streams": ["a"]}), "action"),
        (json!({"action": "block", "streams": ["a"]}), "action"),
        (
            json!({"action": "deny", "networks": ["10.0.0.0/33"]}),
            "networks",
        ),
        (json!({"action": "deny", "countries": ["UK"]}), "countries"),
        (json!({"action": "deny", "asns": [-5]}), "asns"),
        (
            json!({"action": "deny", "streams": ["sport/[12]"]}),
            "streams",
        ),
        (
            json!({"action": "deny", "referers": ["https://x.test/"]}),
            "referers",
        ),
        (json!({"action": "deny", "dialects": ["wowza"]}), "dialects"),
        (
            json!({"action": "deny", "streams": ["a"], "negate": ["colour"]}),
            "negate",
        ),
        (
            json!({"action": "deny", "streams": ["a"], "negate": ["countries"]}),
            "negate",
        ),
        (
            json!({"action": "deny", "streams": ["a"], "position": 0}),
            "position",
        ),
    ];
    for (body, field) in cases {
        let answer = app.api("POST", RULES, ADMIN, Some(body.clone())).await;
        assert_eq!(answer.status, 422, "{body}: {}", answer.body);
        assert_eq!(answer.body["field"], field, "{body}: {}", answer.body);
        assert!(
            !answer.body["error"].as_str().unwrap().contains('\n'),
            "one line"
        );
    }
    let unknown = app
        .api(
            "POST",
            RULES,
            ADMIN,
            Some(json!({"action": "deny", "colour": ["red"]})),
        )
        .await;
    assert_eq!(unknown.status, 400, "{}", unknown.body);
    assert_eq!(order(&app).await, []);
}

#[tokio::test]
async fn observers_read_the_rules_and_only_admins_write_them() {
    let app = spawn_admin_app().await;
    let rule = add_rule(&app, json!({"action": "deny", "streams": ["x"]})).await;
    let watcher = Auth::Basic("watcher", "watcher-pw");
    assert_eq!(app.api("GET", RULES, watcher, None).await.status, 200);
    assert_eq!(
        app.api("GET", &rule_path(&rule["id"]), watcher, None)
            .await
            .status,
        200
    );
    let body = Some(json!({"action": "deny", "streams": ["y"]}));
    assert_eq!(
        app.api("POST", RULES, watcher, body.clone()).await.status,
        403
    );
    assert_eq!(
        app.api(
            "PATCH",
            &rule_path(&rule["id"]),
            watcher,
            Some(json!({"enabled": false}))
        )
        .await
        .status,
        403
    );
    assert_eq!(
        app.api("DELETE", &rule_path(&rule["id"]), watcher, None)
            .await
            .status,
        403
    );
    let viewer = Auth::Basic("viewer", "viewer-pw");
    assert_eq!(app.api("GET", RULES, viewer, None).await.status, 403);
}

/// A start of `news` by alice's token from 192.0.2.10, VLC, over HLS.
fn start() -> Value {
    json!({"stream": "news", "ip": "192.0.2.10", "token": "alice-token",
           "user_agent": "VLC/3.0.18 LibVLC/3.0.18", "protocol": "hls",
           "referer": "https://portal.example.com/watch"})
}

async fn app_with_alice() -> TestApp {
    let app = spawn_admin_app().await;
    app.create(user("alice").token("alice-token")).await;
    app
}

/// Each condition alone, then negated: the rule denies exactly the requests
/// it names (or, negated, exactly the others).
#[tokio::test]
async fn each_condition_matches_alone_and_negated() {
    let app = app_with_alice().await;
    // (condition, values matching start(), a request changed so it does not match)
    let cases: Vec<(&str, Value, Value)> = vec![
        (
            "networks",
            json!(["192.0.2.0/24"]),
            json!({"ip": "198.51.100.7"}),
        ),
        // No GeoIP database: every address is XX (unknown), ASN 0.
        ("countries", json!(["XX"]), Value::Null),
        ("asns", json!([0]), Value::Null),
        (
            "user_agents",
            json!(["*vlc*"]),
            json!({"user_agent": "Lavf/60.3.100"}),
        ),
        (
            "referers",
            json!(["*.example.com"]),
            json!({"referer": "https://elsewhere.test/"}),
        ),
        ("streams", json!(["ne*"]), json!({"stream": "sport"})),
        ("protocols", json!(["hls"]), json!({"protocol": "rtmp"})),
        ("dialects", json!(["decide"]), Value::Null),
    ];
    for (condition, values, other) in cases {
        let mut body = json!({"action": "deny", "comment": condition});
        body[condition] = values.clone();
        let rule = add_rule(&app, body).await;
        let denied = app.decide(start()).await;
        assert_eq!(reason(&denied), "rule_denied", "{condition}: {denied}");
        assert_eq!(denied["rule"], rule["id"], "{condition}");
        assert_eq!(denied["allow"], false);
        if !other.is_null() {
            let allowed = app.decide(with(start(), other.clone())).await;
            assert_eq!(allowed["allow"], true, "{condition} {other}: {allowed}");
            assert_eq!(allowed["rule"], Value::Null);
        }
        // Negated: the other request is denied, start() is not.
        app.admin(
            "PATCH",
            &rule_path(&rule["id"]),
            Some(json!({"negate": [condition]})),
            200,
        )
        .await;
        let allowed = app.decide(start()).await;
        assert_eq!(allowed["allow"], true, "negated {condition}: {allowed}");
        if !other.is_null() {
            let denied = app.decide(with(start(), other)).await;
            assert_eq!(
                reason(&denied),
                "rule_denied",
                "negated {condition}: {denied}"
            );
        }
        app.admin("DELETE", &rule_path(&rule["id"]), None, 204)
            .await;
    }
}

#[tokio::test]
async fn the_first_match_decides_and_an_allow_shields_later_denies() {
    let app = app_with_alice().await;
    let office = add_rule(
        &app,
        json!({"action": "allow", "networks": ["192.0.2.0/28"], "comment": "office"}),
    )
    .await;
    let lock = add_rule(
        &app,
        json!({"action": "deny", "streams": ["news"], "countries": ["RU"],
               "negate": ["countries"], "comment": "news from RU only"}),
    )
    .await;
    // From the office: the allow matches first, the deny is skipped.
    let allowed = app.decide(start()).await;
    assert_eq!(allowed["allow"], true, "{allowed}");
    assert_eq!(allowed["rule"], office["id"], "the allow rule is named");
    assert_eq!(
        allowed["user"], "alice",
        "an allow rule skips rules, not identity"
    );
    // From elsewhere: unknown country, so the territory lock denies.
    let denied = app.decide(with(start(), json!({"ip": "192.0.2.99"}))).await;
    assert_eq!(reason(&denied), "rule_denied", "{denied}");
    assert_eq!(denied["rule"], lock["id"]);
    // An allow rule still needs credentials: it is not the IP allow list.
    let anonymous = app
        .decide(json!({"stream": "news", "ip": "192.0.2.1"}))
        .await;
    assert_eq!(reason(&anonymous), "no_credentials", "{anonymous}");

    // Moved first, the deny wins even from the office.
    app.admin(
        "PATCH",
        &rule_path(&lock["id"]),
        Some(json!({"position": 1})),
        200,
    )
    .await;
    let denied = app.decide(start()).await;
    assert_eq!(denied["rule"], lock["id"], "{denied}");
    // Disabled, it no longer applies.
    app.admin(
        "PATCH",
        &rule_path(&lock["id"]),
        Some(json!({"enabled": false})),
        200,
    )
    .await;
    let allowed = app.decide(with(start(), json!({"ip": "192.0.2.99"}))).await;
    assert_eq!(allowed["allow"], true, "{allowed}");

    // Counted per rule and logged.
    let metrics = parse_metrics(&app.metrics_text().await);
    let key = format!("playgate_rule_denials_total{{rule=\"{}\"}}", lock["id"]);
    assert_eq!(metrics.get(&key).copied(), Some(2.0), "{key}");
}

#[tokio::test]
async fn a_referer_rule_checks_starts_only() {
    let app = app_with_alice().await;
    add_rule(
        &app,
        json!({"action": "deny", "referers": ["portal.example.com", "*.portal.example.com"],
               "negate": ["referers"], "comment": "embed lock"}),
    )
    .await;
    let session = json!({"session": "player-1"});
    let allowed = app.decide(with(start(), session.clone())).await;
    assert_eq!(allowed["allow"], true, "{allowed}");
    let stolen = app
        .decide(with(
            start(),
            json!({"referer": "https://restreamer.test/", "session": "player-2"}),
        ))
        .await;
    assert_eq!(reason(&stolen), "rule_denied", "{stolen}");
    let bare = app
        .decide(with(start(), json!({"referer": "", "session": "player-3"})))
        .await;
    assert_eq!(
        reason(&bare),
        "rule_denied",
        "no referer is not the portal: {bare}"
    );
    // The refresh carries no referer and is not denied for it.
    let refresh = app
        .decide(with(
            start(),
            json!({"referer": "", "session": "player-1", "event": "refresh"}),
        ))
        .await;
    assert_eq!(refresh["allow"], true, "{refresh}");
}

#[tokio::test]
async fn the_ip_lists_come_before_the_rules() {
    let app = app_with_alice().await;
    add_rule(&app, json!({"action": "deny", "streams": ["*"]})).await;
    app.ip_rule("192.0.2.0/24", playgate::domain::RuleAction::Allow)
        .await;
    app.ip_rule("203.0.113.0/24", playgate::domain::RuleAction::Deny)
        .await;
    let allowed = app.decide(start()).await;
    assert_eq!(reason(&allowed), "ip_allowed", "{allowed}");
    assert_eq!(allowed["rule"], Value::Null);
    let denied = app
        .decide(with(start(), json!({"ip": "203.0.113.5"})))
        .await;
    assert_eq!(reason(&denied), "ip_denied", "{denied}");
    let ruled = app
        .decide(with(start(), json!({"ip": "198.51.100.5"})))
        .await;
    assert_eq!(reason(&ruled), "rule_denied", "{ruled}");
}

/// A new deny rule ends a session at its next refresh, as a revoked token does.
#[tokio::test]
async fn a_refresh_is_denied_by_a_rule_added_after_the_start() {
    let app = app_with_alice().await;
    let first = app.decide(with(start(), json!({"session": "s1"}))).await;
    assert_eq!(first["allow"], true);
    add_rule(&app, json!({"action": "deny", "streams": ["news"]})).await;
    let refresh = app
        .decide(with(start(), json!({"session": "s1", "event": "refresh"})))
        .await;
    assert_eq!(reason(&refresh), "rule_denied", "{refresh}");
}

/// Forward-auth segments continue their player's session without
/// credentials: they are re-checked against the rules too.
#[tokio::test]
async fn hls_segments_are_rechecked_against_the_rules() {
    let app = app_with_alice().await;
    let playlist = app
        .hls_get("/live/news/index.m3u8?token=alice-token", "192.0.2.10")
        .await;
    assert_eq!(playlist.status, 200, "{}", playlist.body);
    let segment = app.hls_get("/live/news/seg1.ts", "192.0.2.10").await;
    assert_eq!(segment.status, 200, "{}", segment.body);
    add_rule(&app, json!({"action": "deny", "networks": ["192.0.2.10"]})).await;
    let segment = app.hls_get("/live/news/seg2.ts", "192.0.2.10").await;
    assert_eq!(segment.status, 403, "{}", segment.body);
}

#[tokio::test]
async fn a_user_limited_to_countries_is_refused_elsewhere() {
    let app = app_with_alice().await;
    let changed = app
        .admin(
            "PATCH",
            "/api/v1/users/alice",
            Some(json!({"countries": ["ru", "KZ"]})),
            200,
        )
        .await;
    assert_eq!(changed["countries"], json!(["RU", "KZ"]));
    // No GeoIP database: the address is XX, not RU or KZ.
    let refused = app.decide(start()).await;
    assert_eq!(reason(&refused), "country_mismatch", "{refused}");
    app.admin(
        "PATCH",
        "/api/v1/users/alice",
        Some(json!({"countries": ["RU", "XX"]})),
        200,
    )
    .await;
    let allowed = app.decide(start()).await;
    assert_eq!(allowed["allow"], true, "{allowed}");
    let bad = app
        .api(
            "PATCH",
            "/api/v1/users/alice",
            ADMIN,
            Some(json!({"countries": ["SU"]})),
        )
        .await;
    assert_eq!(bad.status, 422, "{}", bad.body);
    assert_eq!(bad.body["field"], "countries");
    // The import takes them too.
    let imported = app
        .admin(
            "POST",
            "/api/v1/import",
            Some(json!([{"login": "bob", "token": "bob-token", "countries": ["de"]}])),
            200,
        )
        .await;
    assert_eq!(imported["created"], 1, "{imported}");
    let bob = app.admin("GET", "/api/v1/users/bob", None, 200).await;
    assert_eq!(bob["countries"], json!(["DE"]));
}

#[tokio::test]
async fn a_rule_change_is_in_force_on_another_replica_within_a_second() {
    let a = spawn_admin_app().await;
    a.create(user("alice").token("alice-token")).await;
    let b = spawn_on(a.db.clone(), |_| {}).await;
    assert_eq!(b.decide(start()).await["allow"], true);

    let started = Instant::now();
    let rule = add_rule(&a, json!({"action": "deny", "streams": ["news"]})).await;
    wait_for_b(&b, started, "rule_denied").await;
    let started = Instant::now();
    a.admin(
        "PATCH",
        &rule_path(&rule["id"]),
        Some(json!({"enabled": false})),
        200,
    )
    .await;
    wait_for_b(&b, started, "ok").await;
    let started = Instant::now();
    a.admin(
        "PATCH",
        &rule_path(&rule["id"]),
        Some(json!({"enabled": true})),
        200,
    )
    .await;
    wait_for_b(&b, started, "rule_denied").await;
    let started = Instant::now();
    a.admin("DELETE", &rule_path(&rule["id"]), None, 204).await;
    wait_for_b(&b, started, "ok").await;
}

/// Polls B with a start until its reason is `expected`; fails after a second.
async fn wait_for_b(b: &TestApp, started: Instant, expected: &str) {
    let mut n = 0;
    loop {
        n += 1;
        let decision = b
            .decide(with(start(), json!({"session": format!("b-{n}")})))
            .await;
        let elapsed = started.elapsed();
        if reason(&decision) == expected {
            println!("{expected}: in force on B after {elapsed:?}");
            return;
        }
        assert!(
            elapsed < Duration::from_secs(1),
            "B still answers {decision} after {elapsed:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
