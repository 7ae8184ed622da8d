//! Property tests over every dialect parser: whatever a streamer (or anyone
//! who can reach the hooks) sends, a parser answers a request or a one-line
//! reason, never a panic, and what it lets through is safe to decide and to
//! store. Inputs are random mixes of each dialect's field names, hostile
//! values (control characters, bad percent-escapes, huge or odd numbers,
//! wrong JSON types) and random bytes.

use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::http::Uri;
use actix_web::test::TestRequest;
use actix_web::HttpRequest;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

use super::astra::Astra;
use super::decide::Decide;
use super::flussonic::Flussonic;
use super::forward_auth::ForwardAuth;
use super::mediamtx::MediaMtx;
use super::nginx_rtmp::NginxRtmp;
use super::ovenmediaengine::{self, OvenMediaEngine};
use super::srs::Srs;
use super::*;
use crate::decision::PlayRequest;

/// Every dialect's parse and the validation the handler runs after it.
fn parsed<D: Dialect>(req: &HttpRequest, body: &[u8]) -> Result<Call, String> {
    parse_validated::<D>(req, body, &Context::default())
}

const ROUNDS: usize = 2000;

const WORDS: &[&str] = &[
    "call",
    "play",
    "update_play",
    "play_done",
    "publish",
    "update_publish",
    "done",
    "app",
    "name",
    "addr",
    "clientid",
    "flashver",
    "pageurl",
    "token",
    "auth",
    "ip",
    "request_type",
    "new_session",
    "update_session",
    "session_id",
    "proto",
    "bytes",
    "qs",
    "live",
    "news",
    "alice:pw",
    ":",
    "192.0.2.1",
    "::1",
    "[::1]:80",
    "999.1.1.1",
    "-1",
    "1e99",
    "18446744073709551616",
    "%00",
    "%0a",
    "%ff",
    "%zz",
    "%",
    "+",
    "/",
    "//",
    "..",
    "?",
    "#",
    "=",
    "&",
    "&&",
    "é",
    "\u{0}",
    "\n",
    "\r\n",
    " ",
    "index.m3u8",
    "0.ts",
    "x.mpd",
    "/play/",
    "unix:",
    "",
];

fn word(rng: &mut StdRng) -> String {
    if rng.random_bool(0.1) {
        let len = rng.random_range(0..40);
        (0..len).map(|_| rng.random::<char>()).collect()
    } else {
        WORDS[rng.random_range(0..WORDS.len())].to_string()
    }
}

fn text(rng: &mut StdRng) -> String {
    let parts = rng.random_range(0..6);
    (0..parts).map(|_| word(rng)).collect()
}

/// `k=v&k=v…` from the words, sometimes raw noise.
fn form(rng: &mut StdRng) -> String {
    let pairs = rng.random_range(0..12);
    (0..pairs)
        .map(|_| format!("{}={}", word(rng), text(rng)))
        .collect::<Vec<_>>()
        .join("&")
}

fn json_value(rng: &mut StdRng, depth: u32) -> Value {
    match rng.random_range(0..8) {
        0 => Value::Null,
        1 => json!(rng.random::<bool>()),
        2 => json!(rng.random::<i64>()),
        3 => json!(rng.random::<f64>()),
        4 if depth < 3 => Value::Array((0..3).map(|_| json_value(rng, depth + 1)).collect()),
        5 if depth < 3 => json_object(rng, depth + 1, &[]),
        _ => json!(text(rng)),
    }
}

fn json_object(rng: &mut StdRng, depth: u32, keys: &[&str]) -> Value {
    let mut object = serde_json::Map::new();
    for key in keys {
        if rng.random_bool(0.85) {
            object.insert(key.to_string(), json_value(rng, depth));
        }
    }
    for _ in 0..rng.random_range(0..3) {
        object.insert(word(rng), json_value(rng, depth));
    }
    Value::Object(object)
}

/// A request with a random query, peer and headers (skipping what HTTP
/// itself could not carry).
fn request(rng: &mut StdRng, query: &str, headers: &[&str]) -> HttpRequest {
    let uri = format!("/hook/x?{query}");
    let uri = if Uri::try_from(uri.as_str()).is_ok() {
        uri
    } else {
        "/hook/x".to_string()
    };
    let peer = if rng.random_bool(0.5) {
        "127.0.0.1:5000"
    } else {
        "203.0.113.7:5000"
    };
    let mut req = TestRequest::get()
        .uri(&uri)
        .peer_addr(peer.parse().unwrap());
    for name in headers {
        if rng.random_bool(0.7) {
            let value = text(rng);
            if let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_bytes(value.as_bytes()),
            ) {
                req = req.insert_header((name, value));
            }
        }
    }
    req.to_http_request()
}

fn check_request(dialect: &str, request: &PlayRequest) {
    assert!(!request.stream.is_empty(), "{dialect}: empty stream");
    assert!(
        request.stream.len() <= MAX_STREAM_LEN,
        "{dialect}: long stream"
    );
    assert!(
        !request.stream.chars().any(char::is_control),
        "{dialect}: control characters in {:?}",
        request.stream
    );
    for text in [
        &request.user_agent,
        &request.protocol,
        &request.referer,
        &request.streamer,
    ] {
        assert!(
            !text.contains('\0') && text.len() <= MAX_TEXT_BYTES,
            "{dialect}"
        );
    }
    assert!(
        request.bytes.is_none_or(|b| b >= 0),
        "{dialect}: negative bytes"
    );
    let _ = request.session_key();
}

