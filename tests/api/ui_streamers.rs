//! The Streamers page (issue 21) in a real browser: a streamer registered
//! through the form (the API's 422 shown at the field it names), tested,
//! edited without retyping its password, its drop calls listed after a
//! kick; an observer reads the list without a write control.

use serde_json::json;

use crate::helpers::*;
use crate::streamers::{fake_api, session_of, srs_plays};
use crate::ui_browser::{browser, Browser};

#[tokio::test]
async fn streamers_page() {
    let Some((chromium, chromedriver)) = browser("ui_streamers") else {
        return;
    };
    let app = spawn_admin_app().await;
    app.create(user("alice").token("t1")).await;
    let srs = fake_api(&[], (200, r#"{"code":0}"#));
    let browser = Browser::start(&chromium, &chromedriver).await;
    browser.sign_in(&app.address, "root", "root-pw").await;
    browser.find("#new-user").await;
    browser.click("#nav a[data-page=streamers]").await;
    browser.wait_text("No streamers registered", true).await;

    // A control URL with credentials in it: refused at that field.
    browser.click("#new-streamer").await;
    browser.fill("#f-name", "srs-1").await;
    browser.script(
        "const k = document.querySelector('#f-kind'); k.value = 'srs'; k.dispatchEvent(new Event('change'));",
        json!([]),
    )
    .await;
    browser
        .fill("#f-control_url", "http://admin:pw@127.0.0.1:1985")
        .await;
    browser.fill("#f-addresses", "127.0.0.1").await;
    browser.fill("#f-username", "edge").await;
    browser.fill("#f-password", "s3cret").await;
    browser.click("[data-testid=save]").await;
    let error = browser
        .text_of(".error[data-for=control_url]:not(:empty)")
        .await;
    assert!(error.contains("credentials"), "{error}");
    browser.fill("#f-control_url", &srs.url).await;
    browser.click("[data-testid=save]").await;
    browser.wait_text("Streamer saved", true).await;
    browser.wait_text("edge + password", true).await;
    let stored = app.admin("GET", "/api/v1/streamers/srs-1", None, 200).await;
    assert_eq!(stored["kind"], "srs");
    assert_eq!(stored["addresses"], json!(["127.0.0.1/32"]));

    // Test: one harmless call, with the credentials.
    browser.click("[data-testid=streamer-test]").await;
    browser.wait_text("srs-1: answers", true).await;
    assert_eq!(srs.seen()[0].path, "/api/v1/versions");

    // An edit of the comment keeps the password.
    browser.click("[data-testid=streamer-edit]").await;
    browser.fill("#f-comment", "dc 2").await;
    browser.click("[data-testid=save]").await;
    browser.wait_text("dc 2", true).await;
    let stored = app.admin("GET", "/api/v1/streamers/srs-1", None, 200).await;
    assert_eq!(stored["password_set"], true);

    // A kick: its drop call is listed with its status.
    srs_plays(&app, "c-42", "livestream", "t1").await;
    let session = session_of(&app, "srs", "live/livestream").await;
    app.admin("DELETE", &format!("/api/v1/sessions/{session}"), None, 204)
        .await;
    srs.wait_for(2).await;
    browser.click("[data-testid=streamer-calls]").await;
    browser.wait_text("live/livestream (c-42)", true).await;
    browser.wait_text("dropped", true).await;
    browser.screenshot("streamer-calls").await;
    browser.click("#close-calls").await;

    // An observer sees the list, and no write control.
    let observer = Browser::start(&chromium, &chromedriver).await;
    observer
        .sign_in(&app.address, "watcher", "watcher-pw")
        .await;
    observer.find("#nav a[data-page=streamers]").await;
    observer.click("#nav a[data-page=streamers]").await;
    observer.wait_text("srs-1", true).await;
    assert!(observer.all("#new-streamer").await.is_empty());
    assert!(observer.all("[data-testid=streamer-edit]").await.is_empty());
    assert_eq!(observer.all("[data-testid=streamer-calls]").await.len(), 1);
}
