//! Filters an operator uses on busy lists (issue 22), in a real browser:
//! the audit log by action and time, live sessions by registered streamer
//! and in another order, with the bytes each streamer reported.

use serde_json::json;

use crate::helpers::*;
use crate::ui_browser::{browser, Browser};

#[tokio::test]
async fn audit_and_session_filters() {
    let Some((chromium, chromedriver)) = browser("ui_filters") else {
        return;
    };
    let app = spawn_admin_app().await;
    for (login, token) in [("ann", "t-ann"), ("bea", "t-bea")] {
        app.create(user(login).token(token)).await;
    }
    app.admin(
        "POST",
        "/api/v1/packages",
        Some(json!({"name": "gone", "streams": ["x"]})),
        201,
    )
    .await;
    app.admin("DELETE", "/api/v1/packages/gone", None, 204)
        .await;
    app.admin(
        "POST",
        "/api/v1/streamers",
        Some(
            json!({"name": "edge-b", "kind": "srs", "control_url": "http://127.0.0.1:9",
                    "addresses": ["127.0.0.2/32"]}),
        ),
        201,
    )
    .await;
    for (token, session, bytes, streamer) in [
        ("t-ann", "s1", 2_000_000, "127.0.0.1"),
        ("t-bea", "s2", 9_000_000, "127.0.0.2"),
    ] {
        app.decide(
            json!({"stream": "news", "ip": "192.0.2.1", "token": token, "session": session,
                          "bytes": bytes, "streamer": streamer}),
        )
        .await;
    }

    let browser = Browser::start(&chromium, &chromedriver).await;
    browser.sign_in(&app.address, "root", "root-pw").await;
    browser.find("#new-user").await;

    // The audit log: deletes only, then a window with nothing in it.
    browser.click("#nav a[data-page=audit]").await;
    browser.wait_text("package gone", true).await;
    browser
        .script(
            "const a = document.querySelector('#audit-action'); a.value = 'delete'; a.dispatchEvent(new Event('change'));",
            json!([]),
        )
        .await;
    browser
        .wait_until(
            "const rows = [...document.querySelectorAll('tbody tr')]; \
             return rows.length === 1 && rows[0].textContent.includes('delete');",
        )
        .await;
    browser
        .script(
            "const f = document.querySelector('#audit-from'); f.value = '2099-01-01T00:00'; f.dispatchEvent(new Event('change'));",
            json!([]),
        )
        .await;
    browser
        .wait_text("No change matches these filters.", true)
        .await;

    // Live sessions: by edge-b's network, then most bytes first.
    browser.click("#nav a[data-page=sessions]").await;
    browser.wait_text("bea", true).await;
    browser.wait_text("9.0 MB", true).await;
    browser
        .script(
            "const s = document.querySelector('#session-sort'); s.value = '-bytes'; s.dispatchEvent(new Event('change'));",
            json!([]),
        )
        .await;
    browser
        .wait_until(
            "const cells = [...document.querySelectorAll('[data-testid=bytes]')].map(c => c.textContent); \
             return cells.length === 2 && cells[0].startsWith('9.0 MB') && cells[1].startsWith('2.0 MB');",
        )
        .await;
    browser
        .wait_until("return [...document.querySelectorAll('#session-streamer option')].some(o => o.value === 'edge-b');")
        .await;
    browser
        .script(
            "const s = document.querySelector('#session-streamer'); s.value = 'edge-b'; s.dispatchEvent(new Event('change'));",
            json!([]),
        )
        .await;
    browser
        .wait_until("return document.querySelector('[data-testid=sessions-total]')?.textContent === '1 session';")
        .await;
    assert!(browser.text().await.contains("bea"));
    assert!(!browser.text_of("main table").await.contains("ann"));

    // By channel: each stream's viewers now, from the server, linked to them.
    app.decide(json!({"stream": "kids", "ip": "192.0.2.9", "token": "t-ann", "session": "s3"}))
        .await;
    browser.click("[data-testid=view-channels]").await;
    browser
        .wait_until("return document.querySelector('[data-testid=channels-total]')?.textContent === '3 watching 2 channels';")
        .await;
    let first = browser.text_of("tr[data-channel]").await;
    assert!(first.starts_with("news") && first.contains('2'), "{first}");
    browser.click("tr[data-channel=kids] a").await;
    browser.find("[data-testid=channel-filter]").await;
    browser
        .wait_until("return document.querySelector('[data-testid=sessions-total]')?.textContent === '1 session';")
        .await;
    assert!(browser.text_of("main table").await.contains("kids"));
}

/// Dialogs keep Tab inside and give the focus back to what opened them
/// (issue 22: "dialogs trap and restore focus").
#[tokio::test]
async fn dialogs_trap_and_restore_the_focus() {
    let Some((chromium, chromedriver)) = browser("ui_filters_focus") else {
        return;
    };
    let app = spawn_admin_app().await;
    let browser = Browser::start(&chromium, &chromedriver).await;
    browser.sign_in(&app.address, "root", "root-pw").await;
    browser.find("#new-user").await;
    browser.click("#nav a[data-page=packages]").await;
    browser.find("#new-package").await;
    browser
        .script("document.querySelector('#new-package').focus();", json!([]))
        .await;
    browser.press("\u{E007}").await; // Enter opens the form.
    browser
        .wait_until("return !!document.querySelector('dialog[open]');")
        .await;
    let inside = "const d = document.querySelector('dialog[open]'); return !!d && d.contains(document.activeElement);";
    for _ in 0..12 {
        browser.press("\u{E004}").await; // Tab
        assert_eq!(
            browser.script(inside, json!([])).await,
            json!(true),
            "Tab left the dialog"
        );
    }
    for _ in 0..12 {
        browser
            .command(
                "POST",
                "/actions",
                Some(json!({"actions": [{"type": "key", "id": "keyboard", "actions": [
                    {"type": "keyDown", "value": "\u{E008}"}, {"type": "keyDown", "value": "\u{E004}"},
                    {"type": "keyUp", "value": "\u{E004}"}, {"type": "keyUp", "value": "\u{E008}"}]}]})),
            )
            .await;
        assert_eq!(
            browser.script(inside, json!([])).await,
            json!(true),
            "Shift+Tab left the dialog"
        );
    }
    browser.press("\u{E00C}").await; // Escape closes it.
    browser
        .wait_until("return !document.querySelector('dialog[open]') && document.activeElement.id === 'new-package';")
        .await;
}