fn check(dialect: &str, result: Result<Call, String>) {
    match result {
        Ok(Call::Decide(request)) => check_request(dialect, &request),
        Ok(Call::Acknowledge) => {}
        Err(reason) => assert!(!reason.is_empty(), "{dialect}: empty reason"),
    }
}

fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

#[test]
fn nginx_rtmp_never_panics() {
    let mut rng = rng(1);
    for _ in 0..ROUNDS {
        let query = form(&mut rng);
        let body = form(&mut rng);
        let req = request(&mut rng, &query, &[]);
        check("nginx-rtmp", parsed::<NginxRtmp>(&req, body.as_bytes()));
    }
}

#[test]
fn astra_and_flussonic_never_panic() {
    let headers = [
        "x-session-id",
        "x-channel-id",
        "x-real-ip",
        "x-real-path",
        "x-real-ua",
        "x-real-host",
    ];
    let mut rng = rng(2);
    for _ in 0..ROUNDS {
        let query = form(&mut rng);
        let req = request(&mut rng, &query, &headers);
        check("astra", parsed::<Astra>(&req, b""));
        check("flussonic", parsed::<Flussonic>(&req, b""));
    }
}

#[test]
fn forward_auth_never_panics() {
    let headers = [
        "x-original-uri",
        "x-forwarded-uri",
        "x-real-ip",
        "x-forwarded-for",
        "authorization",
        "user-agent",
        "referer",
    ];
    let trusted: Vec<ipnet::IpNet> = vec!["127.0.0.0/8".parse().unwrap()];
    let mut rng = rng(3);
    for _ in 0..ROUNDS {
        let req = request(&mut rng, "", &headers);
        let context = Context {
            trusted_proxies: &trusted,
            ..Context::default()
        };
        check(
            "forward-auth",
            parse_validated::<ForwardAuth>(&req, b"", &context),
        );
    }
}

#[test]
fn json_dialects_never_panic_decide_included() {
    let srs_keys = [
        "action",
        "client_id",
        "ip",
        "vhost",
        "app",
        "stream",
        "param",
        "pageUrl",
        "send_bytes",
    ];
    let mediamtx_keys = [
        "user",
        "password",
        "token",
        "ip",
        "action",
        "path",
        "protocol",
        "id",
        "query",
        "userAgent",
    ];
    let decide_keys = [
        "stream",
        "ip",
        "token",
        "login",
        "password",
        "session",
        "event",
        "protocol",
        "user_agent",
        "referer",
        "streamer",
        "bytes",
    ];
    let mut rng = rng(4);
    for round in 0..ROUNDS {
        let req = request(&mut rng, "", &[]);
        let mut srs_hook = json_object(&mut rng, 0, &srs_keys);
        let mut mediamtx_hook = json_object(&mut rng, 0, &mediamtx_keys);
        // Half the time, plausible values so parsing goes deep.
        if round % 2 == 0 {
            srs_hook["action"] = json!(["on_play", "on_stop", "on_close", "on_publish"][round % 4]);
            srs_hook["ip"] = json!("192.0.2.1");
            mediamtx_hook["action"] = json!(["read", "publish", "playback", "api"][round % 4]);
            mediamtx_hook["ip"] = json!("2001:db8::1");
        }
        let ome_hook = json!({
            "client": json_object(&mut rng, 1, &["address", "port", "real_ip", "user_agent"]),
            "request": json_object(&mut rng, 1, &["direction", "protocol", "status", "url", "time"]),
        });
        let mut decide_request = json_object(&mut rng, 0, &decide_keys);
        if round % 2 == 0 {
            decide_request["stream"] = json!(text(&mut rng));
            decide_request["ip"] = json!(["192.0.2.1", "::ffff:10.0.0.1", "x"][round % 3]);
        }
        check("srs", parsed::<Srs>(&req, srs_hook.to_string().as_bytes()));
        check(
            "mediamtx",
            parsed::<MediaMtx>(&req, mediamtx_hook.to_string().as_bytes()),
        );
        check(
            "ovenmediaengine",
            parsed::<OvenMediaEngine>(&req, ome_hook.to_string().as_bytes()),
        );
        check(
            "decide",
            parsed::<Decide>(&req, decide_request.to_string().as_bytes()),
        );
        let noise = text(&mut rng);
        check("srs", parsed::<Srs>(&req, noise.as_bytes()));
        check("mediamtx", parsed::<MediaMtx>(&req, noise.as_bytes()));
        check(
            "ovenmediaengine",
            parsed::<OvenMediaEngine>(&req, noise.as_bytes()),
        );
        check("decide", parsed::<Decide>(&req, noise.as_bytes()));
        let _ = ovenmediaengine::signature_valid("secret", noise.as_bytes(), Some(&noise));
    }
}

#[test]
fn ome_urls_never_panic() {
    let mut rng = rng(5);
    for _ in 0..ROUNDS {
        let url = format!("{}://{}", word(&mut rng), text(&mut rng));
        if let Ok((stream, _)) = ovenmediaengine::stream_and_query(&url) {
            assert!(stream.contains('/'));
        }
    }
}
