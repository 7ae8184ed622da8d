//! Admin API: packages, IP rules, sessions (list, history, kick), audit.

use serde_json::{json, Value};

use crate::helpers::*;

#[tokio::test]
async fn packages_crud() {
    let app = spawn_admin_app().await;
    let created = app
        .admin(
            "POST",
            "/api/v1/packages",
            Some(json!({"name": "sports", "comment": "", "streams": ["sport/*", "espn", "espn"]})),
            201,
        )
        .await;
    assert_eq!(created["streams"], json!(["sport/*", "espn"]));
    assert_eq!(created["users"], 0);
    app.admin(
        "POST",
        "/api/v1/packages",
        Some(json!({"name": "movies", "streams": ["*_hd"]})),
        201,
    )
    .await;
    let list = app
        .admin("GET", "/api/v1/packages?limit=1", None, 200)
        .await;
    assert_eq!(list["total"], 2);
    assert_eq!(list["items"][0]["name"], "movies");
    app.admin(
        "POST",
        "/api/v1/users",
        Some(json!({"login": "fan", "packages": ["sports"]})),
        201,
    )
    .await;
    assert_eq!(
        app.admin("GET", "/api/v1/packages/sports", None, 200).await["users"],
        1
    );
    let renamed = app
        .admin(
            "PATCH",
            "/api/v1/packages/sports",
            Some(json!({"name": "sport", "comment": "all sport"})),
            200,
        )
        .await;
    assert_eq!(
        (renamed["name"].as_str(), renamed["comment"].as_str()),
        (Some("sport"), Some("all sport"))
    );
    assert_eq!(
        app.admin("GET", "/api/v1/users/fan", None, 200).await["packages"],
        json!(["sport"])
    );
    let clash = app
        .api(
            "PATCH",
            "/api/v1/packages/sport",
            ADMIN,
            Some(json!({"name": "movies"})),
        )
        .await;
    assert_eq!(clash.status, 409);
    // fan's only package may not go (admin_safety.rs); with another it may.
    assert_eq!(
        app.api("DELETE", "/api/v1/packages/sport", ADMIN, None)
            .await
            .status,
        409
    );
    app.admin(
        "PATCH",
        "/api/v1/users/fan",
        Some(json!({"packages": ["sport", "movies"]})),
        200,
    )
    .await;
    app.admin("DELETE", "/api/v1/packages/sport", None, 204)
        .await;
    assert_eq!(
        app.admin("GET", "/api/v1/users/fan", None, 200).await["packages"],
        json!(["movies"])
    );
}

