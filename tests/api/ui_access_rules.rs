//! The Access rules page (issue 20) in a real browser, with the WebDriver
//! client of `ui_browser.rs`: rules made through the form (the API's 422
//! shown at the field it names), the list in words, a move, a disable and a
//! delete (each asked first, Cancel focused), an edit that removes a
//! condition, the decisions following the list; the statistics' countries
//! section; and an observer who sees the list without a write control.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::helpers::*;
use crate::ui_browser::{browser, value_of, Browser};

const RULES: &str = "/api/v1/access-rules";

/// The `data-rule` ids of the list's rows, top to bottom.
async fn listed(browser: &Browser) -> Value {
    browser
        .script(
            "return Array.from(document.querySelectorAll('tbody tr[data-rule]')).map(r => Number(r.dataset.rule));",
            json!([]),
        )
        .await
}

/// Waits until the list shows the rules `ids`, in this order.
async fn wait_listed(browser: &Browser, ids: &[i64]) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let now = listed(browser).await;
        if now == json!(ids) {
            return;
        }
        if Instant::now() > deadline {
            browser.screenshot("failure").await;
            panic!("the list shows {now}, not {ids:?}");
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
}

/// The visible text of the row of rule `id`.
async fn row_text(browser: &Browser, id: i64) -> String {
    browser.text_of(&format!("tr[data-rule='{id}']")).await
}

