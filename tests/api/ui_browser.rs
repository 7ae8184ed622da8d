//! The web interface in a real browser: Debian's headless Chromium driven by
//! chromedriver over the W3C WebDriver protocol (a small client over reqwest
//! below), against a real playgate and PostgreSQL. Without chromium and
//! chromium-driver the tests print that they were skipped; with `CI=true`
//! they fail instead. Screenshots go to `target/ui-screenshots/`.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{json, Value};

use crate::helpers::*;

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|dir| PathBuf::from(dir).join(name))
        .find(|p| p.is_file())
}

/// (chromium, chromedriver), or None after saying the test is skipped.
pub(crate) fn browser(test: &str) -> Option<(PathBuf, PathBuf)> {
    let chromium = which("chromium").or_else(|| which("chromium-browser"));
    let driver = which("chromedriver");
    let missing = match (&chromium, &driver) {
        (Some(c), Some(d)) => return Some((c.clone(), d.clone())),
        (None, _) => "chromium",
        (_, None) => "chromium-driver",
    };
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{test}: {missing} is not installed (run scripts/install-test-deps)");
    }
    eprintln!("skipped {test}: {missing} is not installed (scripts/install-test-deps)");
    None
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn screenshot_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/ui-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// One browser: chromedriver and the WebDriver session it runs.
pub(crate) struct Browser {
    driver: Child,
    http: reqwest::Client,
    base: String,
    session: String,
    profile: PathBuf,
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Ending the session closes Chromium; then the driver goes.
        let url = format!("{}/session/{}", self.base, self.session);
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let _ = reqwest::Client::new()
                    .delete(url)
                    .timeout(Duration::from_secs(10))
                    .send()
                    .await;
            });
        })
        .join();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