/// A package's `max_viewers` (SPEC §11 capacity): set on create, changed
/// and cleared by PATCH, validated with a 422 naming it, audited.
#[tokio::test]
async fn package_max_viewers_round_trips_is_validated_and_audited() {
    let app = spawn_admin_app().await;
    let created = app
        .admin(
            "POST",
            "/api/v1/packages",
            Some(json!({"name": "sports", "streams": ["sport/*"], "max_viewers": 100})),
            201,
        )
        .await;
    assert_eq!(created["max_viewers"], 100);
    let plain = app
        .admin(
            "POST",
            "/api/v1/packages",
            Some(json!({"name": "news", "streams": ["news"]})),
            201,
        )
        .await;
    assert_eq!(plain["max_viewers"], Value::Null, "no cap unless asked");
    assert!(plain.as_object().unwrap().contains_key("max_viewers"));
    let listed = app.admin("GET", "/api/v1/packages", None, 200).await;
    let caps: Vec<(Value, Value)> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["name"].clone(), p["max_viewers"].clone()))
        .collect();
    assert_eq!(
        caps,
        [(json!("news"), Value::Null), (json!("sports"), json!(100))]
    );

    // PATCH: a new cap; absent = unchanged; null clears; 0 is a cap.
    let patched = app
        .admin(
            "PATCH",
            "/api/v1/packages/sports",
            Some(json!({"max_viewers": 5})),
            200,
        )
        .await;
    assert_eq!(
        (patched["max_viewers"].clone(), patched["streams"].clone()),
        (json!(5), json!(["sport/*"]))
    );
    let renamed = app
        .admin(
            "PATCH",
            "/api/v1/packages/sports",
            Some(json!({"name": "sport", "comment": "renamed"})),
            200,
        )
        .await;
    assert_eq!(renamed["max_viewers"], 5, "untouched");
    let cleared = app
        .admin(
            "PATCH",
            "/api/v1/packages/sport",
            Some(json!({"max_viewers": null})),
            200,
        )
        .await;
    assert_eq!(cleared["max_viewers"], Value::Null);
    let zero = app
        .admin(
            "PATCH",
            "/api/v1/packages/sport",
            Some(json!({"max_viewers": 0})),
            200,
        )
        .await;
    assert_eq!(zero["max_viewers"], 0);
    assert_eq!(
        app.admin("GET", "/api/v1/packages/sport", None, 200).await["max_viewers"],
        0
    );

    for bad in [
        json!(-1),
        json!("x"),
        json!(1u64 << 40),
        json!(2.5),
        json!({"n": 1}),
    ] {
        let answer = app
            .api(
                "POST",
                "/api/v1/packages",
                ADMIN,
                Some(json!({"name": "movies", "streams": ["*_hd"], "max_viewers": bad})),
            )
            .await;
        assert_eq!(
            (answer.status, answer.body["field"].as_str()),
            (422, Some("max_viewers")),
            "POST {bad}: {}",
            answer.body
        );
        assert!(answer.body["error"]
            .as_str()
            .unwrap()
            .contains("max_viewers"));
        let answer = app
            .api(
                "PATCH",
                "/api/v1/packages/sport",
                ADMIN,
                Some(json!({"max_viewers": bad, "comment": "not saved"})),
            )
            .await;
        assert_eq!(
            (answer.status, answer.body["field"].as_str()),
            (422, Some("max_viewers")),
            "PATCH {bad}: {}",
            answer.body
        );
    }
    app.admin("GET", "/api/v1/packages/movies", None, 404).await;
    let sport = app.admin("GET", "/api/v1/packages/sport", None, 200).await;
    assert_eq!(
        (sport["max_viewers"].clone(), sport["comment"].clone()),
        (json!(0), json!("renamed"))
    );

    // The audit names the field and its new value, null included. (A
    // rename keeps the entries under the name the write was made to.)
    let audit = app
        .admin(
            "GET",
            "/api/v1/audit?object_type=package&limit=100",
            None,
            200,
        )
        .await;
    let caps: Vec<(Value, Option<Value>)> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .map(|e| {
            (
                e["object_id"].clone(),
                e["changes"].get("max_viewers").cloned(),
            )
        })
        .collect();
    assert_eq!(
        caps,
        [
            (json!("sports"), Some(json!(100))),
            (json!("news"), None),
            (json!("sports"), Some(json!(5))),
            (json!("sports"), None),
            (json!("sport"), Some(Value::Null)),
            (json!("sport"), Some(json!(0))),
        ],
        "{audit}"
    );
}

#[tokio::test]
async fn ip_rules_crud_v4_and_v6() {
    let app = spawn_admin_app().await;
    let v6 = app
        .admin(
            "POST",
            "/api/v1/ip-rules",
            Some(json!({"network": "2001:DB8:0:0::1/32", "action": "allow"})),
            201,
        )
        .await;
    assert_eq!(v6["network"], "2001:db8::/32");
    assert_eq!(v6["action"], "allow");
    let v4 = app
        .admin(
            "POST",
            "/api/v1/ip-rules",
            Some(json!({"network": "198.51.100.77/24", "action": "deny", "comment": "abuse"})),
            201,
        )
        .await;
    assert_eq!(v4["network"], "198.51.100.0/24");
    // The same network may be both (deny wins in the decision), not twice the same.
    app.admin(
        "POST",
        "/api/v1/ip-rules",
        Some(json!({"network": "198.51.100.0/24", "action": "allow"})),
        201,
    )
    .await;
    let list = app.admin("GET", "/api/v1/ip-rules", None, 200).await;
    assert_eq!(list["total"], 3);
    let denies = app
        .admin("GET", "/api/v1/ip-rules?action=deny", None, 200)
        .await;
    assert_eq!(denies["total"], 1);
    assert_eq!(
        app.admin("GET", &format!("/api/v1/ip-rules/{}", v4["id"]), None, 200)
            .await["comment"],
        "abuse"
    );
    let anonymous = app
        .decide(json!({"stream": "news", "ip": "2001:db8::42"}))
        .await;
    assert_eq!(reason(&anonymous), "ip_allowed");
    assert_eq!(
        reason(
            &app.decide(json!({"stream": "news", "ip": "198.51.100.3"}))
                .await
        ),
        "ip_denied"
    );
    app.admin(
        "DELETE",
        &format!("/api/v1/ip-rules/{}", v6["id"]),
        None,
        204,
    )
    .await;
    assert_eq!(
        reason(
            &app.decide(json!({"stream": "news", "ip": "2001:db8::42"}))
                .await
        ),
        "no_credentials"
    );
}

