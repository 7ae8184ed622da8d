//! IPv4-mapped IPv6 networks (`::ffff:198.51.100.0/120`) are the IPv4
//! networks they cover (issue 15, item 8): clients are matched as IPv4, so a
//! mapped network kept as IPv6 was accepted everywhere and matched no one.

use playgate::config::{parse_networks, HookNetworks};
use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn a_mapped_ip_rule_is_stored_as_ipv4_and_denies() {
    let app = spawn_admin_app().await;
    let rule = app
        .admin(
            "POST",
            "/api/v1/ip-rules",
            Some(json!({"network": "::ffff:198.51.100.0/120", "action": "deny"})),
            201,
        )
        .await;
    assert_eq!(rule["network"], "198.51.100.0/24");
    let read = app
        .admin(
            "GET",
            &format!("/api/v1/ip-rules/{}", rule["id"]),
            None,
            200,
        )
        .await;
    assert_eq!(read["network"], "198.51.100.0/24");
    let stored: String = app
        .db()
        .await
        .query_one("SELECT network::text FROM ip_rules", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored, "198.51.100.0/24");

    let denied = app.decide(play("news", "198.51.100.7")).await;
    assert_eq!(reason(&denied), "ip_denied", "{denied}");
    // Also when the client itself is sent in its mapped form.
    let mapped = app.decide(play("news", "::ffff:198.51.100.8")).await;
    assert_eq!(reason(&mapped), "ip_denied", "{mapped}");
    let outside = app.decide(play("news", "198.51.101.7")).await;
    assert_eq!(reason(&outside), "no_credentials", "{outside}");
}

#[tokio::test]
async fn a_user_bound_to_a_mapped_network_is_identified_by_ipv4() {
    let app = spawn_admin_app().await;
    let created = app
        .admin(
            "POST",
            "/api/v1/users",
            Some(json!({"login": "settop", "password": "settop-pw",
                        "ips": ["::ffff:203.0.113.0/120"]})),
            201,
        )
        .await;
    assert_eq!(created["ips"], json!(["203.0.113.0/24"]));
    let identified = app.decide(play("news", "203.0.113.9")).await;
    assert_eq!(
        (reason(&identified), identified["user"].clone()),
        ("ok", json!("settop")),
        "{identified}"
    );
    let elsewhere = app.decide(play("news", "203.0.114.9")).await;
    assert_eq!(reason(&elsewhere), "no_credentials", "{elsewhere}");
}

#[tokio::test]
async fn mapped_hook_networks_admit_ipv4_callers() {
    let app = spawn_app_with(|settings| {
        settings.hook_networks = HookNetworks::Only(
            parse_networks("PLAYGATE_HOOK_NETWORKS", "::ffff:127.0.0.0/104").unwrap(),
        );
    })
    .await;
    let HookNetworks::Only(networks) = &app.state.settings.hook_networks else {
        panic!("hook networks are a list here");
    };
    let networks: Vec<String> = networks.iter().map(ToString::to_string).collect();
    assert_eq!(networks, ["127.0.0.0/8"]);
    let (status, decision) = app.post_decide(&play("news", "192.0.2.1")).await;
    assert_eq!((status, reason(&decision)), (200, "no_credentials"));

    let refused = spawn_app_with(|settings| {
        settings.hook_networks = HookNetworks::Only(
            parse_networks("PLAYGATE_HOOK_NETWORKS", "::ffff:10.0.0.0/104").unwrap(),
        );
    })
    .await;
    let (status, _) = refused.post_decide(&play("news", "192.0.2.1")).await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn a_mapped_trusted_proxy_is_believed() {
    let app = spawn_app_with(|settings| {
        settings.trusted_proxies =
            parse_networks("PLAYGATE_TRUSTED_PROXIES", "::ffff:127.0.0.1").unwrap();
    })
    .await;
    app.ip_rule("198.51.100.0/24", playgate::domain::RuleAction::Deny)
        .await;
    // The loopback proxy is trusted: its X-Real-IP is the client, denied.
    let answer = app.hls_get("/live/news/index.m3u8", "198.51.100.7").await;
    assert_eq!((answer.status, answer.body.as_str()), (403, "ip_denied"));

    let untrusted = spawn_app_with(|settings| {
        settings.trusted_proxies =
            parse_networks("PLAYGATE_TRUSTED_PROXIES", "::ffff:10.0.0.1").unwrap();
    })
    .await;
    untrusted
        .ip_rule("198.51.100.0/24", playgate::domain::RuleAction::Deny)
        .await;
    // Not trusted: the peer (loopback) is the client, which has no credentials.
    let answer = untrusted
        .hls_get("/live/news/index.m3u8", "198.51.100.7")
        .await;
    assert_eq!(answer.status, 401);
}