/// The rule that decided `sport/final` from 192.0.2.7, once in force.
async fn deciding_rule(app: &TestApp, expect: Value, reason_now: &str) {
    app.reload().await;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let decision = app.decide(play("sport/final", "192.0.2.7")).await;
        if decision["rule"] == expect && reason(&decision) == reason_now {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "expected rule {expect} and {reason_now}: {decision}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn access_rules_page() {
    let Some((chromium, chromedriver)) = browser("ui_access_rules") else {
        return;
    };
    let app = spawn_admin_app().await;
    let browser = Browser::start(&chromium, &chromedriver).await;
    let address = app.address.clone();
    browser.sign_in(&address, "root", "root-pw").await;
    browser.find("#new-user").await;

    // The navigation has the page, empty to begin with.
    browser.click("#nav a[data-page=access-rules]").await;
    browser.wait_text("No access rules", true).await;
    assert_eq!(
        browser.text_of("main h1").await,
        "Access rules",
        "the page's title"
    );

    // A rule without a condition: the API's 422 at the conditions.
    browser.click("#new-access-rule").await;
    browser.fill("#f-comment", "sport territory").await;
    browser.click("[data-testid=save]").await;
    let error = browser
        .text_of(".error[data-for=conditions]:not(:empty)")
        .await;
    assert!(error.contains("at least one condition"), "{error}");
    // A code that is no country: at the countries, which get the focus.
    browser.fill("#f-streams", "sport/*").await;
    browser.fill("#f-countries", "RU, SU").await;
    browser.click("#f-negate-countries").await;
    browser.click("[data-testid=save]").await;
    let error = browser
        .text_of(".error[data-for=countries]:not(:empty)")
        .await;
    assert!(error.contains("SU"), "{error}");
    assert_eq!(
        browser
            .script("return document.activeElement.id;", json!([]))
            .await,
        "f-countries"
    );
    assert!(browser
        .all(".error[data-for=conditions]:not(:empty)")
        .await
        .is_empty());
    // An AS number the form cannot read: refused there, nothing sent.
    browser.fill("#f-asns", "AS64500, cloud").await;
    browser.click("[data-testid=save]").await;
    let error = browser.text_of(".error[data-for=asns]:not(:empty)").await;
    assert!(error.contains("'cloud' is not an AS number"), "{error}");
    assert_eq!(app.admin("GET", RULES, None, 200).await["total"], 0);
    // Sport from Russia and Kazakhstan only: created as rule 1.
    browser.fill("#f-asns", "").await;
    browser.fill("#f-countries", "RU,\nkz").await;
    browser.screenshot("access-rule-form").await;
    browser.click("[data-testid=save]").await;
    browser.wait_text("Rule 1 created", true).await;
    let list = app.admin("GET", RULES, None, 200).await;
    let sport = list["items"][0].clone();
    assert_eq!(
        (
            &sport["action"],
            &sport["streams"],
            &sport["countries"],
            &sport["negate"],
            &sport["asns"],
            &sport["comment"],
            &sport["enabled"]
        ),
        (
            &json!("deny"),
            &json!(["sport/*"]),
            &json!(["RU", "KZ"]),
            &json!(["countries"]),
            &json!([]),
            &json!("sport territory"),
            &json!(true)
        ),
        "{sport}"
    );
    let sport_id = sport["id"].as_i64().unwrap();

    // The office network, allowed: created last (rule 2).
    browser.click("#new-access-rule").await;
    browser.click("#f-action option[value=allow]").await;
    browser.fill("#f-networks", "192.0.2.0/24").await;
    browser.fill("#f-comment", "office").await;
    browser.click("[data-testid=save]").await;
    browser.wait_text("Rule 2 created", true).await;
    let office = app.admin("GET", RULES, None, 200).await["items"][1].clone();
    assert_eq!(office["comment"], "office", "{office}");
    assert_eq!(office["networks"], json!(["192.0.2.0/24"]), "{office}");
    // Empty inputs are left out of a new rule, negate too.
    assert_eq!(
        (&office["countries"], &office["negate"]),
        (&json!([]), &json!([]))
    );
    let office_id = office["id"].as_i64().unwrap();

    // The list: in order, each rule's conditions in words.
    wait_listed(&browser, &[sport_id, office_id]).await;
    let first = row_text(&browser, sport_id).await;
    assert!(first.starts_with("1"), "{first}");
    for part in [
        "deny",
        "stream in sport/*",
        "and country not in RU, KZ",
        "enabled",
        "sport territory",
    ] {
        assert!(first.contains(part), "{part}: {first}");
    }
    let second = row_text(&browser, office_id).await;
    for part in ["allow", "network in 192.0.2.0/24", "office"] {
        assert!(second.contains(part), "{part}: {second}");
    }
    assert!(
        browser
            .all(&format!(
                "tr[data-rule='{sport_id}'] [data-testid=rule-up]:disabled"
            ))
            .await
            .len()
            == 1
    );
    browser.screenshot("access-rules").await;
    // Without GeoIP the office's address is country XX: sport is denied by rule 1.
    deciding_rule(&app, json!(sport_id), "rule_denied").await;

    // Up: the office goes first, and its allow shields the later deny.
    browser
        .click(&format!(
            "tr[data-rule='{office_id}'] [data-testid=rule-up]"
        ))
        .await;
    wait_listed(&browser, &[office_id, sport_id]).await;
    assert_eq!(
        app.admin("GET", &format!("{RULES}/{office_id}"), None, 200)
            .await["position"],
        1
    );
    // Its Up is disabled now: the keyboard focus is on its Down.
    browser
        .wait_until(&format!(
            "return document.activeElement.dataset.key === 'down {office_id}';"
        ))
        .await;
    deciding_rule(&app, json!(office_id), "no_credentials").await;

    // Disable the office: asked first, Cancel focused; Enter cancels.
    browser
        .click(&format!(
            "tr[data-rule='{office_id}'] [data-testid=rule-toggle]"
        ))
        .await;
    let question = browser.text_of("[data-testid=confirm]").await;
    assert!(
        question.contains("Disable rule 1 (allow): network in 192.0.2.0/24?"),
        "{question}"
    );
    assert_eq!(browser.focused().await["testid"], "confirm-no");
    browser.press(crate::ui_browser::ENTER).await;
    browser
        .wait_until("return !document.querySelector('dialog[open]');")
        .await;
    assert_eq!(
        app.admin("GET", &format!("{RULES}/{office_id}"), None, 200)
            .await["enabled"],
        true
    );
    browser
        .click(&format!(
            "tr[data-rule='{office_id}'] [data-testid=rule-toggle]"
        ))
        .await;
    browser.click("[data-testid=confirm-yes]").await;
    browser.wait_text("Rule 1 disabled", true).await;
    assert_eq!(
        app.admin("GET", &format!("{RULES}/{office_id}"), None, 200)
            .await["enabled"],
        false
    );
    browser
        .find(&format!("tr[data-rule='{office_id}'].rule-off"))
        .await;
    let row = row_text(&browser, office_id).await;
    assert!(row.contains("disabled") && row.contains("Enable"), "{row}");
    // A disabled rule is skipped: the deny decides again.
    deciding_rule(&app, json!(sport_id), "rule_denied").await;

    // Delete the sport rule: asked first; then gone from the list and the API.
    browser
        .click(&format!(
            "tr[data-rule='{sport_id}'] [data-testid=rule-delete]"
        ))
        .await;
    let question = browser.text_of("[data-testid=confirm]").await;
    assert!(
        question.contains("Delete rule 2 (deny): stream in sport/* and country not in RU, KZ?"),
        "{question}"
    );
    assert_eq!(browser.focused().await["testid"], "confirm-no");
    browser.click("[data-testid=confirm-yes]").await;
    browser.wait_text("Rule 2 deleted", true).await;
    wait_listed(&browser, &[office_id]).await;
    assert_eq!(
        app.api("GET", &format!("{RULES}/{sport_id}"), ADMIN, None)
            .await
            .status,
        404
    );
    assert!(!browser.text().await.contains("sport territory"));

    // Edit the office: the form shows it; emptied networks are removed and
    // "no user agent sent" is the value "".
    browser
        .click(&format!(
            "tr[data-rule='{office_id}'] [data-testid=rule-edit]"
        ))
        .await;
    assert_eq!(value_of(&browser, "#f-networks").await, "192.0.2.0/24");
    assert_eq!(value_of(&browser, "#f-position").await, "1");
    browser.fill("#f-networks", "").await;
    browser.click("#f-none-user_agents").await;
    browser.click("[data-testid=save]").await;
    browser.wait_text("Rule 1 saved", true).await;
    let edited = app
        .admin("GET", &format!("{RULES}/{office_id}"), None, 200)
        .await;
    assert_eq!(
        (
            &edited["networks"],
            &edited["user_agents"],
            &edited["enabled"]
        ),
        (&json!([]), &json!([""]), &json!(false)),
        "{edited}"
    );
    browser.wait_text("no user agent sent", true).await;

    // The audit log knows access rules.
    browser.goto(&format!("{address}/ui/#/audit")).await;
    browser.click("option[value=access_rule]").await;
    browser
        .wait_text(&format!("access rule {sport_id}"), true)
        .await;

    // Statistics: viewers by country, the country named in the browser's
    // language. The session is written as a GeoIP-configured replica
    // records it (tests/api/geoip.rs drives that through the hooks).
    app.db()
        .await
        .batch_execute(
            "INSERT INTO sessions (key, login, stream, client_ip, started_at, expires_at, country, asn)
             VALUES ('geo-1', NULL, 'news', '192.0.2.7', now() - interval '10 minutes',
                     now() + interval '1 minute', 'PL', 64500)",
        )
        .await
        .unwrap();
    browser.goto(&format!("{address}/ui/#/stats")).await;
    browser.wait_text("Top streams", true).await;
    browser.find("#stats-countries tr[data-country=PL]").await;
    browser.wait_text("Viewers by country", true).await;
    browser.wait_text("Poland", true).await;
    browser.goto(&format!("{address}/ui/#/sessions")).await;
    browser.wait_text("PL · AS64500", true).await;

    // The observer: the list, no write control.
    browser.click("#logout").await;
    browser.find("#login").await;
    browser.sign_in(&address, "watcher", "watcher-pw").await;
    browser.find("#nav a[data-page=access-rules]").await;
    browser.goto(&format!("{address}/ui/#/access-rules")).await;
    wait_listed(&browser, &[office_id]).await;
    browser.wait_text("no user agent sent", true).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    for control in [
        "#new-access-rule",
        "[data-testid=rule-up]",
        "[data-testid=rule-down]",
        "[data-testid=rule-edit]",
        "[data-testid=rule-toggle]",
        "[data-testid=rule-delete]",
        "main button.danger",
    ] {
        assert!(
            browser.all(control).await.is_empty(),
            "observer sees {control}"
        );
    }
    browser.screenshot("observer-access-rules").await;
}