impl Browser {
    pub(crate) async fn start(
        chromium: &std::path::Path,
        chromedriver: &std::path::Path,
    ) -> Browser {
        let port = free_port();
        let driver = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let profile =
            std::env::temp_dir().join(format!("playgate-ui-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&profile).unwrap();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        let base = format!("http://127.0.0.1:{port}");
        let mut browser = Browser {
            driver,
            http,
            base,
            session: String::new(),
            profile,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(answer) = browser
                .http
                .get(format!("{}/status", browser.base))
                .send()
                .await
            {
                if answer.status().is_success() {
                    break;
                }
            }
            assert!(Instant::now() < deadline, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium.to_str().unwrap(),
                "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                         "--no-first-run", "--disable-background-networking",
                         "--disable-component-update", "--disable-sync",
                         "--disable-dev-shm-usage", "--window-size=1280,900",
                         format!("--user-data-dir={}", browser.profile.display())]
            }
        }}});
        let answer: Value = browser
            .http
            .post(format!("{}/session", browser.base))
            .json(&capabilities)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        browser.session = answer["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no WebDriver session: {answer}"))
            .to_string();
        browser
    }

    /// One WebDriver command: its `value`, or the error `value`.
    async fn try_command(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, Value> {
        let url = format!("{}/session/{}{}", self.base, self.session, path);
        let request = match method {
            "GET" => self.http.get(url),
            "DELETE" => self.http.delete(url),
            _ => self.http.post(url).json(&body.unwrap_or(json!({}))),
        };
        let answer: Value = request.send().await.unwrap().json().await.unwrap();
        if answer["value"].get("error").is_some() {
            return Err(answer["value"].clone());
        }
        Ok(answer["value"].clone())
    }

    /// One WebDriver command; its `value`, or a panic naming the command.
    pub(crate) async fn command(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        match self.try_command(method, path, body).await {
            Ok(value) => value,
            Err(error) => panic!("WebDriver {method} {path}: {}", error["message"]),
        }
    }

    /// An element command, retried while the page re-renders under it.
    async fn on_element(&self, css: &str, action: &str, body: Option<Value>) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let id = self.find(css).await;
            match self
                .try_command("POST", &format!("/element/{id}/{action}"), body.clone())
                .await
            {
                Ok(_) => return,
                Err(error) if Instant::now() < deadline => {
                    let kind = error["error"].as_str().unwrap_or("");
                    assert!(
                        kind == "stale element reference" || kind == "element click intercepted",
                        "{action} {css}: {}",
                        error["message"]
                    );
                    tokio::time::sleep(Duration::from_millis(150)).await;
                }
                Err(error) => panic!("{action} {css}: {}", error["message"]),
            }
        }
    }

    pub(crate) async fn goto(&self, url: &str) {
        self.command("POST", "/url", Some(json!({"url": url})))
            .await;
    }

    pub(crate) async fn script(&self, script: &str, args: Value) -> Value {
        self.command(
            "POST",
            "/execute/sync",
            Some(json!({"script": script, "args": args})),
        )
        .await
    }

    /// The visible elements matching `css` now.
    pub(crate) async fn all(&self, css: &str) -> Vec<String> {
        let found = self
            .command(
                "POST",
                "/elements",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await;
        let mut visible = Vec::new();
        for element in found.as_array().unwrap() {
            let id = element[ELEMENT].as_str().unwrap().to_string();
            // An element replaced meanwhile (stale) counts as not there.
            if self
                .try_command("GET", &format!("/element/{id}/displayed"), None)
                .await
                .ok()
                .and_then(|v| v.as_bool())
                .unwrap_or(false)
            {
                visible.push(id);
            }
        }
        visible
    }

    /// Waits for a visible element matching `css`.
    pub(crate) async fn find(&self, css: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(id) = self.all(css).await.into_iter().next() {
                return id;
            }
            if Instant::now() > deadline {
                self.screenshot("failure").await;
                panic!("no visible {css}; page: {}", self.text().await);
            }
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    }

    pub(crate) async fn text(&self) -> String {
        self.script("return document.body.innerText;", json!([]))
            .await
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    /// Waits until the page shows `text` (or, with `present` false, no longer shows it).
    pub(crate) async fn wait_text(&self, text: &str, present: bool) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let page = self.text().await;
            if page.contains(text) == present {
                return;
            }
            if Instant::now() > deadline {
                self.screenshot("failure").await;
                panic!("waited for {text:?} present={present}; page: {page}");
            }
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    }

    pub(crate) async fn click(&self, css: &str) {
        self.on_element(css, "click", None).await;
    }

    pub(crate) async fn fill(&self, css: &str, text: &str) {
        self.on_element(css, "clear", None).await;
        self.on_element(css, "value", Some(json!({"text": text})))
            .await;
    }

    pub(crate) async fn screenshot(&self, name: &str) -> PathBuf {
        let data = self.command("GET", "/screenshot", None).await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(data.as_str().unwrap())
            .unwrap();
        let path = screenshot_dir().join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap();
        path
    }

    /// Presses and releases a key (WebDriver's code, e.g. `\u{E007}` Enter)
    /// on whatever has the keyboard focus, as a person would.
    pub(crate) async fn press(&self, key: &str) {
        self.command(
            "POST",
            "/actions",
            Some(
                json!({"actions": [{"type": "key", "id": "keyboard", "actions": [
                {"type": "keyDown", "value": key}, {"type": "keyUp", "value": key}]}]}),
            ),
        )
        .await;
    }

    /// What has the keyboard focus: its tag, `data-testid` and `data-key`.
    pub(crate) async fn focused(&self) -> Value {
        self.script(
            "const e = document.activeElement; return e && {tag: e.tagName.toLowerCase(), \
             testid: e.dataset ? e.dataset.testid || null : null, key: e.dataset ? e.dataset.key || null : null, \
             text: e.textContent.trim().slice(0, 40)};",
            json!([]),
        )
        .await
    }

    /// Waits until `script` (a function body) returns true.
    pub(crate) async fn wait_until(&self, script: &str) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while self.script(script, json!([])).await != json!(true) {
            if Instant::now() > deadline {
                self.screenshot("failure").await;
                panic!("waited for {script}; page: {}", self.text().await);
            }
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    }

    /// The visible text of the first element matching `css`.
    pub(crate) async fn text_of(&self, css: &str) -> String {
        let id = self.find(css).await;
        self.command("GET", &format!("/element/{id}/text"), None)
            .await
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    /// Whether a modal dialog is open.
    async fn dialog_open(&self) -> bool {
        self.script(
            "return !!document.querySelector('dialog[open]');",
            json!([]),
        )
        .await
        .as_bool()
        .unwrap()
    }

    pub(crate) async fn sign_in(&self, address: &str, login: &str, password: &str) {
        self.goto(&format!("{address}/ui/")).await;
        self.fill("#login", login).await;
        self.fill("#password", password).await;
        self.click("#login-submit").await;
    }
}

#[tokio::test]
async fn admin_manages_users_and_sessions_observer_only_reads() {
    let Some((chromium, chromedriver)) = browser("ui_browser") else {
        return;
    };
    let app = spawn_admin_app().await;
    let browser = Browser::start(&chromium, &chromedriver).await;
    let address = app.address.clone();

    // A wrong password shows an error and no interface.
    browser.sign_in(&address, "root", "wrong").await;
    browser.wait_text("Wrong login or password", true).await;
    assert!(browser.all("#new-user").await.is_empty());

    // The admin signs in and creates a package.
    browser.sign_in(&address, "root", "root-pw").await;
    browser.find("#new-user").await;
    browser.goto(&format!("{address}/ui/#/packages")).await;
    browser.click("#new-package").await;
    browser.fill("#f-name", "basic").await;
    browser.fill("#f-streams", "news\nsport/*").await;
    browser.click("[data-testid=save]").await;
    browser.wait_text("sport/*", true).await;
    browser.screenshot("packages").await;

    // A user: an invalid login shows the API's 422 next to the field…
    browser.goto(&format!("{address}/ui/#/users")).await;
    browser.click("#new-user").await;
    browser.fill("#f-login", "bad login!").await;
    browser.click("#f-packages input[value=basic]").await;
    browser.click("[data-testid=save]").await;
    browser.find(".error[data-for=login]:not(:empty)").await;
    // …a valid one with the package and a generated token is created.
    browser.fill("#f-login", "alice").await;
    browser.click("#f-generate").await;
    browser.click("[data-testid=save]").await;
    let token_element = browser.find("#new-token").await;
    let token = browser
        .command("GET", &format!("/element/{token_element}/text"), None)
        .await
        .as_str()
        .unwrap()
        .to_string();
    assert!(token.len() >= 32, "{token}");
    browser.wait_text("token=", true).await;
    browser.click("[data-testid=secret] .primary").await;
    browser.wait_text("alice", true).await;
    browser.wait_text("basic", true).await;
    let shot = browser.screenshot("users").await;
    eprintln!("screenshot: {}", shot.display());

    // Edit (the first row is alice: users are listed by login), then disable and enable.
    browser.click("[data-testid=edit]").await;
    browser.fill("#f-max_sessions", "7").await;
    browser.fill("#f-comment", "edited in the browser").await;
    browser.click("[data-testid=save]").await;
    browser.wait_text("alice saved", true).await;
    let alice = app.admin("GET", "/api/v1/users/alice", None, 200).await;
    assert_eq!(alice["max_sessions"], 7, "{alice}");
    assert_eq!(alice["comment"], "edited in the browser");
    assert_eq!(alice["packages"], json!(["basic"]));
    browser.click("[data-testid=toggle]").await;
    browser.click("[data-testid=confirm-yes]").await;
    browser.wait_text("alice disabled", true).await;
    assert_eq!(
        app.admin("GET", "/api/v1/users/alice", None, 200).await["enabled"],
        false
    );
    browser.wait_text("Enable", true).await;
    browser.click("[data-testid=toggle]").await;
    browser.wait_text("alice enabled", true).await;
    assert_eq!(
        app.admin("GET", "/api/v1/users/alice", None, 200).await["enabled"],
        true
    );

    // A decision with that token opens a session; the admin kicks it.
    let decision = app
        .decide(with(play("news", "198.51.100.7"), json!({"token": token})))
        .await;
    assert_eq!(decision["allow"], true, "{decision}");
    let session = decision["session_id"].as_str().unwrap().to_string();
    browser.goto(&format!("{address}/ui/#/sessions")).await;
    browser.wait_text("198.51.100.7", true).await;
    browser.wait_text("1 session", true).await;
    browser.screenshot("sessions").await;
    // The search finds by a piece of the stream in any case; a search
    // that finds nothing says so, not that nobody watches.
    browser.fill("#session-q", "sport").await;
    browser.wait_text("No session matches “sport”.", true).await;
    assert!(!browser.text().await.contains("Nobody is watching"));
    browser.fill("#session-q", "NEW").await;
    browser.wait_text("198.51.100.7", true).await;
    // Cleared again (the empty list below says "Nobody", not "No session matches").
    browser.fill("#session-q", "").await;
    browser.click("[data-testid=kick]").await;
    browser.click("[data-testid=confirm-yes]").await;
    browser.wait_text("Nobody is watching", true).await;
    assert_eq!(
        app.session_state(&session).await,
        (true, Some("kicked".to_string()))
    );

    // The audit log shows the kick; statistics draw a chart.
    browser.goto(&format!("{address}/ui/#/audit")).await;
    browser.wait_text("kick", true).await;
    // In words: who was kicked off what, not the session's UUID.
    browser.wait_text("alice on news", true).await;
    browser.screenshot("audit").await;
    browser.goto(&format!("{address}/ui/#/stats")).await;
    browser.find("#chart svg").await;
    browser.screenshot("stats").await;

    // Tokens: another one is created (shown once), then one is revoked.
    browser.goto(&format!("{address}/ui/#/users")).await;
    browser.wait_text("Tokens (1)", true).await;
    browser.click("[data-testid=tokens]").await;
    browser.fill("#token-label", "set-top box").await;
    browser.click("#create-token").await;
    browser.find("#new-token").await;
    browser
        .wait_text("only time the token is shown", true)
        .await;
    browser.click("[data-testid=secret] .primary").await;
    let tokens = app
        .admin("GET", "/api/v1/users/alice/tokens", None, 200)
        .await;
    assert_eq!(tokens["total"], 2, "{tokens}");
    browser.wait_text("Tokens (2)", true).await;
    browser.click("[data-testid=tokens]").await;
    browser.wait_text("set-top box", true).await;
    // The list is oldest first: the second token is the new one.
    browser
        .click("tbody tr:nth-child(2) [data-testid=revoke]")
        .await;
    browser.click("[data-testid=confirm-yes]").await;
    browser.wait_text("Token revoked", true).await;
    let tokens = app
        .admin("GET", "/api/v1/users/alice/tokens", None, 200)
        .await;
    assert_eq!(tokens["total"], 1, "{tokens}");
    browser.click("#close-tokens").await;

    // Phone width: the same page, narrower columns hidden.
    browser
        .command(
            "POST",
            "/window/rect",
            Some(json!({"width": 390, "height": 844})),
        )
        .await;
    browser.goto(&format!("{address}/ui/#/users")).await;
    browser.wait_text("alice", true).await;
    browser.screenshot("users-phone").await;
    browser
        .command(
            "POST",
            "/window/rect",
            Some(json!({"width": 1280, "height": 900})),
        )
        .await;

    // Sign out; the observer sees everything but no write control.
    browser.click("#logout").await;
    browser.find("#login").await;
    let decision = app
        .decide(with(play("news", "198.51.100.8"), json!({"token": token})))
        .await;
    assert_eq!(
        decision["allow"], true,
        "the first token still works: {decision}"
    );
    browser.sign_in(&address, "watcher", "watcher-pw").await;
    browser.wait_text("alice", true).await;
    for page in ["users", "sessions", "packages", "ip-rules"] {
        browser.goto(&format!("{address}/ui/#/{page}")).await;
        browser
            .wait_text(
                if page == "sessions" {
                    "198.51.100.8"
                } else {
                    "Sign out"
                },
                true,
            )
            .await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        for control in [
            "#new-user",
            "#new-package",
            "#new-rule",
            "[data-testid=edit]",
            "[data-testid=kick]",
            "button.danger",
        ] {
            assert!(
                browser.all(control).await.is_empty(),
                "observer sees {control} on {page}"
            );
        }
    }
    browser.screenshot("observer").await;
}

pub(crate) const ENTER: &str = "\u{E007}";
const ESCAPE: &str = "\u{E00C}";

/// Issue 22: Disable and Delete are confirmed, the confirmation has Cancel
/// focused (Enter does nothing harmful), the API's refusal to disable the
/// last admin is shown, and the sessions list's refresh keeps the focus.
#[tokio::test]
async fn confirmations_focus_cancel_disable_asks_refresh_keeps_focus() {
    let Some((chromium, chromedriver)) = browser("ui_browser") else {
        return;
    };
    let app = spawn_admin_app().await;
    app.admin(
        "POST",
        "/api/v1/users",
        Some(json!({"login": "alice", "token": "alice-token"})),
        201,
    )
    .await;
    let enabled = |login: &'static str| {
        let app = &app;
        async move {
            app.admin("GET", &format!("/api/v1/users/{login}"), None, 200)
                .await["enabled"]
                .as_bool()
                .unwrap()
        }
    };
    let browser = Browser::start(&chromium, &chromedriver).await;
    let address = app.address.clone();
    browser.sign_in(&address, "root", "root-pw").await;
    browser.wait_text("alice", true).await;

    // Delete (the first row is alice): Cancel has the focus, Enter cancels.
    browser.click("tbody tr:first-child button.danger").await;
    browser.find("[data-testid=confirm]").await;
    let focused = browser.focused().await;
    assert_eq!(focused["testid"], "confirm-no", "{focused}");
    browser.screenshot("confirm-delete").await;
    browser.press(ENTER).await;
    browser
        .wait_until("return !document.querySelector('dialog[open]');")
        .await;
    app.admin("GET", "/api/v1/users/alice", None, 200).await;

    // Disable asks first, the same way.
    browser.click("[data-testid=toggle]").await;
    assert!(
        browser
            .text_of("[data-testid=confirm]")
            .await
            .contains("Disable alice?"),
        "{}",
        browser.text().await
    );
    assert_eq!(browser.focused().await["testid"], "confirm-no");
    browser.press(ENTER).await;
    browser
        .wait_until("return !document.querySelector('dialog[open]');")
        .await;
    assert!(enabled("alice").await, "Enter in the dialog disabled alice");
    browser.click("[data-testid=toggle]").await;
    browser.click("[data-testid=confirm-yes]").await;
    browser.wait_text("alice disabled", true).await;
    assert!(!enabled("alice").await);
    // Enable is harmless: no question.
    browser.wait_text("Enable", true).await;
    browser.click("[data-testid=toggle]").await;
    browser.wait_text("alice enabled", true).await;
    assert!(!browser.dialog_open().await);
    assert!(enabled("alice").await);

    // Disabling oneself, the only admin: asked, then refused by the API,
    // whose reason the page shows.
    browser
        .click("tbody tr:nth-child(2) [data-testid=toggle]")
        .await;
    assert!(
        browser
            .text_of("[data-testid=confirm]")
            .await
            .contains("your own account root"),
        "{}",
        browser.text().await
    );
    browser.click("[data-testid=confirm-yes]").await;
    let refusal = browser.text_of("[data-testid=refusal]").await;
    assert!(refusal.contains("last enabled admin"), "{refusal}");
    browser.screenshot("last-admin-refused").await;
    assert!(enabled("root").await);

    // A session; its Kick button has the focus across auto-refreshes.
    let decision = app
        .decide(with(
            play("news", "198.51.100.9"),
            json!({"token": "alice-token"}),
        ))
        .await;
    let session = decision["session_id"].as_str().unwrap().to_string();
    browser.goto(&format!("{address}/ui/#/sessions")).await;
    browser.wait_text("198.51.100.9", true).await;
    browser.find("[data-testid=kick]").await;
    let before = browser.text_of("#sessions-updated").await;
    browser
        .script(
            "document.querySelector('[data-testid=kick]').focus();",
            json!([]),
        )
        .await;
    assert_eq!(browser.focused().await["testid"], "kick");
    browser
        .wait_until(&format!(
            "return document.getElementById('sessions-updated').textContent !== {};",
            json!(before)
        ))
        .await;
    let focused = browser.focused().await;
    assert_eq!(focused["testid"], "kick", "after the refresh: {focused}");
    assert_eq!(focused["key"], format!("kick {session}"));
    browser.screenshot("sessions-focus-kept").await;
    // Enter on it opens the confirmation, where Enter cancels: not kicked.
    browser.press(ENTER).await;
    browser.find("[data-testid=confirm]").await;
    assert_eq!(browser.focused().await["testid"], "confirm-no");
    browser.press(ENTER).await;
    browser
        .wait_until("return !document.querySelector('dialog[open]');")
        .await;
    assert_eq!(app.session_state(&session).await, (false, None));
}

