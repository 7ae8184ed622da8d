//! Signed links (SPEC §9) against implementations that are not playgate's
//! (issue 19, "Proof"): every link made by an independent party must pass
//! playgate, and every link playgate issues must pass that party's check.
//!
//! - `nginx`: real nginx and its own `ngx_http_secure_link_module`
//!   (tests/referees/nginx-secure-link.conf), with links made by the
//!   recipe of nginx's documentation run in a shell with `openssl`.
//! - `akamai`: Akamai's official generator, the PyPI package
//!   `akamai-edgeauth` (tests/referees/edgeauth_token.py, in the venv of
//!   scripts/install-test-deps). EdgeAuth has no verifier: playgate's
//!   tokens are instead compared byte for byte with the ones EdgeAuth makes
//!   from the same fields.
//! - `securetoken` and `wowza`: tests/referees/sign_links.py, written from
//!   the vendors' documentation with Python's hashlib/hmac/base64, which
//!   first reproduces the examples the vendors published (`selftest`).
//!
//! Without nginx, openssl, python3 or the venv a test says it skipped; with
//! `CI=true` it fails.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};

use crate::e2e_nginx::Nginx;
use crate::e2e_support::*;
use crate::helpers::*;

const NGINX_REFEREE: &str = include_str!("../referees/nginx-secure-link.conf");
const SIGN_LINKS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/referees/sign_links.py");
const EDGEAUTH_TOKEN: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/referees/edgeauth_token.py"
);

/// The secret in the nginx referee's default-template location, and in
/// playgate's key `edge`.
const NGINX_SECRET: &str = "nginx-interop-secret-0123456789";
/// The secret of the `/vod/` location (template
/// `${secure_link_expires}:${uri}:<secret>`), and of playgate's key `vod`.
const VOD_SECRET: &str = "vod-interop-secret-0123456789";
const VOD_TEMPLATE: &str = "${secure_link_expires}:${uri}:$secret";

fn unix_now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Runs a referee; its standard output, trimmed (panics when it fails).
fn run(command: &mut Command) -> String {
    let (code, out) = run_status(command);
    assert_eq!(code, 0, "{command:?} failed: {out}");
    out
}

/// A referee's exit code and its output (standard output, then error).
fn run_status(command: &mut Command) -> (i32, String) {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    let mut text = String::from_utf8_lossy(&output.stdout).trim().to_string();
    let errors = String::from_utf8_lossy(&output.stderr);
    if !errors.trim().is_empty() {
        text.push_str(&format!("\n[stderr] {}", errors.trim()));
    }
    (output.status.code().unwrap_or(-1), text)
}

/// The query value of `name` (raw, as in the link).
fn param<'a>(query: &'a str, name: &str) -> &'a str {
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name} in {query}"))
}

/// The text with its last character changed (a tampered signature).
fn last_changed(text: &str) -> String {
    let last = text.chars().last().unwrap();
    let other = if last == 'A' { 'B' } else { 'A' };
    format!("{}{other}", &text[..text.len() - last.len_utf8()])
}

/// The text with its first character changed (a tampered signature: the
/// last character of a base64 digest may have bits that decode to nothing).
fn first_changed(text: &str) -> String {
    let other = if text.starts_with('A') { 'B' } else { 'A' };
    format!("{other}{}", &text[1..])
}

/// The md5 of a link with the unused low bits of its last character set:
/// 16 bytes in base64 leave 4 bits of it that decode to nothing.
fn non_canonical(md5: &str) -> String {
    const ALPHABET: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let last = md5.chars().last().unwrap();
    let index = ALPHABET.find(last).unwrap();
    assert_eq!(index % 16, 0, "a canonical md5 ends in A, Q, g or w: {md5}");
    let other = ALPHABET.as_bytes()[index + 1] as char;
    format!("{}{other}", &md5[..md5.len() - 1])
}

/// An enabled key with this secret and these options.
async fn make_key(app: &TestApp, id: &str, format: &str, secret: &str, options: Value) {
    let body = json!({"id": id, "format": format, "secret": secret, "options": options});
    app.admin("POST", "/api/v1/signing-keys", Some(body), 201)
        .await;
    app.reload().await;
}

/// POST /api/v1/links; the query to append.
async fn issue(app: &TestApp, request: Value) -> String {
    let issued = app.admin("POST", "/api/v1/links", Some(request), 201).await;
    issued["query"].as_str().unwrap().to_string()
}

/// A /hook/decide start of `stream` from `ip` with this query, as its own
/// session.
async fn decide_link(app: &TestApp, stream: &str, ip: &str, query: &str) -> Value {
    let session = uuid::Uuid::new_v4().to_string();
    app.decide(with(
        play(stream, ip),
        json!({"query": query, "session": session, "user_agent": "interop"}),
    ))
    .await
}

/// An app with link skew 0 (the referees have none) and the seeded admins.
async fn strict_app() -> TestApp {
    let app = spawn_app_with(|settings| settings.link_skew = Duration::ZERO).await;
    seed_admins(&app).await;
    app
}

// ---- nginx: the real secure_link module ----

