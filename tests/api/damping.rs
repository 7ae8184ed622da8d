//! Guessing and lock-out through `/hook/decide` (issue 15, item 1): the
//! claimed `ip` is the caller's to choose, so failures are counted per
//! caller (its peer address) as well as per claimed address; IPv6 by /64.
//!
//! Tests run on loopback: a second caller is a client bound to another
//! loopback address (127.0.0.2), which Linux routes like 127.0.0.1.

use std::net::IpAddr;

use serde_json::{json, Value};

use crate::helpers::*;

/// An HTTP client whose requests come from `peer`.
pub fn client_from(peer: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(peer.parse::<IpAddr>().unwrap())
        .build()
        .unwrap()
}

/// POST /hook/decide through `client`, expecting a decision.
pub async fn decide_through(app: &TestApp, client: &reqwest::Client, body: Value) -> Value {
    let response = client
        .post(format!("{}/hook/decide", app.address))
        .json(&body)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status().as_u16(), 200);
    response.json().await.unwrap()
}

fn token_from(ip: &str, token: &str) -> Value {
    with(play("news", ip), json!({"token": token}))
}

#[tokio::test]
async fn rotating_the_claimed_ip_is_damped_by_the_caller() {
    let app = spawn_app_with(|settings| {
        settings.auth_failure_limit = 3;
        settings.auth_failure_caller_limit = 5;
    })
    .await;
    app.create(user("alice").token("right")).await;
    // Five guesses, each in the name of another address: none reaches the
    // limit of 3 per address, the caller reaches its 5.
    for n in 1..=5 {
        let decision = app
            .decide(token_from(&format!("10.0.0.{n}"), "guess"))
            .await;
        assert_eq!(reason(&decision), "unknown_token", "guess {n}");
    }
    for ip in ["10.0.0.6", "2001:db8::6"] {
        let decision = app.decide(token_from(ip, "right")).await;
        assert_eq!(reason(&decision), "rate_limited", "{ip}: {decision}");
    }
    // Another caller is not affected.
    let other = client_from("127.0.0.2");
    let decision = decide_through(&app, &other, token_from("10.0.0.6", "right")).await;
    assert_eq!(reason(&decision), "ok", "{decision}");
    let samples = parse_metrics(&app.metrics_text().await);
    assert_eq!(decisions(&samples, "decide", "deny", "rate_limited"), 2.0);
}

#[tokio::test]
async fn failures_in_a_victims_name_do_not_lock_the_victim_out_elsewhere() {
    let app = spawn_app_with(|settings| settings.auth_failure_limit = 3).await;
    app.create(user("alice").token("right").password("pw"))
        .await;
    let attacker = client_from("127.0.0.2");
    let victim = "192.0.2.1";
    for guess in ["a", "b", "c"] {
        let decision = decide_through(&app, &attacker, token_from(victim, guess)).await;
        assert_eq!(reason(&decision), "unknown_token");
    }
    // The attacker's requests in the victim's name are damped…
    let decision = decide_through(&app, &attacker, token_from(victim, "right")).await;
    assert_eq!(reason(&decision), "rate_limited");
    // …the victim's own, through its middleware (127.0.0.1), are not.
    let decision = app.decide(token_from(victim, "right")).await;
    assert_eq!(reason(&decision), "ok", "{decision}");
    let by_password = app
        .decide(with(
            play("news", victim),
            json!({"login": "alice", "password": "pw"}),
        ))
        .await;
    assert_eq!(reason(&by_password), "ok", "{by_password}");
}

#[tokio::test]
async fn ipv6_guesses_count_by_64_and_mapped_addresses_as_ipv4() {
    let app = spawn_app_with(|settings| settings.auth_failure_limit = 3).await;
    app.create(user("alice").token("right")).await;
    for n in 1..=3 {
        let ip = format!("2001:db8:1:2::{n}");
        assert_eq!(
            reason(&app.decide(token_from(&ip, "guess")).await),
            "unknown_token"
        );
    }
    let same_64 = app
        .decide(token_from("2001:db8:1:2:ffff:ffff:ffff:ffff", "right"))
        .await;
    assert_eq!(reason(&same_64), "rate_limited", "{same_64}");
    let next_64 = app.decide(token_from("2001:db8:1:3::1", "right")).await;
    assert_eq!(reason(&next_64), "ok", "{next_64}");

    for ip in ["::ffff:198.51.100.7", "198.51.100.7", "::ffff:198.51.100.7"] {
        assert_eq!(
            reason(&app.decide(token_from(ip, "guess")).await),
            "unknown_token"
        );
    }
    let plain = app.decide(token_from("198.51.100.7", "right")).await;
    assert_eq!(reason(&plain), "rate_limited", "{plain}");
}