/// Issue 22: the user editor's packages are checkboxes with an explicit
/// "every stream", never reached by unchecking everything; a package delete
/// the API refuses shows its reason and links the users named.
#[tokio::test]
async fn package_picker_needs_a_choice_and_a_refused_delete_names_the_users() {
    let Some((chromium, chromedriver)) = browser("ui_browser") else {
        return;
    };
    let app = spawn_admin_app().await;
    for (name, streams) in [("basic", json!(["news"])), ("extra", json!(["sport/*"]))] {
        app.admin(
            "POST",
            "/api/v1/packages",
            Some(json!({"name": name, "streams": streams})),
            201,
        )
        .await;
    }
    app.admin(
        "POST",
        "/api/v1/users",
        Some(json!({"login": "alice", "packages": ["basic"]})),
        201,
    )
    .await;
    let packages = |login: &'static str| {
        let app = &app;
        async move {
            app.admin("GET", &format!("/api/v1/users/{login}"), None, 200)
                .await["packages"]
                .clone()
        }
    };
    let browser = Browser::start(&chromium, &chromedriver).await;
    let address = app.address.clone();
    browser.sign_in(&address, "root", "root-pw").await;
    browser.find("#new-user").await;

    // Deleting basic, alice's only package: the confirmation promises no
    // loss, the refusal shows the API's reason and links alice.
    browser.goto(&format!("{address}/ui/#/packages")).await;
    browser.wait_text("sport/*", true).await;
    browser.click("tbody tr:first-child button.danger").await;
    let question = browser.text_of("[data-testid=confirm]").await;
    assert!(
        question.contains("Delete package basic?") && !question.contains("lose"),
        "{question}"
    );
    browser.click("[data-testid=confirm-yes]").await;
    let refusal = browser.text_of("[data-testid=refusal]").await;
    let reason = app
        .api("DELETE", "/api/v1/packages/basic", ADMIN, None)
        .await
        .body["error"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(refusal.contains(&reason), "{refusal}");
    app.admin("GET", "/api/v1/packages/basic", None, 200).await;
    browser.screenshot("package-delete-refused").await;

    // The link opens alice's editor: checkboxes, basic checked.
    browser.click("[data-testid=edit-user]").await;
    browser.find("dialog[open] #f-packages").await;
    let login = browser
        .script(
            "return document.getElementById('f-login').value;",
            json!([]),
        )
        .await;
    assert_eq!(login, "alice");
    assert!(browser
        .all("dialog[open] select[multiple]")
        .await
        .is_empty());
    assert_eq!(
        browser
            .script(
                "return Array.from(document.querySelectorAll('#f-packages input[name=packages]'))\
                 .map(b => [b.value, b.checked]);",
                json!([])
            )
            .await,
        json!([["basic", true], ["extra", false]])
    );
    // Unchecking the last package without choosing every stream: refused, unsaved.
    browser.click("#f-packages input[value=basic]").await;
    browser.click("[data-testid=save]").await;
    let error = browser
        .text_of(".error[data-for=packages]:not(:empty)")
        .await;
    assert!(error.contains("Every stream"), "{error}");
    assert!(browser.dialog_open().await);
    browser.screenshot("package-picker-refused").await;
    assert_eq!(packages("alice").await, json!(["basic"]));
    // Every stream, chosen explicitly, is saved as no package.
    browser.click("#f-every-stream").await;
    browser.click("[data-testid=save]").await;
    browser.wait_text("alice saved", true).await;
    assert_eq!(packages("alice").await, json!([]));
    // Choosing a package again clears "every stream".
    browser.wait_text("all streams", true).await;
    browser.click("[data-testid=edit]").await;
    browser.find("dialog[open] #f-packages").await;
    assert_eq!(
        browser
            .script(
                "return document.getElementById('f-every-stream').checked;",
                json!([])
            )
            .await,
        true
    );
    browser.click("#f-packages input[value=extra]").await;
    assert_eq!(
        browser
            .script(
                "return document.getElementById('f-every-stream').checked;",
                json!([])
            )
            .await,
        false
    );
    browser.click("[data-testid=save]").await;
    // (The toast of the first save may still be up: the closed form says it is saved.)
    browser
        .wait_until("return !document.querySelector('dialog[open]');")
        .await;
    assert_eq!(packages("alice").await, json!(["extra"]));

    // A new user starts with no choice made.
    browser.click("#new-user").await;
    browser.fill("#f-login", "bob").await;
    browser.click("[data-testid=save]").await;
    browser.find(".error[data-for=packages]:not(:empty)").await;
    assert_eq!(
        app.api("GET", "/api/v1/users/bob", ADMIN, None)
            .await
            .status,
        404
    );
    browser.click("#f-packages input[value=basic]").await;
    browser.click("[data-testid=save]").await;
    browser.wait_text("bob created", true).await;
    assert_eq!(packages("bob").await, json!(["basic"]));
    browser.screenshot("package-picker").await;

    // Once nobody depends on it alone, basic goes.
    app.admin(
        "PATCH",
        "/api/v1/users/bob",
        Some(json!({"packages": ["basic", "extra"]})),
        200,
    )
    .await;
    browser.goto(&format!("{address}/ui/#/packages")).await;
    browser.wait_text("sport/*", true).await;
    browser.click("tbody tr:first-child button.danger").await;
    browser.click("[data-testid=confirm-yes]").await;
    browser.wait_text("basic deleted", true).await;
    assert_eq!(packages("bob").await, json!(["extra"]));
}

