//! Guessing and lock-out through `/hook/decide` (issue 15, item 1): the
//! claimed `ip` is the caller's to choose, so failures are counted per
//! caller (its peer address) as well as per claimed address; IPv6 by /64.
//!
//! Tests run on loopback: a second caller is a client bound to another
//! loopback address (127.0.0.2), which Linux routes like 127.0.0.1.

use serde_json::{json, Value};

use crate::helpers::*;

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
    let decision = app
        .decide_via(&other, token_from("10.0.0.6", "right"))
        .await;
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
        let decision = app.decide_via(&attacker, token_from(victim, guess)).await;
        assert_eq!(reason(&decision), "unknown_token");
    }
    // The attacker's requests in the victim's name are damped…
    let decision = app.decide_via(&attacker, token_from(victim, "right")).await;
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

fn password_from(ip: &str, login: &str, password: &str) -> Value {
    with(
        play("news", ip),
        json!({"login": login, "password": password}),
    )
}

/// An unknown login costs one bcrypt (of a dummy hash), as a wrong
/// password does, so logins cannot be told apart by time; counted, not timed.
#[tokio::test]
async fn an_unknown_login_runs_bcrypt_like_a_wrong_password() {
    let app = spawn_app().await;
    app.create(user("alice").password("pw").token("t")).await;
    let runs = || app.state.passwords.bcrypt_runs();
    let mut expected = runs();
    for (login, password, outcome, bcrypt) in [
        ("nobody", "guess-1", "bad_credentials", 1),
        ("nobody", "guess-1", "bad_credentials", 1),
        ("someone-else", "guess-2", "bad_credentials", 1),
        ("alice", "wrong", "bad_credentials", 1),
        ("alice", "pw", "ok", 1),
        // A verified pair is remembered.
        ("alice", "pw", "ok", 0),
    ] {
        let decision = app
            .decide(password_from("192.0.2.1", login, password))
            .await;
        assert_eq!(reason(&decision), outcome, "{login}");
        expected += bcrypt;
        assert_eq!(runs(), expected, "{login}:{password}");
    }
    // A token runs none.
    assert_eq!(
        reason(&app.decide(token_from("192.0.2.1", "t")).await),
        "ok"
    );
    assert_eq!(runs(), expected);
}

/// Guessing at existing logins cannot take every core: over
/// PLAYGATE_BCRYPT_CONCURRENCY verifications at once, a hook answers
/// `rate_limited` without running bcrypt.
#[tokio::test]
async fn concurrent_bcrypt_runs_are_capped() {
    let app = spawn_app_with(|settings| settings.bcrypt_concurrency = 1).await;
    let mut alice = user("alice");
    // Cost 11 (~0.1 s): long enough for the requests to overlap.
    alice.user.password_hash = Some(bcrypt::hash("pw", 11).unwrap());
    app.create(alice).await;
    let before = app.state.passwords.bcrypt_runs();
    let tasks: Vec<_> = (0..8)
        .map(|n| {
            let (http, url) = (app.http.clone(), format!("{}/hook/decide", app.address));
            let body = password_from("192.0.2.1", "alice", &format!("guess-{n}"));
            tokio::spawn(async move {
                let answer: Value = http
                    .post(url)
                    .json(&body)
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                answer["reason"].as_str().unwrap().to_string()
            })
        })
        .collect();
    let mut reasons = Vec::new();
    for task in tasks {
        reasons.push(task.await.unwrap());
    }
    let wrong = reasons.iter().filter(|r| *r == "bad_credentials").count();
    let limited = reasons.iter().filter(|r| *r == "rate_limited").count();
    assert_eq!(wrong + limited, 8, "{reasons:?}");
    assert!(limited >= 1, "no request was turned away: {reasons:?}");
    assert!(wrong >= 1, "{reasons:?}");
    // Each refused request ran no bcrypt.
    assert_eq!(app.state.passwords.bcrypt_runs() - before, wrong as u64);
    // The slot is free again afterwards.
    let right = app.decide(password_from("192.0.2.1", "alice", "pw")).await;
    assert_eq!(reason(&right), "ok", "{right}");
}