fn start(token: &str, session: &str, stream: &str, streamer: &str) -> Value {
    json!({"stream": stream, "ip": "192.0.2.10", "token": token, "session": session, "streamer": streamer})
}

#[tokio::test]
async fn sessions_list_filter_history_and_kick() {
    let app = spawn_admin_app().await;
    app.admin(
        "POST",
        "/api/v1/users",
        Some(json!({"login": "gina", "token": "gina-t"})),
        201,
    )
    .await;
    app.admin(
        "POST",
        "/api/v1/users",
        Some(json!({"login": "hank", "token": "hank-t"})),
        201,
    )
    .await;
    let g1 = app.decide(start("gina-t", "g1", "news", "edge-1")).await;
    app.decide(start("gina-t", "g2", "sport", "edge-2")).await;
    app.decide(start("hank-t", "h1", "news", "edge-1")).await;

    let all = app.admin("GET", "/api/v1/sessions", None, 200).await;
    assert_eq!(all["total"], 3);
    let item = &all["items"][0];
    for field in [
        "id",
        "user",
        "stream",
        "client_ip",
        "protocol",
        "dialect",
        "streamer",
        "user_agent",
        "started_at",
        "last_seen_at",
        "expires_at",
        "ended_at",
        "end_reason",
        "bytes",
    ] {
        assert!(item.get(field).is_some(), "{field} missing in {item}");
    }
    assert_eq!(
        app.admin("GET", "/api/v1/sessions?user=gina", None, 200)
            .await["total"],
        2
    );
    assert_eq!(
        app.admin("GET", "/api/v1/sessions?stream=news", None, 200)
            .await["total"],
        2
    );
    assert_eq!(
        app.admin("GET", "/api/v1/sessions?streamer=edge-2", None, 200)
            .await["total"],
        1
    );
    assert_eq!(
        app.admin(
            "GET",
            "/api/v1/sessions?user=gina&stream=news&streamer=edge-1",
            None,
            200
        )
        .await["total"],
        1
    );
    assert_eq!(
        app.admin("GET", "/api/v1/sessions?limit=1", None, 200)
            .await["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let bad = app
        .api("GET", "/api/v1/sessions?state=zombie", ADMIN, None)
        .await;
    assert_eq!(
        (bad.status, bad.body["field"].as_str()),
        (422, Some("state"))
    );

    let id = g1["session_id"].as_str().unwrap();
    let fetched = app
        .admin("GET", &format!("/api/v1/sessions/{id}"), None, 200)
        .await;
    assert_eq!(
        (fetched["user"].as_str(), fetched["stream"].as_str()),
        (Some("gina"), Some("news"))
    );

    // Kick: ended now, its next refresh refused for one session duration.
    assert_eq!(
        app.api("DELETE", &format!("/api/v1/sessions/{id}"), OBSERVER, None)
            .await
            .status,
        403
    );
    app.admin("DELETE", &format!("/api/v1/sessions/{id}"), None, 204)
        .await;
    let refresh = app
        .decide(
            json!({"stream": "news", "ip": "192.0.2.10", "token": "gina-t", "session": "g1",
                       "streamer": "edge-1", "event": "refresh"}),
        )
        .await;
    assert_eq!(
        (refresh["allow"].as_bool(), reason(&refresh)),
        (Some(false), "session_kicked")
    );
    let again = app
        .api("DELETE", &format!("/api/v1/sessions/{id}"), ADMIN, None)
        .await;
    assert_eq!(again.status, 409, "already ended: {}", again.body);

    app.decide(
        json!({"stream": "sport", "ip": "192.0.2.10", "token": "gina-t", "session": "g2",
                      "streamer": "edge-2", "event": "stop"}),
    )
    .await;
    assert_eq!(
        app.admin("GET", "/api/v1/sessions", None, 200).await["total"],
        1
    );
    let history = app
        .admin("GET", "/api/v1/sessions?state=ended", None, 200)
        .await;
    assert_eq!(history["total"], 2);
    assert_eq!(history["items"][0]["end_reason"], "stopped", "newest first");
    assert_eq!(history["items"][1]["end_reason"], "kicked");
    assert_eq!(
        app.admin(
            "GET",
            "/api/v1/sessions?state=ended&user=gina&stream=news",
            None,
            200
        )
        .await["total"],
        1
    );
}

#[tokio::test]
async fn deleting_a_user_ends_their_sessions() {
    let app = spawn_admin_app().await;
    app.admin(
        "POST",
        "/api/v1/users",
        Some(json!({"login": "ivan", "token": "ivan-t"})),
        201,
    )
    .await;
    let first = app.decide(start("ivan-t", "i1", "news", "edge-1")).await;
    app.decide(start("ivan-t", "i2", "sport", "edge-1")).await;
    assert_eq!(app.active_sessions("ivan").await, 2);
    app.admin("DELETE", "/api/v1/users/ivan", None, 204).await;
    assert_eq!(app.active_sessions("ivan").await, 0);
    assert_eq!(
        app.session_state(first["session_id"].as_str().unwrap())
            .await,
        (true, Some("kicked".into()))
    );
    let history = app
        .admin("GET", "/api/v1/sessions?state=ended&user=ivan", None, 200)
        .await;
    assert_eq!(history["total"], 2);
    let refresh = app
        .decide(
            json!({"stream": "news", "ip": "192.0.2.10", "token": "ivan-t", "session": "i1",
                       "streamer": "edge-1", "event": "refresh"}),
        )
        .await;
    assert_eq!(refresh["allow"], false);
}

#[tokio::test]
async fn every_write_is_audited_without_secrets() {
    let app = spawn_admin_app().await;
    app.admin(
        "POST",
        "/api/v1/packages",
        Some(json!({"name": "news", "streams": ["news/*"]})),
        201,
    )
    .await;
    app.admin(
        "PATCH",
        "/api/v1/packages/news",
        Some(json!({"comment": "c"})),
        200,
    )
    .await;
    app.admin(
        "POST",
        "/api/v1/users",
        Some(json!({"login": "jill", "password": "jill-password", "token": "jill-token"})),
        201,
    )
    .await;
    app.admin(
        "PATCH",
        "/api/v1/users/jill",
        Some(json!({"password": "jill-password-2", "max_sessions": 3})),
        200,
    )
    .await;
    let token = app
        .admin(
            "POST",
            "/api/v1/users/jill/tokens",
            Some(json!({"label": "stb"})),
            201,
        )
        .await;
    app.admin(
        "DELETE",
        &format!("/api/v1/users/jill/tokens/{}", token["id"]),
        None,
        204,
    )
    .await;
    let rule = app
        .admin(
            "POST",
            "/api/v1/ip-rules",
            Some(json!({"network": "10.9.0.0/16", "action": "deny"})),
            201,
        )
        .await;
    app.admin(
        "DELETE",
        &format!("/api/v1/ip-rules/{}", rule["id"]),
        None,
        204,
    )
    .await;
    let session = app
        .decide(start("jill-token", "j1", "news/1", "edge"))
        .await;
    app.admin(
        "DELETE",
        &format!(
            "/api/v1/sessions/{}",
            session["session_id"].as_str().unwrap()
        ),
        None,
        204,
    )
    .await;
    app.admin(
        "POST",
        "/api/v1/import",
        Some(json!([{"login": "kim", "token": "kim-token"}])),
        200,
    )
    .await;
    app.admin("DELETE", "/api/v1/users/jill", None, 204).await;
    app.admin("DELETE", "/api/v1/packages/news", None, 204)
        .await;

    let audit = app
        .api("GET", "/api/v1/audit?limit=1000", OBSERVER, None)
        .await;
    assert_eq!(audit.status, 200);
    let items = audit.body["items"].as_array().unwrap();
    let entries: Vec<(String, String, String)> = items
        .iter()
        .rev()
        .map(|e| {
            assert_eq!(e["actor"], "root");
            assert!(e["at"].is_string());
            (
                e["action"].as_str().unwrap().into(),
                e["object_type"].as_str().unwrap().into(),
                e["object_id"].as_str().unwrap().into(),
            )
        })
        .collect();
    let expected: Vec<(String, String, String)> = [
        ("create", "package", "news"),
        ("update", "package", "news"),
        ("create", "user", "jill"),
        ("update", "user", "jill"),
        ("create", "token", &format!("jill/{}", token["id"])),
        ("delete", "token", &format!("jill/{}", token["id"])),
        ("create", "ip_rule", &rule["id"].to_string()),
        ("delete", "ip_rule", &rule["id"].to_string()),
        ("kick", "session", session["session_id"].as_str().unwrap()),
        ("import", "users", "import"),
        ("delete", "user", "jill"),
        ("delete", "package", "news"),
    ]
    .iter()
    .map(|(a, t, i)| (a.to_string(), t.to_string(), i.to_string()))
    .collect();
    assert_eq!(entries, expected);
    let update = items
        .iter()
        .find(|e| e["action"] == "update" && e["object_type"] == "user")
        .unwrap();
    assert_eq!(update["changes"]["max_sessions"], 3);
    assert_eq!(update["changes"]["password"], "[set]");
    let text = audit.body.to_string();
    for secret in [
        "jill-password",
        "jill-token",
        "kim-token",
        token["token"].as_str().unwrap(),
    ] {
        assert!(!text.contains(secret), "{secret} in the audit log");
    }
    assert_eq!(
        app.admin("GET", "/api/v1/audit?object_type=user", None, 200)
            .await["total"],
        3
    );
    let page = app
        .admin("GET", "/api/v1/audit?limit=2&offset=1", None, 200)
        .await;
    assert_eq!(page["total"], 12);
    assert_eq!(page["items"][0]["action"], "delete");
    assert_eq!(page["items"][0]["object_type"], "user");

    // By action, and by time: nothing after now, everything since an hour ago.
    let deletes = app
        .admin("GET", "/api/v1/audit?action=delete", None, 200)
        .await;
    let deletes = deletes["items"].as_array().unwrap();
    assert!(!deletes.is_empty());
    assert!(
        deletes.iter().all(|e| e["action"] == "delete"),
        "{deletes:?}"
    );
    let now = chrono::Utc::now();
    let since = |at: chrono::DateTime<chrono::Utc>| {
        format!(
            "/api/v1/audit?from={}",
            at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        )
    };
    let hour_ago = since(now - chrono::Duration::hours(1));
    assert_eq!(app.admin("GET", &hour_ago, None, 200).await["total"], 12);
    let later = since(now + chrono::Duration::minutes(1));
    assert_eq!(app.admin("GET", &later, None, 200).await["total"], 0);
    let until = format!(
        "/api/v1/audit?to={}",
        (now - chrono::Duration::hours(1)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    );
    assert_eq!(app.admin("GET", &until, None, 200).await["total"], 0);
    for bad in [
        "/api/v1/audit?from=yesterday",
        "/api/v1/audit?from=2027-01-02T00:00:00Z&to=2027-01-01T00:00:00Z",
    ] {
        let answer = app.api("GET", bad, ADMIN, None).await;
        assert_eq!(answer.status, 422, "{bad}: {}", answer.body);
    }
}

/// `?q=` finds sessions by a piece of the login, the stream or the client
/// address, in any case (SPEC §4), live and ended; `%` and `_` are
/// literal, a match stays inside one field, and the total counts every
/// match, not the page.
#[tokio::test]
async fn sessions_are_searched_by_a_piece_of_user_stream_or_address() {
    let app = spawn_admin_app().await;
    for login in ["sporty", "gina"] {
        app.admin(
            "POST",
            "/api/v1/users",
            Some(json!({"login": login, "token": format!("{login}-t"), "max_sessions": 10})),
            201,
        )
        .await;
    }
    let play = |token: &str, session: &str, stream: &str, ip: &str| json!({"stream": stream, "ip": ip, "token": token, "session": session});
    for (token, session, stream, ip) in [
        ("gina-t", "1", "sport/football1", "192.0.2.10"),
        ("gina-t", "2", "Sport/Tennis", "192.0.2.11"),
        ("gina-t", "3", "news", "198.51.100.7"),
        ("sporty-t", "4", "news", "203.0.113.5"),
        ("gina-t", "5", "kids_100%", "203.0.113.6"),
    ] {
        let decision = app.decide(play(token, session, stream, ip)).await;
        assert_eq!(reason(&decision), "ok", "{decision}");
    }
    let found = |q: &str| {
        let app = &app;
        let path = format!("/api/v1/sessions?q={q}&limit=2");
        async move {
            let page = app.admin("GET", &path, None, 200).await;
            let mut streams: Vec<String> = page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s["stream"].as_str().unwrap().to_string())
                .collect();
            streams.sort();
            (page["total"].as_i64().unwrap(), streams)
        }
    };
    // "sport": two streams in any case and the user sporty; a page of 2.
    let (total, page) = found("sport").await;
    assert_eq!(total, 3);
    assert_eq!(page.len(), 2);
    assert_eq!(found("TENNIS").await, (1, vec!["Sport/Tennis".to_string()]));
    assert_eq!(found("198.51.100").await, (1, vec!["news".to_string()]));
    assert_eq!(found("%25").await, (1, vec!["kids_100%".to_string()]));
    assert_eq!(found("s_100").await, (1, vec!["kids_100%".to_string()]));
    assert_eq!(
        found("sport_football").await.0,
        0,
        "`_` is literal, not any character"
    );
    assert_eq!(found("nobody").await, (0, vec![]));
    // An empty search is no search.
    assert_eq!(found("%20").await.0, 5);
    let ended = app
        .admin("GET", "/api/v1/sessions?state=ended&q=sport", None, 200)
        .await;
    assert_eq!(ended["total"], 0);
    // A time window: started (active) or ended (history) from … to ….
    let window = |from: &str, to: &str| format!("/api/v1/sessions?from={from}&to={to}");
    assert_eq!(
        app.admin(
            "GET",
            &window("2001-01-01T00:00:00Z", "2099-01-01T00:00:00Z"),
            None,
            200
        )
        .await["total"],
        5
    );
    assert_eq!(
        app.admin(
            "GET",
            &window("2098-01-01T00:00:00Z", "2099-01-01T00:00:00Z"),
            None,
            200
        )
        .await["total"],
        0
    );
    app.decide(
        json!({"stream": "news", "ip": "198.51.100.7", "token": "gina-t",
                      "session": "3", "event": "stop"}),
    )
    .await;
    let history = |from: &str| format!("/api/v1/sessions?state=ended&from={from}");
    assert_eq!(
        app.admin("GET", &history("2001-01-01T00:00:00Z"), None, 200)
            .await["total"],
        1
    );
    assert_eq!(
        app.admin("GET", &history("2098-01-01T00:00:00Z"), None, 200)
            .await["total"],
        0
    );
    // The history is searched the same way (through its trigram index):
    // the ended session is gina's on "news" from 198.51.100.7.
    let ended_total = |q: &str| {
        let app = &app;
        let path = format!("/api/v1/sessions?state=ended&q={q}");
        async move { app.admin("GET", &path, None, 200).await["total"].clone() }
    };
    assert_eq!(ended_total("NEWS").await, 1);
    assert_eq!(ended_total("51.100.7").await, 1);
    assert_eq!(ended_total("Gin").await, 1);
    // "gina" then "news" run together would hold "inane": a match never
    // spans two fields, live or ended.
    assert_eq!(ended_total("inane").await, 0);
    assert_eq!(found("inane").await, (0, vec![]));
    // A page past the last match still counts every match.
    let past = app
        .admin(
            "GET",
            "/api/v1/sessions?q=sport&limit=2&offset=4",
            None,
            200,
        )
        .await;
    assert_eq!(
        (
            past["items"].as_array().unwrap().len(),
            past["total"].as_i64()
        ),
        (0, Some(3))
    );
    let refused = app
        .api("GET", "/api/v1/sessions?q=gina%01news", ADMIN, None)
        .await;
    assert_eq!(
        (refused.status, refused.body["error"].as_str()),
        (422, Some("control characters cannot be searched"))
    );
    for bad in [
        window("2099-01-01T00:00:00Z", "2001-01-01T00:00:00Z"),
        history("yesterday"),
    ] {
        let refused = app.api("GET", &bad, ADMIN, None).await;
        assert_eq!(
            (refused.status, refused.body["field"].as_str()),
            (422, Some("from")),
            "{bad}"
        );
    }
    let long = "x".repeat(300);
    let refused = app
        .api("GET", &format!("/api/v1/sessions?q={long}"), ADMIN, None)
        .await;
    assert_eq!(
        (refused.status, refused.body["field"].as_str()),
        (422, Some("q"))
    );
}

/// An IP rule changes in place (SPEC §4): the comment alone, and an end
/// that makes a ban temporary; network and action are the rule itself.
/// A temporary ban stops applying when its time comes, without any write.
#[tokio::test]
async fn an_ip_rule_is_changed_in_place_and_a_temporary_ban_ends_on_time() {
    let app = spawn_admin_app().await;
    let rule = app
        .admin(
            "POST",
            "/api/v1/ip-rules",
            Some(json!({"network": "198.51.100.0/24", "action": "deny", "comment": "abuse"})),
            201,
        )
        .await;
    let path = format!("/api/v1/ip-rules/{}", rule["id"]);
    assert_eq!(rule["expires_at"], Value::Null);

    // The comment alone: the same rule, no conflict with itself.
    let changed = app
        .admin("PATCH", &path, Some(json!({"comment": "restreamer"})), 200)
        .await;
    assert_eq!(
        (&changed["id"], &changed["comment"], &changed["network"]),
        (&rule["id"], &json!("restreamer"), &rule["network"])
    );
    assert_eq!(
        app.admin("GET", "/api/v1/ip-rules", None, 200).await["total"],
        1
    );

    for (body, field) in [
        (json!({"network": "203.0.113.0/24"}), "network"),
        (json!({"action": "allow"}), "action"),
        (json!({"expires_at": "2001-01-01T00:00:00Z"}), "expires_at"),
        (json!({"expires_at": "tomorrow"}), "expires_at"),
        (json!({"comment": 7}), ""),
    ] {
        let refused = app.api("PATCH", &path, ADMIN, Some(body.clone())).await;
        match field {
            "" => assert_eq!(refused.status, 400, "{body}: {}", refused.body),
            field => assert_eq!(
                (refused.status, refused.body["field"].as_str()),
                (422, Some(field)),
                "{body}: {}",
                refused.body
            ),
        }
    }
    assert_eq!(
        app.api(
            "PATCH",
            "/api/v1/ip-rules/999999",
            ADMIN,
            Some(json!({"comment": "x"}))
        )
        .await
        .status,
        404
    );

    // Made temporary: denied until then, then not, on this replica, with
    // no write to tell it.
    let blocked = json!({"stream": "news", "ip": "198.51.100.9"});
    assert_eq!(reason(&app.decide(blocked.clone()).await), "ip_denied");
    let until = chrono::Utc::now() + chrono::Duration::seconds(2);
    let temporary = app
        .admin(
            "PATCH",
            &path,
            Some(json!({"expires_at": until.to_rfc3339()})),
            200,
        )
        .await;
    assert_eq!(
        temporary["expires_at"].as_str().map(|at| at
            .parse::<chrono::DateTime<chrono::Utc>>()
            .unwrap()
            .timestamp()),
        Some(until.timestamp())
    );
    assert_eq!(reason(&app.decide(blocked.clone()).await), "ip_denied");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while reason(&app.decide(blocked.clone()).await) == "ip_denied" {
        assert!(
            std::time::Instant::now() < deadline,
            "the ban outlived its end"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let late = chrono::Utc::now() - until;
    println!("ban ended {} ms after its time", late.num_milliseconds());
    assert!(chrono::Utc::now() >= until, "ended before its time");

    // The change is audited with both values.
    let audit = app
        .admin("GET", "/api/v1/audit?object_type=ip_rule", None, 200)
        .await;
    let updates: Vec<&Value> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|entry| entry["action"] == "update")
        .collect();
    assert_eq!(updates.len(), 2, "{audit}");
    assert!(
        updates
            .iter()
            .any(|entry| entry["changes"]["before"]["comment"] == "abuse"
                && entry["changes"]["after"]["comment"] == "restreamer"),
        "{audit}"
    );
}