/// Issue 18 in the interface: the user form saves `max_devices` and the
/// package form `max_viewers` (empty = none, a refused value shown next to
/// its field); the sessions pages show each session's device, the user's
/// editor (an observer's Devices dialog) their devices now, and the history
/// every end reason with what it means.
///
/// The device `stb-1` reaching the session (the assertions marked DEVICE)
/// needs the engine to record the `device` of `/hook/decide` and the
/// sessions API to answer it: without that the Device cells show "—".
#[tokio::test]
async fn limits_devices_and_end_reasons_in_the_browser() {
    let Some((chromium, chromedriver)) = browser("ui_browser") else {
        return;
    };
    let app = spawn_admin_app().await;
    app.admin(
        "POST",
        "/api/v1/users",
        Some(json!({"login": "alice", "token": "alice-token", "max_sessions": 4})),
        201,
    )
    .await;
    let user = |login: &'static str| {
        let app = &app;
        async move {
            app.admin("GET", &format!("/api/v1/users/{login}"), None, 200)
                .await
        }
    };
    let browser = Browser::start(&chromium, &chromedriver).await;
    let address = app.address.clone();
    browser.sign_in(&address, "root", "root-pw").await;
    browser.wait_text("alice", true).await;

    // Devices at once: a negative number is the API's 422 at the field…
    browser.click("[data-testid=edit]").await;
    let label = browser.text_of("label[for=f-max_devices]").await;
    assert_eq!(label, "Devices at once (empty: unlimited)");
    browser.fill("#f-max_devices", "-1").await;
    browser.click("[data-testid=save]").await;
    let error = browser
        .text_of(".error[data-for=max_devices]:not(:empty)")
        .await;
    assert!(error.contains("max_devices"), "{error}");
    assert_eq!(user("alice").await["max_devices"], Value::Null);
    // …a valid one is saved (max_sessions untouched), shown in the list…
    browser.fill("#f-max_devices", "2").await;
    browser.click("[data-testid=save]").await;
    browser.wait_text("alice saved", true).await;
    let alice = user("alice").await;
    assert_eq!(
        (alice["max_devices"].clone(), alice["max_sessions"].clone()),
        (json!(2), json!(4)),
        "{alice}"
    );
    browser
        .wait_until(
            "const head = Array.from(document.querySelectorAll('thead th')).map(th => th.textContent); \
             const i = head.indexOf('Devices'); const row = document.querySelector('tbody tr'); \
             return i >= 0 && !!row && row.children[i].textContent === '2';",
        )
        .await;
    // …and emptied, cleared (unlimited).
    browser.click("[data-testid=edit]").await;
    browser.find("dialog[open] #f-max_devices").await;
    assert_eq!(
        browser
            .script(
                "return document.getElementById('f-max_devices').value;",
                json!([])
            )
            .await,
        "2"
    );
    browser.on_element("#f-max_devices", "clear", None).await;
    browser.click("[data-testid=save]").await;
    browser
        .wait_until("return !document.querySelector('dialog[open]');")
        .await;
    assert_eq!(user("alice").await["max_devices"], Value::Null);
    assert_eq!(user("alice").await["max_sessions"], 4);

    // Viewers at most, on a new package, then cleared.
    browser.goto(&format!("{address}/ui/#/packages")).await;
    browser.click("#new-package").await;
    let label = browser.text_of("label[for=f-max_viewers]").await;
    assert_eq!(label, "Viewers at most (empty: no cap)");
    browser.fill("#f-name", "capped").await;
    browser.fill("#f-streams", "news").await;
    browser.fill("#f-max_viewers", "30").await;
    browser.click("[data-testid=save]").await;
    browser.wait_text("capped saved", true).await;
    let capped = app.admin("GET", "/api/v1/packages/capped", None, 200).await;
    assert_eq!(capped["max_viewers"], 30, "{capped}");
    browser
        .wait_until(
            "const head = Array.from(document.querySelectorAll('thead th')).map(th => th.textContent); \
             const i = head.indexOf('Viewers at most'); const row = document.querySelector('tbody tr'); \
             return i >= 0 && !!row && row.children[i].textContent === '30';",
        )
        .await;
    browser.screenshot("package-max-viewers").await;
    browser.click("tbody tr:first-child button.small").await;
    browser.find("dialog[open] #f-max_viewers").await;
    browser.on_element("#f-max_viewers", "clear", None).await;
    browser.click("[data-testid=save]").await;
    browser
        .wait_until("return !document.querySelector('dialog[open]');")
        .await;
    assert_eq!(
        app.admin("GET", "/api/v1/packages/capped", None, 200).await["max_viewers"],
        Value::Null
    );
    browser.wait_text("no cap", true).await;

    // Two sessions of alice on one device: the live page has a Device column.
    let mut sessions = Vec::new();
    for stream in ["news", "sport/1"] {
        let decision = app
            .decide(
                json!({"stream": stream, "ip": "10.0.0.1", "token": "alice-token",
                           "device": "stb-1"}),
            )
            .await;
        assert_eq!(decision["allow"], true, "{decision}");
        sessions.push(decision["session_id"].as_str().unwrap().to_string());
    }
    browser.goto(&format!("{address}/ui/#/sessions")).await;
    browser.wait_text("10.0.0.1", true).await;
    let head = browser
        .script(
            "return Array.from(document.querySelectorAll('thead th')).map(th => th.textContent);",
            json!([]),
        )
        .await;
    assert!(
        head.as_array().unwrap().contains(&json!("Device")),
        "{head}"
    );
    // DEVICE: the session records the device its start sent.
    browser.wait_text("stb-1", true).await;
    browser.screenshot("sessions-device").await;

    // The user's editor lists the devices now: stb-1 with both streams.
    browser.goto(&format!("{address}/ui/#/users")).await;
    browser.wait_text("alice", true).await;
    browser.click("[data-testid=edit]").await;
    browser.wait_text("in 2 active sessions", true).await;
    let devices = browser.text_of("[data-testid=user-devices]").await;
    assert!(devices.contains("in 2 active sessions"), "{devices}");
    // DEVICE: one device, stb-1, watching both streams.
    assert!(
        devices.contains("1 device in 2") && devices.contains("stb-1"),
        "{devices}"
    );
    assert!(
        devices.contains("news") && devices.contains("sport/1"),
        "{devices}"
    );
    browser
        .script(
            "document.querySelector('[data-testid=user-devices]').scrollIntoView();",
            json!([]),
        )
        .await;
    browser.screenshot("user-devices").await;
    browser
        .click("dialog[open] [data-testid=save] + button")
        .await;

    // History: one session kicked, the other ended `replaced` (set in the
    // database: what the engine writes when the device zaps); each reason
    // is shown, with what it means in its tooltip and the legend.
    app.admin(
        "DELETE",
        &format!("/api/v1/sessions/{}", sessions[0]),
        None,
        204,
    )
    .await;
    let replaced: uuid::Uuid = sessions[1].parse().unwrap();
    app.db()
        .await
        .execute(
            "UPDATE sessions SET ended_at = now(), end_reason = 'replaced' WHERE id = $1",
            &[&replaced],
        )
        .await
        .unwrap();
    browser.goto(&format!("{address}/ui/#/sessions")).await;
    browser.wait_text("Nobody is watching", true).await;
    browser.click("[data-testid=view-ended]").await;
    browser.wait_text("Session history", true).await;
    browser.find("[data-reason=replaced]").await;
    let reasons = browser
        .script(
            "return Array.from(document.querySelectorAll('tbody [data-reason]'))\
             .map(e => [e.textContent, e.title]);",
            json!([]),
        )
        .await;
    assert_eq!(
        reasons,
        json!([
            [
                "replaced",
                "ended by the same device starting another channel (zapping)"
            ],
            ["kicked", "kicked by an admin, or the user was deleted"]
        ]),
        "newest first"
    );
    let legend = browser.text_of("[data-testid=end-reasons]").await;
    assert!(
        legend.contains("replaced")
            && legend.contains("ended by the same device starting another channel (zapping)"),
        "{legend}"
    );
    // DEVICE: the history keeps the device too.
    browser.wait_text("stb-1", true).await;
    browser.screenshot("sessions-history").await;
    browser.click("[data-testid=view-live]").await;
    browser.wait_text("Nobody is watching", true).await;

    // An observer has no editor: the Devices dialog shows the same list.
    let decision = app
        .decide(
            json!({"stream": "news", "ip": "10.0.0.2", "token": "alice-token",
                       "device": "tv-2"}),
        )
        .await;
    assert_eq!(decision["allow"], true, "{decision}");
    browser.click("#logout").await;
    browser.find("#login").await;
    browser.sign_in(&address, "watcher", "watcher-pw").await;
    browser.wait_text("alice", true).await;
    browser.click("[data-testid=devices]").await;
    // The dialog opens with "Loading devices…" until the API answers.
    browser.wait_text("in 1 active session;", true).await;
    let devices = browser.text_of("[data-testid=user-devices]").await;
    assert!(devices.contains("in 1 active session;"), "{devices}");
    // DEVICE
    assert!(devices.contains("tv-2"), "{devices}");
    browser.click("#close-devices").await;
}

