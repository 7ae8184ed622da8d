//! Every page of the web interface at desktop (1366 px) and phone (390 px)
//! width (issue 22), on a service with data on every page: each page is
//! saved as docs/web-interface/<page>-<width>.png (the pictures
//! docs/web-interface.md shows), every form control has a label, nothing
//! makes the page itself wider than the screen, and every row's action
//! buttons can be reached (inside the screen, or in a table that scrolls
//! sideways).

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::*;
use crate::ui_browser::{browser, Browser};

/// The pages, each with a text it shows once loaded.
const PAGES: &[(&str, &str, &str)] = &[
    ("users", "#/users", "alice"),
    ("user", "#/user?login=alice", "Watching now"),
    ("sessions", "#/sessions", "198.51.100.7"),
    ("history", "#/sessions?state=ended", "stopped"),
    ("stats", "#/stats", "Denials by reason"),
    ("packages", "#/packages", "sport/*"),
    ("ip-rules", "#/ip-rules", "203.0.113.0/24"),
    ("access-rules", "#/access-rules", "sport/*"),
    ("signing-keys", "#/signing-keys", "portal"),
    ("streamers", "#/streamers", "edge-1"),
    ("webhooks", "#/webhooks", "billing.example"),
    ("audit", "#/audit", "alice"),
];

const WIDTHS: &[(u32, u32)] = &[(1366, 900), (390, 844)];

fn docs_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/web-interface")
}

/// What is wrong with the page as shown: unlabelled controls, a page wider
/// than the window, action buttons out of reach.
async fn problems(browser: &Browser) -> Value {
    browser
        .script(
            r#"
            const out = [];
            for (const e of document.querySelectorAll("input, select, textarea")) {
              if (e.type === "hidden" || e.closest("[hidden]")) continue;
              const labelled = (e.labels && e.labels.length) || e.getAttribute("aria-label")
                || e.getAttribute("aria-labelledby") || e.closest("label");
              if (!labelled) out.push("no label: " + e.outerHTML.slice(0, 100));
            }
            if (document.documentElement.scrollWidth > window.innerWidth + 1)
              out.push("page wider than the window: " + document.documentElement.scrollWidth + " > " + window.innerWidth);
            for (const b of document.querySelectorAll("td.actions button")) {
              const r = b.getBoundingClientRect();
              if (r.right <= window.innerWidth + 1) continue;
              const wrap = b.closest(".table-wrap");
              const scrolls = wrap && ["auto", "scroll"].includes(getComputedStyle(wrap).overflowX)
                && wrap.scrollWidth > wrap.clientWidth;
              if (!scrolls) out.push("action out of reach: " + b.textContent);
            }
            return out;"#,
            json!([]),
        )
        .await
}

#[tokio::test]
async fn every_page_at_desktop_and_phone_width() {
    let Some((chromium, chromedriver)) = browser("ui_pages") else {
        return;
    };
    let app = spawn_app_with(|settings| settings.stats_interval = Duration::from_secs(1)).await;
    seed_admins(&app).await;
    // Data for every page.
    app.admin(
        "POST",
        "/api/v1/packages",
        Some(json!({"name": "sports", "streams": ["sport/*", "espn"], "comment": "sports pack"})),
        201,
    )
    .await;
    app.admin(
        "POST",
        "/api/v1/users",
        Some(
            json!({"login": "alice", "token": "alice-t", "max_sessions": 2,
                    "packages": ["sports"], "comment": "living room"}),
        ),
        201,
    )
    .await;
    app.admin(
        "POST",
        "/api/v1/users",
        Some(json!({"login": "bob", "token": "bob-t", "max_sessions": 1})),
        201,
    )
    .await;
    app.admin(
        "POST",
        "/api/v1/ip-rules",
        Some(json!({"network": "203.0.113.0/24", "action": "deny", "comment": "restreamer"})),
        201,
    )
    .await;
    app.admin(
        "POST",
        "/api/v1/access-rules",
        Some(
            json!({"action": "deny", "streams": ["sport/*"], "countries": ["PL"],
                    "negate": ["countries"], "comment": "rights: Poland only"}),
        ),
        201,
    )
    .await;
    app.admin(
        "POST",
        "/api/v1/signing-keys",
        Some(json!({"id": "portal", "format": "playgate", "comment": "billing portal"})),
        201,
    )
    .await;
    app.admin(
        "POST",
        "/api/v1/streamers",
        Some(json!({"name": "edge-1", "kind": "nginx-rtmp", "control_url": "http://10.0.0.5:8080/control",
                    "username": "playgate", "password": "s3cret", "addresses": ["10.0.0.5", "10.0.1.0/24"],
                    "comment": "dc 1"})),
        201,
    )
    .await;
    // Disabled: no event goes anywhere.
    app.admin(
        "POST",
        "/api/v1/webhooks",
        Some(
            json!({"url": "https://billing.example/playgate", "enabled": false,
                    "events": ["session.started", "session.ended"], "comment": "billing"}),
        ),
        201,
    )
    .await;
    let start = |token: &str, session: &str, stream: &str, ip: &str, event: &str| {
        json!({"stream": stream, "ip": ip, "token": token, "session": session, "event": event,
               "user_agent": "VLC/3.0.20 LibVLC/3.0.20"})
    };
    for (token, session, stream, ip) in [
        ("alice-t", "a1", "espn", "198.51.100.7"),
        ("bob-t", "b0", "kids", "192.0.2.45"),
    ] {
        let decision = app.decide(start(token, session, stream, ip, "start")).await;
        assert_eq!(reason(&decision), "ok", "{decision}");
    }
    app.decide(start("bob-t", "b0", "kids", "192.0.2.45", "stop"))
        .await;
    let decision = app
        .decide(start("bob-t", "b1", "news", "192.0.2.44", "start"))
        .await;
    assert_eq!(reason(&decision), "ok", "{decision}");
    // Denials: account sharing, and a blocked network.
    app.decide(start("bob-t", "b2", "news", "192.0.2.46", "start"))
        .await;
    app.decide(start("alice-t", "a9", "news", "203.0.113.9", "start"))
        .await;

    let browser = Browser::start(&chromium, &chromedriver).await;
    let address = app.address.clone();
    let dir = docs_dir();
    std::fs::create_dir_all(&dir).unwrap();
    for &(width, height) in WIDTHS {
        browser
            .command(
                "POST",
                "/window/rect",
                Some(json!({"width": width, "height": height})),
            )
            .await;
        browser.goto(&format!("{address}/ui/")).await;
        browser.find("#login").await;
        let login_problems = problems(&browser).await;
        assert_eq!(login_problems, json!([]), "sign-in at {width} px");
        save(&browser, &dir, "login", width).await;
        browser.sign_in(&address, "root", "root-pw").await;
        browser.find("#new-user").await;
        for &(name, path, shows) in PAGES {
            browser.goto(&format!("{address}/ui/{path}")).await;
            browser.wait_text(shows, true).await;
            // Lists that load in steps (statistics) settle.
            tokio::time::sleep(Duration::from_millis(400)).await;
            let found = problems(&browser).await;
            assert_eq!(found, json!([]), "{name} at {width} px");
            save(&browser, &dir, name, width).await;
        }
        browser.click("#logout").await;
    }
}

/// The screenshot, copied to docs/web-interface/<name>-<width>.png.
async fn save(browser: &Browser, dir: &std::path::Path, name: &str, width: u32) {
    let shot = browser.screenshot(&format!("{name}-{width}")).await;
    std::fs::copy(&shot, dir.join(format!("{name}-{width}.png"))).unwrap();
}
