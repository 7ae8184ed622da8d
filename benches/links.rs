//! `verify` per signed-link format (SPEC §9): the cost a hook pays for a
//! link before any database work. Target: at most 5 µs per link.
//!
//! `cargo bench --bench links` prints, for each format, the median over
//! several runs of the time per verification of a valid link, and the same
//! with the signing key last of four enabled keys of its format (rotation).

use std::hint::black_box;
use std::time::{Duration, Instant};

use playgate::domain::{parse_network, Login};
use playgate::links::{self, IssueRequest, KeyOptions, LinkFormat, LinkRequest, SigningKey};
use serde_json::json;

const RUNS: usize = 7;
const ITERATIONS: u32 = 50_000;
const NOW: i64 = 1_900_000_000;

fn key(id: &str, format: LinkFormat, options: serde_json::Value) -> SigningKey {
    let options = KeyOptions::from_json(format, &options).unwrap();
    SigningKey::new(id, &links::generate_secret(format), options).unwrap()
}

fn per_verify(request: &LinkRequest<'_>, keys: &[SigningKey]) -> Duration {
    assert!(links::verify(request, keys, NOW, 60).is_ok());
    let mut samples: Vec<Duration> = (0..RUNS)
        .map(|_| {
            let started = Instant::now();
            for _ in 0..ITERATIONS {
                black_box(links::verify(black_box(request), keys, NOW, 60).is_ok());
            }
            started.elapsed() / ITERATIONS
        })
        .collect();
    samples.sort();
    samples[RUNS / 2]
}

fn main() {
    // `cargo test --all-targets` runs harness-less benches too: only `cargo bench` passes --bench.
    if !std::env::args().any(|arg| arg == "--bench") {
        println!("links bench: skipped (run it with cargo bench --bench links)");
        return;
    }
    let alice = Login::parse("alice").unwrap();
    let path = "/live/news/index.m3u8";
    let cases = [
        (
            "playgate (u, ip, nbf)",
            LinkFormat::Playgate,
            json!({}),
            Some("203.0.113.0/24"),
            true,
        ),
        (
            "securetoken (ip, user_id)",
            LinkFormat::SecureToken,
            json!({}),
            Some("203.0.113.7"),
            true,
        ),
        (
            "securetoken no_check_ip",
            LinkFormat::SecureToken,
            json!({"check_ip": false}),
            None,
            false,
        ),
        (
            "nginx (default template)",
            LinkFormat::Nginx,
            json!({}),
            Some("203.0.113.7"),
            false,
        ),
        ("wowza sha256", LinkFormat::Wowza, json!({}), None, false),
        (
            "wowza sha512, check_ip",
            LinkFormat::Wowza,
            json!({"algorithm": "sha512", "check_ip": true}),
            Some("203.0.113.7"),
            false,
        ),
        (
            "akamai sha256 (ip, st)",
            LinkFormat::Akamai,
            json!({}),
            Some("203.0.113.7"),
            false,
        ),
    ];
    println!("{:<28} {:>12} {:>16}", "format", "one key", "4 keys, last");
    for (name, format, options, ip, user) in cases {
        let mut keys: Vec<SigningKey> = (0..4)
            .map(|i| key(&format!("k{i}"), format, options.clone()))
            .collect();
        let signer = keys.pop().unwrap();
        let issue = IssueRequest {
            stream: "news",
            uri: Some(if format == LinkFormat::Akamai {
                "/live/news/*"
            } else {
                path
            }),
            user: user.then_some(&alice),
            expires_at: NOW + 3600,
            not_before: (format != LinkFormat::Nginx).then_some(NOW - 60),
            ip: ip.map(|ip| parse_network(ip).unwrap()),
            once: false,
        };
        let query = links::issue(&signer, &issue, NOW).unwrap();
        let request = LinkRequest {
            stream: "news",
            path: Some(path),
            client_ip: "203.0.113.7".parse().unwrap(),
            query: &query,
        };
        let alone = per_verify(&request, std::slice::from_ref(&signer));
        keys.push(signer);
        let rotated = per_verify(&request, &keys);
        println!(
            "{name:<28} {:>9.2} µs {:>13.2} µs",
            micros(alone),
            micros(rotated)
        );
    }
}

fn micros(duration: Duration) -> f64 {
    duration.as_nanos() as f64 / 1000.0
}