struct NginxTools {
    nginx: PathBuf,
}

fn nginx_tools(test: &str) -> Option<NginxTools> {
    tools_or_skip(test, || {
        let nginx = which("nginx").ok_or("nginx")?;
        which("openssl").ok_or("openssl")?;
        let built = Command::new(&nginx)
            .arg("-V")
            .output()
            .map_err(|_| "nginx")?;
        if !String::from_utf8_lossy(&built.stderr).contains("http_secure_link_module") {
            return Err("nginx with ngx_http_secure_link_module");
        }
        Ok(NginxTools { nginx })
    })
}

/// The `md5` of a link as nginx's documentation makes it:
/// `echo -n '<text>' | openssl md5 -binary | openssl base64 | tr +/ -_ | tr -d =`.
fn nginx_doc_md5(text: &str) -> String {
    run(Command::new("bash").args([
        "-c",
        r#"set -o pipefail; echo -n "$0" | openssl md5 -binary | openssl base64 | tr +/ -_ | tr -d ="#,
        text,
    ]))
}

/// The nginx of the referee: on `http_port` its secure_link, on
/// `playgate_port` auth_request to the app; the app has the keys `edge`
/// (default template) and `vod` (VOD_TEMPLATE) with the referee's secrets.
struct SecureLink {
    app: TestApp,
    nginx: Nginx,
    playgate_port: u16,
}

const NEWS: &str = "/live/news/index.m3u8";

async fn secure_link_setup(test: &str) -> Option<SecureLink> {
    let tools = nginx_tools(test)?;
    let app = strict_app().await;
    make_key(&app, "edge", "nginx", NGINX_SECRET, json!({})).await;
    make_key(
        &app,
        "vod",
        "nginx",
        VOD_SECRET,
        json!({"template": VOD_TEMPLATE}),
    )
    .await;
    let playgate_port = free_port();
    let config = NGINX_REFEREE
        .replace("{PLAYGATE_PORT}", &playgate_port.to_string())
        .replace("{SECRET}", NGINX_SECRET)
        .replace("{VOD_SECRET}", VOD_SECRET);
    let nginx = Nginx::start_http(&tools.nginx, &config, &app.address).await;
    for (folder, marker) in [
        ("live/news", "NEWS-PLAYLIST"),
        ("live/my news", "MY-NEWS-PLAYLIST"),
        ("vod/news", "VOD-PLAYLIST"),
    ] {
        let dir = nginx.dir.join("hls").join(folder);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("index.m3u8"), format!("#EXTM3U\n# {marker}\n")).unwrap();
    }
    for _ in 0..50 {
        if std::net::TcpStream::connect(("127.0.0.1", playgate_port)).is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Some(SecureLink {
        app,
        nginx,
        playgate_port,
    })
}

/// A user agent of its own: every request is another device's start, not
/// the continuation of an earlier session of this address (SPEC §9: a
/// device's active session goes on whatever link it shows).
fn new_device() -> String {
    format!("interop-{}", uuid::Uuid::new_v4())
}

impl SecureLink {
    /// What nginx's secure_link answers `target` (from 127.0.0.1).
    async fn by_nginx(&self, target: &str) -> RawAnswer {
        raw_get(
            self.nginx.http_port,
            target,
            &[("User-Agent", &new_device())],
        )
        .await
    }

    /// What the same nginx answers `target` when it asks playgate.
    async fn by_playgate(&self, target: &str) -> RawAnswer {
        raw_get(self.playgate_port, target, &[("User-Agent", &new_device())]).await
    }

    /// Both statuses for a client at another loopback address.
    async fn by_both_from(&self, peer: &str, target: &str) -> (u16, u16) {
        let client = client_from(peer);
        let mut statuses = [0; 2];
        for (status, port) in statuses
            .iter_mut()
            .zip([self.nginx.http_port, self.playgate_port])
        {
            *status = client
                .get(format!("http://127.0.0.1:{port}{target}"))
                .header("User-Agent", new_device())
                .send()
                .await
                .expect("nginx answers")
                .status()
                .as_u16();
        }
        (statuses[0], statuses[1])
    }
}