/// The value of the form control `css` now.
pub(crate) async fn value_of(browser: &Browser, css: &str) -> Value {
    browser
        .script(
            "return document.querySelector(arguments[0]).value;",
            json!([css]),
        )
        .await
}

/// Issue 19: the Signing keys page (admins only) creates keys with their
/// format's options, shows a new key's secret once, refuses bad fields next
/// to them, disables (asked first, then the key's links are refused) and
/// deletes (Cancel focused); a user's Link makes a signed link whose query
/// `/hook/decide` admits; an observer has neither.
#[tokio::test]
async fn signing_keys_and_links_in_the_browser() {
    let Some((chromium, chromedriver)) = browser("ui_browser") else {
        return;
    };
    let app = spawn_admin_app().await;
    app.admin(
        "POST",
        "/api/v1/packages",
        Some(json!({"name": "basic", "streams": ["news"]})),
        201,
    )
    .await;
    app.admin(
        "POST",
        "/api/v1/users",
        Some(json!({"login": "alice", "packages": ["basic"]})),
        201,
    )
    .await;
    let browser = Browser::start(&chromium, &chromedriver).await;
    let address = app.address.clone();
    browser.sign_in(&address, "root", "root-pw").await;
    browser.wait_text("alice", true).await;

    // The admin's navigation has the page.
    browser.click("#nav a[data-page=signing-keys]").await;
    browser.wait_text("No signing keys yet", true).await;

    // A bad id: the API's 422 next to the id.
    browser.click("#new-key").await;
    browser.fill("#f-id", "Bad Id").await;
    browser.click("[data-testid=save]").await;
    let error = browser.text_of(".error[data-for=id]:not(:empty)").await;
    assert!(error.contains("not a valid key id"), "{error}");
    // Each format shows its own options: wowza's prefix, not nginx's template.
    assert!(browser.all("#f-prefix").await.is_empty());
    browser.click("#f-format option[value=wowza]").await;
    browser.find("#f-prefix").await;
    browser.find("#f-wowza_algorithm").await;
    assert!(browser.all("#f-template").await.is_empty());
    assert!(browser.all("#f-subject").await.is_empty());
    browser.screenshot("signing-key-form").await;
    // A bad option: the API's 422 at the options.
    browser.fill("#f-id", "wow").await;
    browser.fill("#f-prefix", "wow za").await;
    browser.click("[data-testid=save]").await;
    browser.find(".error[data-for=options]:not(:empty)").await;
    assert_eq!(
        app.api("GET", "/api/v1/signing-keys/wow", ADMIN, None)
            .await
            .status,
        404
    );
    // A playgate key, its secret generated: shown once, in a dialog.
    browser.click("#f-format option[value=playgate]").await;
    assert!(browser.all("#f-prefix").await.is_empty());
    browser.fill("#f-id", "portal").await;
    browser.fill("#f-comment", "billing portal").await;
    browser.click("[data-testid=save]").await;
    let secret = browser.text_of("#new-secret").await;
    assert_eq!(secret.len(), 43, "{secret}");
    let shown = browser.text_of("[data-testid=key-secret]").await;
    assert!(shown.contains("it will not be shown again"), "{shown}");
    browser.find("#copy-secret").await;
    browser.screenshot("signing-key-secret").await;
    browser.click("[data-testid=key-secret] .primary").await;
    let key = app
        .admin("GET", "/api/v1/signing-keys/portal", None, 200)
        .await;
    assert_eq!(
        (&key["format"], &key["comment"], &key["enabled"]),
        (&json!("playgate"), &json!("billing portal"), &json!(true)),
        "{key}"
    );
    assert!(key.get("secret").is_none(), "{key}");
    // An nginx key with a given secret and its own template (no address).
    browser.click("#new-key").await;
    browser.click("#f-format option[value=nginx]").await;
    browser.fill("#f-id", "edge").await;
    browser
        .fill("#f-template", "$secure_link_expires$uri $secret")
        .await;
    browser.fill("#f-secret", "the one in nginx.conf").await;
    browser.click("[data-testid=save]").await;
    assert_eq!(
        browser.text_of("#new-secret").await,
        "the one in nginx.conf"
    );
    browser.click("[data-testid=key-secret] .primary").await;
    let edge = app
        .admin("GET", "/api/v1/signing-keys/edge", None, 200)
        .await;
    assert_eq!(
        edge["options"],
        json!({"template": "$secure_link_expires$uri $secret"}),
        "{edge}"
    );
    // The list: both keys with their options; the secrets are gone for good.
    browser
        .wait_text("template $secure_link_expires$uri $secret", true)
        .await;
    browser.command("POST", "/refresh", None).await;
    browser.wait_text("billing portal", true).await;
    browser.wait_text("edge", true).await;
    let page = browser
        .script("return document.documentElement.outerHTML;", json!([]))
        .await;
    let page = page.as_str().unwrap();
    assert!(
        !page.contains(&secret) && !page.contains("the one in nginx.conf"),
        "a secret is shown after the reload"
    );
    assert!(browser.all("[data-testid=key-secret]").await.is_empty());
    browser.screenshot("signing-keys").await;
    // (The policy view has both within a second; a reload makes it now.)
    app.reload().await;

    // A link for alice: the default key is the newest playgate one.
    browser.goto(&format!("{address}/ui/#/users")).await;
    browser.wait_text("alice", true).await;
    browser
        .click("tbody tr:first-child [data-testid=make-link]")
        .await;
    browser.find("dialog[open] #f-stream").await;
    assert_eq!(value_of(&browser, "#f-key").await, "portal");
    // A playgate link may be once; it signs no path.
    browser.find("#f-link-once").await;
    assert!(browser.all("#f-uri").await.is_empty());
    // A lifetime beyond a week: the API's 422 at the lifetime.
    browser.fill("#f-stream", "news").await;
    browser.fill("#f-ttl", "999999").await;
    browser.click("[data-testid=save]").await;
    let error = browser.text_of(".error[data-for=ttl]:not(:empty)").await;
    assert!(error.contains("ttl"), "{error}");
    // The 24 h preset, an address: the link and an example URL.
    browser.click("button[data-ttl='86400']").await;
    assert_eq!(value_of(&browser, "#f-ttl").await, "86400");
    browser.fill("#f-ip", "198.51.100.20").await;
    browser.click("[data-testid=save]").await;
    let query = browser.text_of("#link-query").await;
    assert!(query.starts_with("pglink=v1.portal."), "{query}");
    assert!(browser
        .all(".error[data-for=ttl]:not(:empty)")
        .await
        .is_empty());
    assert_eq!(
        browser.text_of("#link-url").await,
        format!("https://streamer.example.com/news/index.m3u8?{query}")
    );
    browser.find("#copy-link-query").await;
    browser.screenshot("signed-link").await;
    let payload = query.split('.').nth(2).unwrap();
    let payload: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        (&payload["s"], &payload["u"]),
        (&json!("news"), &json!("alice")),
        "{payload}"
    );
    let lifetime = payload["exp"].as_i64().unwrap() - chrono::Utc::now().timestamp();
    assert!((86_000..=86_400).contains(&lifetime), "{payload}");
    // The query works: alice plays news from that address, nowhere else.
    let decision = app
        .decide(json!({"stream": "news", "ip": "198.51.100.20", "query": query}))
        .await;
    assert_eq!(
        (&decision["allow"], &decision["user"]),
        (&json!(true), &json!("alice")),
        "{decision}"
    );
    let elsewhere = app
        .decide(json!({"stream": "news", "ip": "198.51.100.21", "query": query}))
        .await;
    assert_eq!(reason(&elsewhere), "ip_mismatch", "{elsewhere}");

    // The nginx key: no user, no once, no address (its template signs
    // none); a path, whose refusal is shown at the path.
    browser.click("#f-key option[value=edge]").await;
    browser.find("#f-uri").await;
    assert!(browser.all("#f-ip").await.is_empty());
    assert!(browser.all("#f-link-once").await.is_empty());
    assert_eq!(
        browser
            .script(
                "const b = document.getElementById('f-link-user'); return [b.disabled, b.checked];",
                json!([])
            )
            .await,
        json!([true, false])
    );
    browser.fill("#f-uri", "/news/index.m3u8?x=1").await;
    browser.click("[data-testid=save]").await;
    browser.find(".error[data-for=uri]:not(:empty)").await;
    assert!(browser.all("#link-query").await.is_empty());
    browser.fill("#f-uri", "/news/index.m3u8").await;
    browser.click("[data-testid=save]").await;
    let nginx = browser.text_of("#link-query").await;
    assert!(
        nginx.starts_with("md5=") && nginx.contains("&expires="),
        "{nginx}"
    );
    assert_eq!(
        browser.text_of("#link-url").await,
        format!("https://streamer.example.com/news/index.m3u8?{nginx}")
    );
    browser
        .click("dialog[open] [data-testid=save] + button")
        .await;
    // The editor offers the same, over itself; Escape closes the link only.
    browser
        .wait_until("return !document.querySelector('dialog[open]');")
        .await;
    browser
        .click("tbody tr:first-child [data-testid=edit]")
        .await;
    browser.click("[data-testid=editor-make-link]").await;
    browser.find("#f-key").await;
    assert_eq!(
        browser
            .script(
                "return document.querySelectorAll('dialog[open]').length;",
                json!([])
            )
            .await,
        2
    );
    assert_eq!(value_of(&browser, "#f-key").await, "portal");
    browser.press(ESCAPE).await;
    browser
        .wait_until("return document.querySelectorAll('dialog[open]').length === 1;")
        .await;
    browser.find("dialog[open] #f-login").await;
    browser.press(ESCAPE).await;
    browser
        .wait_until("return !document.querySelector('dialog[open]');")
        .await;

    // Disable portal: asked first (Cancel focused); then its links are refused.
    browser.goto(&format!("{address}/ui/#/signing-keys")).await;
    browser.wait_text("billing portal", true).await;
    browser
        .click("tbody tr:first-child [data-testid=key-toggle]")
        .await;
    let question = browser.text_of("[data-testid=confirm]").await;
    assert!(question.contains("Disable key portal?"), "{question}");
    assert_eq!(browser.focused().await["testid"], "confirm-no");
    browser.click("[data-testid=confirm-yes]").await;
    browser.wait_text("portal disabled", true).await;
    assert_eq!(
        app.admin("GET", "/api/v1/signing-keys/portal", None, 200)
            .await["enabled"],
        false
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let decision = app
            .decide(json!({"stream": "news", "ip": "198.51.100.20", "query": query}))
            .await;
        if decision["allow"] == false {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the disabled key's link still plays"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    browser.wait_text("Enable", true).await;
    browser.screenshot("signing-key-disabled").await;

    // Delete edge: Enter in the question cancels; Delete deletes.
    browser
        .click("tbody tr:nth-child(2) [data-testid=key-delete]")
        .await;
    browser.find("[data-testid=confirm]").await;
    assert_eq!(browser.focused().await["testid"], "confirm-no");
    browser.press(ENTER).await;
    browser
        .wait_until("return !document.querySelector('dialog[open]');")
        .await;
    app.admin("GET", "/api/v1/signing-keys/edge", None, 200)
        .await;
    browser
        .click("tbody tr:nth-child(2) [data-testid=key-delete]")
        .await;
    browser.click("[data-testid=confirm-yes]").await;
    browser.wait_text("edge deleted", true).await;
    assert_eq!(
        app.api("GET", "/api/v1/signing-keys/edge", ADMIN, None)
            .await
            .status,
        404
    );

    // The observer: no Signing keys in the navigation, the page not even by
    // its address, and no Link button.
    browser.click("#logout").await;
    browser.find("#login").await;
    browser.sign_in(&address, "watcher", "watcher-pw").await;
    browser.wait_text("alice", true).await;
    assert!(browser
        .all("#nav a[data-page=signing-keys]")
        .await
        .is_empty());
    browser.goto(&format!("{address}/ui/#/signing-keys")).await;
    browser.wait_text("alice", true).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    for control in [
        "#new-key",
        "[data-testid=key-toggle]",
        "[data-testid=key-delete]",
        "[data-testid=make-link]",
    ] {
        assert!(
            browser.all(control).await.is_empty(),
            "observer sees {control}"
        );
    }
    assert!(!browser.text().await.contains("Signing keys"));
    browser.screenshot("observer-no-keys").await;
}

/// Editing an IP rule changes it in place (issue 22): the comment alone
/// used to be a second rule for the same network (409), and a failed
/// delete left two. The network and the action cannot be edited; an end
/// makes the ban temporary and shows in the list.
#[tokio::test]
async fn an_ip_rule_is_edited_in_place() {
    let Some((chromium, chromedriver)) = browser("ui_browser") else {
        return;
    };
    let app = spawn_admin_app().await;
    let rule = app
        .admin(
            "POST",
            "/api/v1/ip-rules",
            Some(json!({"network": "198.51.100.0/24", "action": "deny", "comment": "abuse"})),
            201,
        )
        .await;
    let browser = Browser::start(&chromium, &chromedriver).await;
    let address = app.address.clone();
    browser.sign_in(&address, "root", "root-pw").await;
    browser.find("#new-user").await;
    browser.goto(&format!("{address}/ui/#/ip-rules")).await;
    browser.wait_text("198.51.100.0/24", true).await;
    browser.wait_text("for good", true).await;
    browser.click("[data-testid=rule-edit]").await;
    browser.find("#f-network[disabled]").await;
    browser.find("#f-action[disabled]").await;
    browser.fill("#f-comment", "restreamer").await;
    // 1 January 2099, 2 pm local time, typed as the datetime-local field takes it.
    browser.fill("#f-expires_at", "01012099\t0200P").await;
    browser.click("[data-testid=save]").await;
    browser.wait_text("Rule saved", true).await;
    browser.wait_text("restreamer", true).await;
    let rules = app.admin("GET", "/api/v1/ip-rules", None, 200).await;
    assert_eq!(rules["total"], 1, "{rules}");
    let saved = &rules["items"][0];
    assert_eq!(
        (&saved["id"], &saved["comment"]),
        (&rule["id"], &json!("restreamer"))
    );
    assert!(
        saved["expires_at"]
            .as_str()
            .is_some_and(|at| at.starts_with("2099-01-01")),
        "{saved}"
    );
    assert!(!browser.text().await.contains("for good"));
    browser.screenshot("ip-rules").await;

    // The audit log says what changed, old → new, and names the rule.
    browser.goto(&format!("{address}/ui/#/audit")).await;
    browser.wait_text("deny rule 198.51.100.0/24", true).await;
    let changes = browser.text_of("[data-testid=audit-changes]").await;
    assert!(changes.contains("comment: abuse → restreamer"), "{changes}");
    assert!(
        changes.contains("expires_at: none → 2099-01-01"),
        "{changes}"
    );
}

/// The statistics page shows denials by reason (issue 22): the count of
/// `session_limit` is how account sharing shows, until now only in
/// Prometheus.
#[tokio::test]
async fn statistics_show_denials_by_reason() {
    let Some((chromium, chromedriver)) = browser("ui_browser") else {
        return;
    };
    let app = spawn_app_with(|settings| settings.stats_interval = Duration::from_secs(1)).await;
    seed_admins(&app).await;
    app.create(user("alice").token("t").limit(1)).await;
    app.decide(session("t", "one", "start")).await;
    for n in 0..3 {
        let shared = app
            .decide(session("t", &format!("other-{n}"), "start"))
            .await;
        assert_eq!(reason(&shared), "session_limit");
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while app.admin("GET", "/api/v1/stats/denials", None, 200).await["items"]
        != json!([{"reason": "session_limit", "count": 3}])
    {
        assert!(Instant::now() < deadline, "denials never counted");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let browser = Browser::start(&chromium, &chromedriver).await;
    let address = app.address.clone();
    browser.sign_in(&address, "watcher", "watcher-pw").await;
    browser.goto(&format!("{address}/ui/#/stats")).await;
    let row = browser
        .text_of("#stats-denials tr[data-reason=session_limit]")
        .await;
    assert!(row.contains("session_limit") && row.contains('3'), "{row}");
    assert!(row.contains("account sharing"), "{row}");
    // Viewers now come from the server's count, per stream.
    assert_eq!(
        browser.text_of(".cards [data-stream=news] .value").await,
        "1"
    );
    browser.screenshot("stats-denials").await;

    // A preset is a range ending now: the denials of a second ago are in it.
    browser.click("[data-preset='1 h']").await;
    browser.find("[data-preset='1 h'][aria-pressed=true]").await;
    browser
        .find("#stats-denials tr[data-reason=session_limit]")
        .await;
    // Hover values on the chart, and the stream picker offers the range's streams.
    let tips = browser
        .script(
            "return Array.from(document.querySelectorAll('#chart rect.hover title')).map(t => t.textContent)",
            json!([]),
        )
        .await;
    let tips = tips.as_array().unwrap();
    assert!(!tips.is_empty(), "no hover values");
    assert!(
        tips.iter()
            .any(|t| t.as_str().unwrap().ends_with(": 1 viewer")),
        "{tips:?}"
    );
    let offered = browser
        .script(
            "return Array.from(document.querySelectorAll('#stats-streams option')).map(o => o.value)",
            json!([]),
        )
        .await;
    assert_eq!(offered, json!(["news"]));
    // A range with nothing in it says so.
    browser.fill("#stats-from", "01012001	1200A").await;
    browser.fill("#stats-to", "01022001	1200A").await;
    browser
        .find("[data-preset='1 h'][aria-pressed=false]")
        .await;
    browser.click("#stats-range button[type=submit]").await;
    browser
        .wait_text("Nobody watched in this range.", true)
        .await;
    browser.wait_text("No denials in this range.", true).await;
    browser.find("[data-testid=chart-empty]").await;
}

/// The users list (issue 22): "Active" is the database's count, not the
/// first 1 000 sessions counted in the browser, and an expired account
/// shows "expired", not a green "enabled".
#[tokio::test]
async fn the_users_list_counts_sessions_on_the_server_and_shows_expired_accounts() {
    let Some((chromium, chromedriver)) = browser("ui_browser") else {
        return;
    };
    let app = spawn_admin_app().await;
    app.create(user("bob").token("bob-t").limit(5)).await;
    app.create(
        user("carol")
            .token("carol-t")
            .expires_at("2001-01-01T00:00:00Z"),
    )
    .await;
    for n in 0..2 {
        let decision = app.decide(session("bob-t", &n.to_string(), "start")).await;
        assert_eq!(reason(&decision), "ok");
    }
    let bob = app.admin("GET", "/api/v1/users/bob", None, 200).await;
    assert_eq!(bob["active_sessions"], 2, "{bob}");
    let browser = Browser::start(&chromium, &chromedriver).await;
    let address = app.address.clone();
    browser.sign_in(&address, "watcher", "watcher-pw").await;
    browser.goto(&format!("{address}/ui/#/users")).await;
    // The 8th column: Active.
    let active = browser.text_of("tr[data-login=bob] td:nth-child(8)").await;
    assert_eq!(active, "2");
    browser
        .find("tr[data-login=carol] [data-state=expired]")
        .await;
    let carol_row = browser.text_of("tr[data-login=carol]").await;
    assert!(!carol_row.contains("enabled"), "{carol_row}");
}

/// Live sessions (issue 22): an address that restreams is blocked from its
/// row (a deny rule, its sessions kicked, asked first); the history is
/// narrowed to a time window.
#[tokio::test]
async fn an_address_is_blocked_from_live_sessions_and_the_history_has_a_window() {
    let Some((chromium, chromedriver)) = browser("ui_browser") else {
        return;
    };
    let app = spawn_admin_app().await;
    app.create(user("dana").token("dana-t").limit(5)).await;
    let start = |session: &str, ip: &str, event: &str| json!({"stream": "news", "ip": ip, "token": "dana-t", "session": session, "event": event});
    app.decide(start("old", "198.51.100.20", "start")).await;
    app.decide(start("old", "198.51.100.20", "stop")).await;
    let watching = app.decide(start("live", "192.0.2.77", "start")).await;
    assert_eq!(reason(&watching), "ok");
    let browser = Browser::start(&chromium, &chromedriver).await;
    let address = app.address.clone();
    browser.sign_in(&address, "root", "root-pw").await;
    browser.goto(&format!("{address}/ui/#/sessions")).await;
    browser.wait_text("192.0.2.77", true).await;
    browser.wait_text("ago", true).await;
    browser.click("[data-testid=block]").await;
    let question = browser.text_of("[data-testid=confirm]").await;
    assert!(question.contains("192.0.2.77"), "{question}");
    browser.click("[data-testid=confirm-yes]").await;
    browser.wait_text("192.0.2.77 blocked", true).await;
    let rules = app.admin("GET", "/api/v1/ip-rules", None, 200).await;
    assert_eq!(rules["items"][0]["network"], "192.0.2.77/32", "{rules}");
    assert_eq!(rules["items"][0]["action"], "deny");
    let id = watching["session_id"].as_str().unwrap();
    assert_eq!(
        app.session_state(id).await,
        (true, Some("kicked".to_string()))
    );
    assert_eq!(
        reason(&app.decide(start("again", "192.0.2.77", "start")).await),
        "ip_denied"
    );

    // The history: both ended sessions, then none ended after 2098.
    browser
        .goto(&format!("{address}/ui/#/sessions?state=ended"))
        .await;
    browser.wait_text("198.51.100.20", true).await;
    browser.wait_text("192.0.2.77", true).await;
    browser.fill("#history-from", "01012098\t1200A").await;
    browser.wait_text("No ended sessions.", true).await;
}

/// A user's page (issue 22), for support desks: an observer reads every
/// field, the live sessions and devices, the history and the watch time;
/// an admin renews the account by months and kicks all its sessions; an
/// account with no way to play says so.
#[tokio::test]
async fn a_user_page_for_support_desks() {
    let Some((chromium, chromedriver)) = browser("ui_browser") else {
        return;
    };
    let app = spawn_admin_app().await;
    app.admin(
        "POST",
        "/api/v1/users",
        Some(
            json!({"login": "erin", "token": "erin-t", "max_sessions": 3,
                    "comment": "flat 12", "expires_at": "2099-01-15T00:00:00Z"}),
        ),
        201,
    )
    .await;
    app.admin(
        "POST",
        "/api/v1/users",
        Some(json!({"login": "ghost"})),
        201,
    )
    .await;
    let play = |session: &str, ip: &str, event: &str| {
        json!({"stream": "news", "ip": ip, "token": "erin-t", "session": session, "event": event,
               "device": format!("stb-{ip}")})
    };
    app.decide(play("s0", "192.0.2.50", "start")).await;
    app.decide(play("s0", "192.0.2.50", "stop")).await;
    for (session, ip) in [("s1", "192.0.2.51"), ("s2", "192.0.2.52")] {
        assert_eq!(reason(&app.decide(play(session, ip, "start")).await), "ok");
    }
    let browser = Browser::start(&chromium, &chromedriver).await;
    let address = app.address.clone();

    // The observer: from the users list to the page; everything, no controls.
    browser.sign_in(&address, "watcher", "watcher-pw").await;
    browser.goto(&format!("{address}/ui/#/users")).await;
    browser.click("tr[data-login=erin] a.user-link").await;
    browser.wait_text("Watching now (2)", true).await;
    let facts = browser.text_of("[data-testid=user-facts]").await;
    for fact in ["flat 12", "2099", "3", "Tokens"] {
        assert!(facts.contains(fact), "{fact} missing: {facts}");
    }
    assert_eq!(
        browser.text_of("[data-testid=user-devices]").await,
        "On 2 devices now."
    );
    browser.wait_text("History (1)", true).await;
    browser.wait_text("stopped", true).await;
    let watch = browser.text_of("[data-testid=user-watch-time]").await;
    assert!(watch.contains("3 sessions"), "{watch}");
    assert!(browser.all("[data-testid=kick-all]").await.is_empty());
    assert!(browser.all("[data-testid=renew-1]").await.is_empty());
    browser
        .goto(&format!("{address}/ui/#/user?login=ghost"))
        .await;
    browser.find("[data-testid=no-credential]").await;
    browser.click("#logout").await;
    browser.find("#login").await;

    // The admin: +1 month from the current end, then kick all.
    browser.sign_in(&address, "root", "root-pw").await;
    browser
        .goto(&format!("{address}/ui/#/user?login=erin"))
        .await;
    browser.wait_text("Watching now (2)", true).await;
    // Its token, with when it was last used (the open sessions' starts) and no expiry.
    let token_row = browser.text_of("[data-testid=user-token]").await;
    assert!(token_row.contains("never"), "{token_row}");
    assert!(
        !token_row.contains("not yet"),
        "used by the starts: {token_row}"
    );
    browser.click("[data-testid=renew-1]").await;
    browser.wait_text("erin renewed", true).await;
    let erin = app.admin("GET", "/api/v1/users/erin", None, 200).await;
    assert!(
        erin["expires_at"]
            .as_str()
            .unwrap()
            .starts_with("2099-02-15"),
        "{erin}"
    );
    browser.click("[data-testid=kick-all]").await;
    browser.click("[data-testid=confirm-yes]").await;
    browser.wait_text("Watching now (0)", true).await;
    let active = app
        .admin("GET", "/api/v1/sessions?user=erin", None, 200)
        .await;
    assert_eq!(active["total"], 0, "{active}");
    // A token of a given value (a set-top box's, say), entered in the dialog.
    browser.click("[data-testid=user-tokens]").await;
    browser.fill("#token-label", "stb").await;
    browser.fill("#token-value", "erin-stb-0042").await;
    browser.click("#create-token").await;
    browser.wait_text("Token saved", true).await;
    browser.wait_text("Tokens (2)", true).await;
    assert!(browser.text().await.contains("not yet"));
    assert_eq!(
        reason(
            &app.decide(
                json!({"stream": "news", "ip": "192.0.2.60", "token": "erin-stb-0042",
                               "session": "s9"})
            )
            .await
        ),
        "ok"
    );
    browser.screenshot("user-page").await;
}