/// A link of the default template, `$secure_link_expires$uri$remote_addr
/// <secret>`, made by the documentation's recipe.
fn doc_link(expires: &str, uri: &str, remote_addr: &str) -> String {
    let md5 = nginx_doc_md5(&format!("{expires}{uri}{remote_addr} {NGINX_SECRET}"));
    format!("md5={md5}&expires={expires}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn links_made_as_nginx_documents_pass_real_nginx_and_playgate_alike() {
    let Some(setup) =
        secure_link_setup("links_made_as_nginx_documents_pass_real_nginx_and_playgate_alike").await
    else {
        return;
    };
    // The recipe gives the documentation's own example.
    assert_eq!(
        nginx_doc_md5("2147483647/s/link127.0.0.1 secret"),
        "_e4Nc3iduzkWRm01TBBNYw"
    );
    let now = unix_now();
    let expires = (now + 300).to_string();
    let good = doc_link(&expires, NEWS, "127.0.0.1");
    let target = format!("{NEWS}?{good}");
    let by_nginx = setup.by_nginx(&target).await;
    assert_eq!(by_nginx.status, 200, "nginx: {}", setup.nginx.logs());
    assert!(by_nginx.body.contains("NEWS-PLAYLIST"));
    let by_playgate = setup.by_playgate(&target).await;
    assert_eq!(by_playgate.status, 200, "playgate behind nginx");
    assert!(by_playgate.body.contains("NEWS-PLAYLIST"));
    // The hook itself, as any forward-auth proxy asks it.
    assert_eq!(setup.app.hls_get(&target, "127.0.0.1").await.status, 200);

    let md5 = param(&good, "md5");
    let vod = "/vod/news/index.m3u8";
    let vod_md5 = nginx_doc_md5(&format!("{expires}:{vod}:{VOD_SECRET}"));
    let cases: Vec<(&str, String, u16)> = vec![
        (
            "a changed md5",
            format!("{NEWS}?md5={}&expires={expires}", first_changed(md5)),
            403,
        ),
        (
            "a changed expires",
            format!("{NEWS}?md5={md5}&expires={}", now + 301),
            403,
        ),
        (
            "expired 5 s ago",
            format!(
                "{NEWS}?{}",
                doc_link(&(now - 5).to_string(), NEWS, "127.0.0.1")
            ),
            410,
        ),
        (
            "another path",
            format!("/live/sport/index.m3u8?{good}"),
            403,
        ),
        (
            "signed for another address",
            format!("{NEWS}?{}", doc_link(&expires, NEWS, "127.0.0.2")),
            403,
        ),
        (
            "$uri is the decoded path",
            format!(
                "/live/my%20news/index.m3u8?{}",
                doc_link(&expires, "/live/my news/index.m3u8", "127.0.0.1")
            ),
            200,
        ),
        (
            "an md5 with its base64 padding",
            format!("{NEWS}?md5={md5}==&expires={expires}"),
            200,
        ),
        (
            "expires with a leading zero, hashed as sent",
            format!(
                "{NEWS}?{}",
                doc_link(&format!("0{expires}"), NEWS, "127.0.0.1")
            ),
            200,
        ),
        (
            "no expires",
            format!(
                "{NEWS}?md5={}",
                nginx_doc_md5(&format!("{NEWS}127.0.0.1 {NGINX_SECRET}"))
            ),
            // `secure_link $arg_md5,$arg_expires` with no expires: an
            // empty time, an invalid link (not a link without an end).
            403,
        ),
        (
            "another template (/vod/)",
            format!("{vod}?md5={vod_md5}&expires={expires}"),
            200,
        ),
    ];
    let mut disagreements = Vec::new();
    for (what, target, nginx_status) in &cases {
        let by_nginx = setup.by_nginx(target).await.status;
        assert_eq!(by_nginx, *nginx_status, "the referee on {what}: {target}");
        let by_playgate = setup.by_playgate(target).await;
        if (by_playgate.status == 200) != (by_nginx == 200) {
            disagreements.push(format!(
                "{what}: {target}: nginx {by_nginx}, playgate {} {}",
                by_playgate.status, by_playgate.body
            ));
        }
    }
    // A client at another address than the link's.
    let (nginx_status, playgate_status) = setup.by_both_from("127.0.0.2", &target).await;
    assert_eq!(nginx_status, 403, "the referee from 127.0.0.2");
    if playgate_status == 200 {
        disagreements.push(format!("from 127.0.0.2: playgate {playgate_status}"));
    }
    // Where playgate is stricter than nginx, on purpose (src/links/nginx.rs
    // takes the canonical 22 characters only): nginx decodes the md5
    // without checking the 4 unused bits of its last character, so 16
    // spellings of one md5 pass it. Every generator (the documentation's
    // recipe, playgate) writes the canonical one.
    let spelling = format!("{NEWS}?md5={}&expires={expires}", non_canonical(md5));
    assert_eq!(setup.by_nginx(&spelling).await.status, 200, "{spelling}");
    assert_eq!(setup.by_playgate(&spelling).await.status, 403, "{spelling}");
    assert!(
        disagreements.is_empty(),
        "playgate and nginx disagree:\n{}",
        disagreements.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn links_playgate_issues_in_nginx_format_pass_real_nginx() {
    let Some(setup) =
        secure_link_setup("links_playgate_issues_in_nginx_format_pass_real_nginx").await
    else {
        return;
    };
    let app = &setup.app;
    let query = issue(
        app,
        json!({"stream": "live/news", "uri": NEWS, "ip": "127.0.0.1", "key": "edge", "ttl": 300}),
    )
    .await;
    let target = format!("{NEWS}?{query}");
    let answer = setup.by_nginx(&target).await;
    assert_eq!(answer.status, 200, "{target}\n{}", setup.nginx.logs());
    assert!(answer.body.contains("NEWS-PLAYLIST"));
    assert_eq!(setup.by_playgate(&target).await.status, 200);

    // Tampered: refused by nginx as by playgate.
    let md5 = param(&query, "md5");
    let tampered = format!(
        "{NEWS}?md5={}&expires={}",
        first_changed(md5),
        param(&query, "expires")
    );
    assert_eq!(setup.by_nginx(&tampered).await.status, 403);
    assert_eq!(setup.by_playgate(&tampered).await.status, 403);
    // Issued for another path.
    let sport = issue(
        app,
        json!({"stream": "live/sport", "uri": "/live/sport/index.m3u8", "ip": "127.0.0.1", "key": "edge"}),
    )
    .await;
    assert_eq!(setup.by_nginx(&format!("{NEWS}?{sport}")).await.status, 403);
    // Issued for 127.0.0.2: refused from 127.0.0.1, played from 127.0.0.2.
    let other = issue(
        app,
        json!({"stream": "live/news", "uri": NEWS, "ip": "127.0.0.2", "key": "edge"}),
    )
    .await;
    let other_target = format!("{NEWS}?{other}");
    assert_eq!(setup.by_nginx(&other_target).await.status, 403);
    assert_eq!(
        setup.by_both_from("127.0.0.2", &other_target).await,
        (200, 200),
        "from the link's own address, nginx and playgate"
    );
    // A path with a space: nginx hashes its decoded $uri.
    let spaced = issue(
        app,
        json!({"stream": "live/my news", "uri": "/live/my news/index.m3u8", "ip": "127.0.0.1", "key": "edge"}),
    )
    .await;
    let spaced_target = format!("/live/my%20news/index.m3u8?{spaced}");
    assert_eq!(setup.by_nginx(&spaced_target).await.status, 200);
    assert_eq!(setup.by_playgate(&spaced_target).await.status, 200);
    // Another template, without the address.
    let vod = issue(
        app,
        json!({"stream": "vod/news", "uri": "/vod/news/index.m3u8", "key": "vod"}),
    )
    .await;
    let vod_target = format!("/vod/news/index.m3u8?{vod}");
    let answer = setup.by_nginx(&vod_target).await;
    assert_eq!(answer.status, 200, "{vod_target}");
    assert!(answer.body.contains("VOD-PLAYLIST"));
    assert_eq!(setup.by_playgate(&vod_target).await.status, 200);

    // Expired: nginx says 410 (hash right, time past), playgate refuses.
    let short = issue(
        app,
        json!({"stream": "live/news", "uri": NEWS, "ip": "127.0.0.1", "key": "edge", "ttl": 1}),
    )
    .await;
    let expires: i64 = param(&short, "expires").parse().unwrap();
    let short_target = format!("{NEWS}?{short}");
    while unix_now() <= expires {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(setup.by_nginx(&short_target).await.status, 410);
    let refused = setup.by_playgate(&short_target).await;
    assert_eq!(refused.status, 403);
    assert_eq!(
        app.decision_count("forward-auth", "deny", "link_expired")
            .await,
        1.0
    );
}

// ---- akamai: the official EdgeAuth generator ----

/// The venv's python with `akamai-edgeauth` (scripts/install-test-deps).
fn edgeauth_python(test: &str) -> Option<PathBuf> {
    tools_or_skip(test, || {
        let venv = std::env::var_os("REFEREES_VENV")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("target/referees-venv"));
        let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join(venv);
        let python = venv.join("bin/python");
        let imports = Command::new(&python)
            .args(["-c", "import akamai.edgeauth"])
            .output()
            .is_ok_and(|output| output.status.success());
        match imports {
            true => Ok(python),
            false => Err("akamai-edgeauth (PyPI, in target/referees-venv)"),
        }
    })
}

/// A token from EdgeAuth with these arguments of edgeauth_token.py.
fn edgeauth(python: &Path, args: &[&str]) -> String {
    run(Command::new(python).arg(EDGEAUTH_TOKEN).args(args))
}

const AKAMAI_KEY: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
const AKAMAI_SHA1_KEY: &str = "1f1e1d1c1b1a191817161514131211100f0e0d0c0b0a09080706050403020100";
const AKAMAI_MD5_KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
const AKAMAI_HDNTS_KEY: &str = "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100";

async fn akamai_app() -> TestApp {
    let app = strict_app().await;
    make_key(&app, "ak", "akamai", AKAMAI_KEY, json!({})).await;
    make_key(
        &app,
        "ak-sha1",
        "akamai",
        AKAMAI_SHA1_KEY,
        json!({"algorithm": "sha1"}),
    )
    .await;
    make_key(
        &app,
        "ak-md5",
        "akamai",
        AKAMAI_MD5_KEY,
        json!({"algorithm": "md5"}),
    )
    .await;
    make_key(
        &app,
        "ak-hdnts",
        "akamai",
        AKAMAI_HDNTS_KEY,
        json!({"param": "hdnts"}),
    )
    .await;
    app
}

#[tokio::test]
async fn akamai_edgeauth_tokens_are_accepted_by_playgate() {
    let Some(python) = edgeauth_python("akamai_edgeauth_tokens_are_accepted_by_playgate") else {
        return;
    };
    let app = akamai_app().await;
    let now = unix_now();
    let (start, end) = ((now - 30).to_string(), (now + 300).to_string());
    let window = ["--start", start.as_str(), "--end", end.as_str()];
    let token = |key: &str, extra: &[&str]| {
        let mut args = vec!["--key", key];
        args.extend(window);
        args.extend(extra);
        edgeauth(&python, &args)
    };
    let news = token(AKAMAI_KEY, &["--acl", "/live/news/*"]);
    assert!(news.starts_with(&format!("st={start}~exp={end}~acl=/live/news/*~hmac=")));
    let sha1 = token(
        AKAMAI_SHA1_KEY,
        &["--acl", "/live/news/*", "--algorithm", "sha1"],
    );
    let md5 = token(
        AKAMAI_MD5_KEY,
        &["--acl", "/live/news/*", "--algorithm", "md5"],
    );
    let hdnts = token(AKAMAI_HDNTS_KEY, &["--acl", "/live/news/*"]);
    let bound = token(AKAMAI_KEY, &["--acl", "/live/news/*", "--ip", "192.0.2.7"]);
    let listed = token(
        AKAMAI_KEY,
        &[
            "--acl",
            "/live/news/*",
            "--acl",
            "/live/sport/index.m3u8",
            "--session-id",
            "sess-42",
            "--payload",
            "alice",
        ],
    );
    let escaped = token(
        AKAMAI_KEY,
        &[
            "--acl",
            "/live/news/*",
            "--ip",
            "2001:db8::1",
            "--payload",
            "a b/c",
            "--escape-early",
        ],
    );
    assert!(escaped.contains("data=a+b%2fc"), "{escaped}");
    let single = token(AKAMAI_KEY, &["--acl", "/live/new?/*"]);
    let no_start = edgeauth(
        &python,
        &["--key", AKAMAI_KEY, "--end", &end, "--acl", "/live/*"],
    );
    let (old_start, old_end) = ((now - 600).to_string(), (now - 300).to_string());
    let expired = edgeauth(
        &python,
        &[
            "--key",
            AKAMAI_KEY,
            "--start",
            &old_start,
            "--end",
            &old_end,
            "--acl",
            "/live/news/*",
        ],
    );

    // (what, uri with query, client address, status expected, body (reason) of a refusal)
    let cases: Vec<(&str, String, &str, u16, &str)> = vec![
        (
            "sha256, ACL /live/news/*",
            format!("{NEWS}?__token__={news}"),
            "192.0.2.1",
            200,
            "",
        ),
        (
            "* crosses /",
            format!("/live/news/hd/index.m3u8?__token__={news}"),
            "192.0.2.1",
            200,
            "",
        ),
        (
            "outside the ACL",
            format!("/live/sport/index.m3u8?__token__={news}"),
            "192.0.2.1",
            403,
            "link_invalid",
        ),
        (
            "sha1",
            format!("{NEWS}?__token__={sha1}"),
            "192.0.2.1",
            200,
            "",
        ),
        (
            "md5",
            format!("{NEWS}?__token__={md5}"),
            "192.0.2.1",
            200,
            "",
        ),
        (
            "param hdnts",
            format!("{NEWS}?hdnts={hdnts}"),
            "192.0.2.1",
            200,
            "",
        ),
        (
            "hdnts's token under __token__",
            format!("{NEWS}?__token__={hdnts}"),
            "192.0.2.1",
            403,
            "link_invalid",
        ),
        (
            "ip, from it",
            format!("{NEWS}?__token__={bound}"),
            "192.0.2.7",
            200,
            "",
        ),
        (
            "ip, from another",
            format!("{NEWS}?__token__={bound}"),
            "192.0.2.8",
            403,
            "ip_mismatch",
        ),
        (
            "two ACLs, id, data: the second",
            format!("/live/sport/index.m3u8?__token__={listed}"),
            "192.0.2.1",
            200,
            "",
        ),
        (
            "two ACLs: neither",
            format!("/live/sport/other.m3u8?__token__={listed}"),
            "192.0.2.1",
            403,
            "link_invalid",
        ),
        (
            "escape_early, IPv6, data with a space and a slash",
            format!("{NEWS}?__token__={escaped}"),
            "2001:db8::1",
            200,
            "",
        ),
        (
            "the ? wildcard",
            format!("{NEWS}?__token__={single}"),
            "192.0.2.1",
            200,
            "",
        ),
        (
            "no st",
            format!("{NEWS}?__token__={no_start}"),
            "192.0.2.1",
            200,
            "",
        ),
        (
            "expired",
            format!("{NEWS}?__token__={expired}"),
            "192.0.2.1",
            403,
            "link_expired",
        ),
        (
            "a changed hmac",
            format!("{NEWS}?__token__={}", last_changed(&news)),
            "192.0.2.1",
            403,
            "link_invalid",
        ),
    ];
    let mut wrong = Vec::new();
    for (what, uri, ip, status, refusal) in &cases {
        let answer = app
            .hook_get(
                "/hook/forward-auth",
                &[
                    ("X-Original-URI", uri),
                    ("X-Real-IP", ip),
                    ("User-Agent", &new_device()),
                ],
            )
            .await;
        if answer.status != *status || (*status != 200 && answer.body != *refusal) {
            wrong.push(format!(
                "{what}: {uri} from {ip}: {} {} (expected {status} {refusal})",
                answer.status, answer.body
            ));
        }
    }
    assert!(wrong.is_empty(), "EdgeAuth tokens:\n{}", wrong.join("\n"));
}

/// EdgeAuth generates and does not verify (Akamai's verifier is the edge):
/// instead, a token playgate issues must be exactly the one EdgeAuth makes
/// from the same fields with the same key.
#[tokio::test]
async fn akamai_tokens_playgate_issues_are_the_ones_edgeauth_makes() {
    let Some(python) = edgeauth_python("akamai_tokens_playgate_issues_are_the_ones_edgeauth_makes")
    else {
        return;
    };
    let app = akamai_app().await;
    for (key, secret, algorithm, acl, ip) in [
        ("ak", AKAMAI_KEY, "sha256", "/live/news/*", None),
        (
            "ak",
            AKAMAI_KEY,
            "sha256",
            "/live/news/index.m3u8",
            Some("192.0.2.7"),
        ),
        ("ak-sha1", AKAMAI_SHA1_KEY, "sha1", "/live/*", None),
        (
            "ak-md5",
            AKAMAI_MD5_KEY,
            "md5",
            "/live/news/*",
            Some("2001:db8::1"),
        ),
        (
            "ak",
            AKAMAI_KEY,
            "sha256",
            "/live/news/*!/live/sport/index.m3u8",
            None,
        ),
    ] {
        let mut request = json!({"stream": "live/news", "uri": acl, "key": key, "ttl": 300});
        if let Some(ip) = ip {
            request["ip"] = json!(ip);
        }
        let query = issue(&app, request).await;
        let (name, token) = query.split_once('=').unwrap();
        assert_eq!(name, "__token__", "{query}");
        let exp = token
            .split('~')
            .find_map(|field| field.strip_prefix("exp="))
            .unwrap_or_else(|| panic!("no exp in {token}"));
        let mut args = vec!["--key", secret, "--end", exp, "--algorithm", algorithm];
        for glob in acl.split('!') {
            args.extend(["--acl", glob]);
        }
        if let Some(ip) = ip {
            args.extend(["--ip", ip]);
        }
        assert_eq!(
            token,
            edgeauth(&python, &args),
            "playgate's {key} token for {acl} {ip:?}"
        );
        // And playgate takes back what it issued.
        let ip = ip.unwrap_or("192.0.2.1");
        assert_eq!(
            app.hls_get(&format!("{NEWS}?{query}"), ip).await.status,
            200
        );
    }
}

// ---- securetoken and wowza: the referee written from the vendors' docs ----

fn python3(test: &str) -> Option<PathBuf> {
    tools_or_skip(test, || which("python3").ok_or("python3"))
}

/// sign_links.py with these arguments: (exit code, output).
fn referee(python: &Path, args: &[&str]) -> (i32, String) {
    run_status(Command::new(python).arg(SIGN_LINKS).args(args))
}

/// sign_links.py's `sign`: the query.
fn referee_sign(python: &Path, args: &[&str]) -> String {
    let (code, out) = referee(python, args);
    assert_eq!(code, 0, "sign_links.py {args:?}: {out}");
    out
}

/// The referee reproduces the vendors' published examples, or no verdict
/// of it counts.
fn referee_selftest(python: &Path) {
    let (code, out) = referee(python, &["selftest"]);
    assert_eq!(code, 0, "sign_links.py selftest:\n{out}");
}

const FLU_SECRET: &str = "flussonic-interop-secret-0123";
const FLU_OPEN_SECRET: &str = "flussonic-open-secret-0123456";
const ALTA_SECRET: &str = "alta-interop-secret-0123456789";

#[tokio::test]
async fn securetoken_links_agree_with_the_referee_both_ways() {
    let Some(python) = python3("securetoken_links_agree_with_the_referee_both_ways") else {
        return;
    };
    referee_selftest(&python);
    let app = strict_app().await;
    app.create(user("alice")).await;
    make_key(&app, "flu", "securetoken", FLU_SECRET, json!({})).await;
    make_key(
        &app,
        "flu-open",
        "securetoken",
        FLU_OPEN_SECRET,
        json!({"check_ip": false}),
    )
    .await;
    make_key(
        &app,
        "alta",
        "securetoken",
        ALTA_SECRET,
        json!({"subject": "path"}),
    )
    .await;
    let now = unix_now();
    let (start, end) = ((now - 60).to_string(), (now + 300).to_string());
    let sign = |secret: &str, subject: &str, extra: &[&str]| {
        let mut args = vec![
            "securetoken",
            "sign",
            "--secret",
            secret,
            "--subject",
            subject,
            "--start",
            start.as_str(),
            "--end",
            end.as_str(),
        ];
        args.extend(extra);
        referee_sign(&python, &args)
    };

    // The referee's links, to playgate.
    let news = sign(FLU_SECRET, "news", &["--ip", "192.0.2.1"]);
    let decision = decide_link(&app, "news", "192.0.2.1", &news).await;
    assert_eq!(
        (reason(&decision), &decision["user"]),
        ("ok", &Value::Null),
        "{news}"
    );
    let alices = sign(
        FLU_SECRET,
        "news",
        &["--ip", "192.0.2.1", "--user-id", "alice"],
    );
    let decision = decide_link(&app, "news", "192.0.2.1", &alices).await;
    assert_eq!(
        (reason(&decision), decision["user"].as_str()),
        ("ok", Some("alice")),
        "{alices}"
    );
    let open = sign(FLU_OPEN_SECRET, "news", &["--no-check-ip"]);
    let short_salt = sign(
        FLU_SECRET,
        "news",
        &["--ip", "192.0.2.1", "--salt", "a1b2c3d4"],
    );
    let path = sign(ALTA_SECRET, "/tv/news/index.m3u8", &["--ip", "192.0.2.1"]);
    let old = referee_sign(
        &python,
        &[
            "securetoken",
            "sign",
            "--secret",
            FLU_SECRET,
            "--subject",
            "news",
            "--ip",
            "192.0.2.1",
            "--start",
            &(now - 600).to_string(),
            "--end",
            &(now - 300).to_string(),
        ],
    );
    for (what, stream, ip, query, expected) in [
        (
            "another address",
            "news",
            "192.0.2.2",
            &news,
            "link_invalid",
        ),
        (
            "another stream",
            "sport",
            "192.0.2.1",
            &news,
            "link_invalid",
        ),
        (
            "no_check_ip, from anywhere",
            "news",
            "198.51.100.9",
            &open,
            "ok",
        ),
        ("Cesbo's 8-hex salt", "news", "192.0.2.1", &short_salt, "ok"),
        ("expired", "news", "192.0.2.1", &old, "link_expired"),
    ] {
        let decision = decide_link(&app, stream, ip, query).await;
        assert_eq!(reason(&decision), expected, "{what}: {query}");
    }
    // Subject path, by forward-auth: the URI's path.
    let answer = app
        .hls_get(&format!("/tv/news/index.m3u8?{path}"), "192.0.2.1")
        .await;
    assert_eq!(answer.status, 200, "path subject: {}", answer.body);
    let answer = app
        .hls_get(&format!("/tv/sport/index.m3u8?{path}"), "192.0.2.1")
        .await;
    assert_eq!(answer.status, 403, "another path");

    // playgate's links, to the referee.
    let verify = |secret: &str, subject: &str, ip: &[&str], query: &str, at: Option<i64>| {
        let now = at.map(|at| at.to_string());
        let mut args = vec![
            "securetoken",
            "verify",
            "--secret",
            secret,
            "--subject",
            subject,
            "--query",
            query,
        ];
        args.extend(ip);
        if let Some(now) = &now {
            args.extend(["--now", now]);
        }
        referee(&python, &args)
    };
    let issued = issue(
        &app,
        json!({"stream": "news", "ip": "192.0.2.1", "user": "alice", "key": "flu", "ttl": 300}),
    )
    .await;
    assert!(issued.contains("user_id=alice"), "{issued}");
    let ip = ["--ip", "192.0.2.1"];
    assert_eq!(
        verify(FLU_SECRET, "news", &ip, &issued, None),
        (0, "valid".into()),
        "{issued}"
    );
    let token = param(&issued, "token");
    let end: i64 = token.split('-').nth(2).unwrap().parse().unwrap();
    assert_eq!(
        verify(FLU_SECRET, "news", &ip, &issued, Some(end + 1)).0,
        2,
        "the referee: expired after its end"
    );
    assert_eq!(
        verify(FLU_SECRET, "news", &["--ip", "192.0.2.2"], &issued, None).0,
        1
    );
    let tampered = issued.replace(token, &format!("0{}", &token[1..]));
    let tampered = if tampered == issued {
        issued.replace(token, &format!("1{}", &token[1..]))
    } else {
        tampered
    };
    assert_eq!(verify(FLU_SECRET, "news", &ip, &tampered, None).0, 1);
    let issued_open = issue(&app, json!({"stream": "news", "key": "flu-open"})).await;
    assert_eq!(
        verify(
            FLU_OPEN_SECRET,
            "news",
            &["--no-check-ip"],
            &issued_open,
            None
        ),
        (0, "valid".into()),
        "{issued_open}"
    );
    let issued_path = issue(
        &app,
        json!({"stream": "tv/news", "uri": "/tv/news/index.m3u8", "ip": "192.0.2.1", "key": "alta"}),
    )
    .await;
    assert_eq!(
        verify(ALTA_SECRET, "/tv/news/index.m3u8", &ip, &issued_path, None),
        (0, "valid".into()),
        "{issued_path}"
    );
}

const WOWZA_SECRET: &str = "wowza-interop-secret-0123456789";
const WOWZA_IP_SECRET: &str = "0-wowza-ip-secret-0123456789";

#[tokio::test]
async fn wowza_links_agree_with_the_referee_both_ways() {
    let Some(python) = python3("wowza_links_agree_with_the_referee_both_ways") else {
        return;
    };
    referee_selftest(&python);
    let app = strict_app().await;
    make_key(&app, "wz", "wowza", WOWZA_SECRET, json!({})).await;
    make_key(
        &app,
        "wz-ip",
        "wowza",
        WOWZA_IP_SECRET,
        json!({"prefix": "zhash", "algorithm": "sha512", "check_ip": true}),
    )
    .await;
    let now = unix_now();
    let (start, end) = ((now - 60).to_string(), (now + 300).to_string());
    let sign = |secret: &str, path: &str, extra: &[&str]| {
        let mut args = vec![
            "wowza",
            "sign",
            "--secret",
            secret,
            "--content-path",
            path,
            "--start",
            start.as_str(),
            "--end",
            end.as_str(),
        ];
        args.extend(extra);
        referee_sign(&python, &args)
    };

    // The referee's links, to playgate.
    let news = sign(WOWZA_SECRET, "live/news", &[]);
    let custom = sign(
        WOWZA_SECRET,
        "live/news",
        &["--param", "wowzatokenCustomParameter=abc"],
    );
    let bound = sign(
        WOWZA_IP_SECRET,
        "live/news",
        &[
            "--prefix",
            "zhash",
            "--algorithm",
            "sha512",
            "--check-ip",
            "--ip",
            "192.0.2.1",
        ],
    );
    let old = referee_sign(
        &python,
        &[
            "wowza",
            "sign",
            "--secret",
            WOWZA_SECRET,
            "--content-path",
            "live/news",
            "--start",
            &(now - 600).to_string(),
            "--end",
            &(now - 300).to_string(),
        ],
    );
    let hash = param(&news, "wowzatokenhash");
    assert!(hash.ends_with('='), "SHA-256 in base64 is padded: {hash}");
    let unpadded = news.replace(hash, hash.trim_end_matches('='));
    let encoded = news.replace(hash, &hash.replace('=', "%3D"));
    let changed_custom = custom.replace("CustomParameter=abc", "CustomParameter=abd");
    for (what, stream, ip, query, expected) in [
        ("sha256", "live/news", "192.0.2.1", &news, "ok"),
        (
            "another stream",
            "live/sport",
            "192.0.2.1",
            &news,
            "link_invalid",
        ),
        (
            "a custom parameter",
            "live/news",
            "192.0.2.1",
            &custom,
            "ok",
        ),
        (
            "a changed custom parameter",
            "live/news",
            "192.0.2.1",
            &changed_custom,
            "link_invalid",
        ),
        (
            "without the padding",
            "live/news",
            "192.0.2.1",
            &unpadded,
            "ok",
        ),
        ("padding as %3D", "live/news", "192.0.2.1", &encoded, "ok"),
        (
            "prefix, sha512, client IP",
            "live/news",
            "192.0.2.1",
            &bound,
            "ok",
        ),
        (
            "client IP, from another",
            "live/news",
            "192.0.2.2",
            &bound,
            "link_invalid",
        ),
        ("expired", "live/news", "192.0.2.1", &old, "link_expired"),
    ] {
        let decision = decide_link(&app, stream, ip, query).await;
        assert_eq!(reason(&decision), expected, "{what}: {query}");
    }
    // By forward-auth, the content path is the stream of the URI.
    let answer = app
        .hls_get(&format!("/live/news/playlist.m3u8?{news}"), "192.0.2.1")
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);

    // playgate's links, to the referee.
    let verify = |secret: &str, extra: &[&str], query: &str| {
        let mut args = vec![
            "wowza",
            "verify",
            "--secret",
            secret,
            "--content-path",
            "live/news",
            "--query",
            query,
        ];
        args.extend(extra);
        referee(&python, &args)
    };
    let issued = issue(
        &app,
        json!({"stream": "live/news", "key": "wz", "ttl": 300}),
    )
    .await;
    assert_eq!(
        verify(WOWZA_SECRET, &[], &issued),
        (0, "valid".into()),
        "{issued}"
    );
    let end = param(&issued, "wowzatokenendtime");
    let after = (end.parse::<i64>().unwrap() + 1).to_string();
    assert_eq!(verify(WOWZA_SECRET, &["--now", &after], &issued).0, 2);
    let hash = param(&issued, "wowzatokenhash");
    let tampered = issued.replace(hash, &last_changed(hash.trim_end_matches('=')));
    assert_eq!(verify(WOWZA_SECRET, &[], &tampered).0, 1, "{tampered}");
    let issued_bound = issue(
        &app,
        json!({"stream": "live/news", "ip": "192.0.2.1", "key": "wz-ip", "ttl": 300}),
    )
    .await;
    let bound_options = [
        "--prefix",
        "zhash",
        "--algorithm",
        "sha512",
        "--check-ip",
        "--ip",
        "192.0.2.1",
    ];
    assert_eq!(
        verify(WOWZA_IP_SECRET, &bound_options, &issued_bound),
        (0, "valid".into()),
        "{issued_bound}"
    );
}
