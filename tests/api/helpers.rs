//! Test harness: the real server on port 0 against a fresh PostgreSQL
//! database (random name, dropped afterwards).

use std::sync::Arc;

use playgate::app::StartupError;
use playgate::config::{Settings, SettingsArgs};
use playgate::domain::parse_network;
use playgate::domain::RuleAction;
use playgate::store::tokens;
use playgate::store::users::{self, NewUser};
use playgate::store::DatabaseSettings;
use playgate::{AppHandle, AppState, Application};
use serde_json::{json, Value};

pub fn server_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

/// A database of its own for one test; dropped (connections and all) when
/// the last holder goes away.
pub struct TestDb {
    pub name: String,
    pub url: String,
    server: String,
}

impl TestDb {
    pub fn new() -> Arc<TestDb> {
        TestDb::on(&server_url())
    }

    /// A database on another server (`postgres://user@host:port`).
    pub fn on(server: &str) -> Arc<TestDb> {
        let name = format!("playgate_test_{}", uuid::Uuid::new_v4().simple());
        let url = format!("{server}/{name}");
        Arc::new(TestDb {
            name,
            url,
            server: server.to_string(),
        })
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let admin_url = format!("{}/postgres", self.server);
        let statement = format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name);
        // Drop runs inside the test's runtime; a runtime of its own on another thread avoids nesting.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                if let Ok((client, connection)) =
                    tokio_postgres::connect(&admin_url, tokio_postgres::NoTls).await
                {
                    tokio::spawn(connection);
                    if let Err(e) = client.batch_execute(&statement).await {
                        eprintln!("cannot drop test database: {e}");
                    }
                }
            });
        })
        .join();
    }
}

pub struct TestApp {
    pub address: String,
    pub state: actix_web::web::Data<AppState>,
    pub db: Arc<TestDb>,
    pub http: reqwest::Client,
    handle: AppHandle,
    /// The tests' own SQL, when the application's pool goes through the
    /// shared pgbouncer: plain statements of tokio-postgres are named
    /// prepared ones, which a transaction pooler does not keep.
    direct: Option<playgate::store::Pool>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        // Sending the stop command is synchronous; awaiting its completion is not needed.
        drop(self.handle.stop(false));
    }
}

pub fn test_settings(database_url: &str) -> Settings {
    let mut settings = Settings::from_args(&SettingsArgs {
        database_url: Some(database_url.to_string()),
        listen: Some("127.0.0.1:0".into()),
        ..Default::default()
    })
    .expect("valid test settings");
    settings.database.pool_size = 8;
    settings
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with(configure: impl FnOnce(&mut Settings)) -> TestApp {
    spawn_on(TestDb::new(), configure).await
}

/// Another instance (a second replica) on an existing test database.
pub async fn spawn_on(db: Arc<TestDb>, configure: impl FnOnce(&mut Settings)) -> TestApp {
    try_spawn_on(db, configure)
        .await
        .unwrap_or_else(|e| panic!("application starts: {e}"))
}

/// As `spawn_on`, for a start-up that may fail.
pub async fn try_spawn_on(
    db: Arc<TestDb>,
    configure: impl FnOnce(&mut Settings),
) -> Result<TestApp, StartupError> {
    let _ = env_logger::builder().is_test(true).try_init();
    let mut settings = test_settings(&db.url);
    let mut direct = None;
    if crate::pooler::through_pgbouncer() && crate::pooler::is_on_default_server(&db) {
        direct = Some(settings.database.create_pool().expect("direct pool"));
        let through = crate::pooler::shared_url(&db);
        settings.database = database_settings(&through, Some(&db.url), None, Some("off"));
    }
    configure(&mut settings);
    let application = Application::build(settings).await?;
    let address = format!("http://127.0.0.1:{}", application.port());
    let state = application.state();
    let handle = application.handle();
    tokio::spawn(application.run_until_stopped());
    Ok(TestApp {
        address,
        state,
        db,
        http: reqwest::Client::new(),
        handle,
        direct,
    })
}

/// The database settings the environment variables would give: `DATABASE_URL`,
/// and `PLAYGATE_LISTEN_DATABASE_URL`, `PLAYGATE_STATS_DATABASE_URL`,
/// `PLAYGATE_DB_PREPARED` when given (a start-up's own errors are tested
/// through `Application::build`, so these must parse).
pub fn database_settings(
    url: &str,
    listen: Option<&str>,
    stats: Option<&str>,
    prepared: Option<&str>,
) -> DatabaseSettings {
    let mut database = Settings::from_args(&SettingsArgs {
        database_url: Some(url.to_string()),
        listen_database_url: listen.map(str::to_string),
        stats_database_url: stats.map(str::to_string),
        db_prepared: prepared.map(str::to_string),
        ..Default::default()
    })
    .unwrap_or_else(|e| panic!("test database settings: {e}"))
    .database;
    database.pool_size = 8;
    database
}

/// A user as tests describe it.
pub struct UserSpec {
    pub user: NewUser,
    pub password: Option<&'static str>,
    pub tokens: Vec<String>,
}

pub fn user(login: &str) -> UserSpec {
    UserSpec {
        user: NewUser::new(login),
        password: None,
        tokens: Vec::new(),
    }
}

impl UserSpec {
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.tokens.push(token.into());
        self
    }
    pub fn password(mut self, password: &'static str) -> Self {
        self.password = Some(password);
        self
    }
    pub fn limit(mut self, max_sessions: i32) -> Self {
        self.user.max_sessions = Some(max_sessions);
        self
    }
    pub fn ips(mut self, networks: &[&str]) -> Self {
        self.user.ips = networks.iter().map(|n| parse_network(n).unwrap()).collect();
        self
    }
    pub fn packages(mut self, packages: &[&str]) -> Self {
        self.user.packages = packages.iter().map(|p| p.to_string()).collect();
        self
    }
    pub fn disabled(mut self) -> Self {
        self.user.enabled = false;
        self
    }
    pub fn expires_at(mut self, at: &str) -> Self {
        self.user.expires_at = Some(at.parse().unwrap());
        self
    }
}

impl TestApp {
    pub async fn db(&self) -> playgate::store::Client {
        let pool = self.direct.as_ref().unwrap_or(&self.state.pool);
        pool.get().await.expect("database connection")
    }

    /// Creates the user and its tokens, then reloads this replica's policy view.
    pub async fn create(&self, spec: UserSpec) -> i64 {
        let mut user = spec.user;
        if let Some(password) = spec.password {
            // Lowest bcrypt cost: the engine verifies any cost, and tests stay fast.
            user.password_hash = Some(bcrypt::hash(password, 4).unwrap());
        }
        let mut client = self.db().await;
        let transaction = client.transaction().await.unwrap();
        let id = users::insert(&transaction, &user)
            .await
            .expect("create user");
        users::set_packages(&transaction, id, &user.packages)
            .await
            .expect("link packages");
        for token in spec.tokens {
            tokens::insert(&transaction, id, &token, "", None, Default::default())
                .await
                .expect("add token");
        }
        transaction.commit().await.unwrap();
        self.reload().await;
        id
    }

    pub async fn package(&self, name: &str, streams: &[&str]) {
        let streams: Vec<String> = streams.iter().map(|s| s.to_string()).collect();
        playgate::store::packages::insert(&self.db().await, name, "", &streams, None)
            .await
            .unwrap();
        self.reload().await;
    }

    pub async fn ip_rule(&self, network: &str, action: RuleAction) {
        playgate::store::ip_rules::insert(
            &self.db().await,
            parse_network(network).unwrap(),
            action,
            "",
            None,
        )
        .await
        .unwrap();
        self.reload().await;
    }

    /// Stops this replica (server and background tasks) and waits for it:
    /// as if its process had died, for what it had under way.
    pub async fn stop(&self) {
        self.handle.stop(false).await;
    }

    pub async fn reload(&self) {
        self.state.policy.reload().await.expect("policy reload");
    }

    pub async fn post_decide(&self, body: &Value) -> (u16, Value) {
        let response = self
            .http
            .post(format!("{}/hook/decide", self.address))
            .json(body)
            .send()
            .await
            .expect("request");
        let status = response.status().as_u16();
        let body = response.json().await.unwrap_or(Value::Null);
        (status, body)
    }

    /// POST /hook/decide and expect a decision (200).
    pub async fn decide(&self, body: Value) -> Value {
        let (status, decision) = self.post_decide(&body).await;
        assert_eq!(status, 200, "{decision}");
        decision
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{}", self.address, path))
            .send()
            .await
            .expect("request")
    }

    /// (ended_at is set, end_reason) of a session.
    pub async fn session_state(&self, id: &str) -> (bool, Option<String>) {
        let id: uuid::Uuid = id.parse().unwrap();
        let row = self
            .db()
            .await
            .query_one(
                "SELECT ended_at IS NOT NULL, end_reason FROM session_log WHERE id = $1",
                &[&id],
            )
            .await
            .unwrap();
        (row.get(0), row.get(1))
    }

    pub async fn active_sessions(&self, login: &str) -> i64 {
        self.db()
            .await
            .query_one(
                "SELECT count(*) FROM sessions WHERE login = $1 AND ended_at IS NULL AND expires_at > now()",
                &[&login],
            )
            .await
            .unwrap()
            .get(0)
    }

    pub async fn metrics_text(&self) -> String {
        self.get("/metrics").await.text().await.unwrap()
    }
}

/// A play request for the generic hook.
pub fn play(stream: &str, ip: &str) -> Value {
    json!({"stream": stream, "ip": ip})
}

/// A `/hook/decide` request of `news` from 192.0.2.1 with this token,
/// session key and event (start, refresh, stop).
pub fn session(token: &str, session: &str, event: &str) -> Value {
    with(
        play("news", "192.0.2.1"),
        json!({"token": token, "session": session, "event": event}),
    )
}

pub fn with(mut body: Value, extra: Value) -> Value {
    for (key, value) in extra.as_object().unwrap() {
        body[key] = value.clone();
    }
    body
}

pub fn reason(decision: &Value) -> &str {
    decision["reason"].as_str().unwrap_or("<none>")
}

/// Parses the Prometheus text format into (name{labels} → value), labels sorted.
pub fn parse_metrics(text: &str) -> std::collections::HashMap<String, f64> {
    let mut samples = std::collections::HashMap::new();
    for line in text
        .lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
    {
        let (series, value) = line.rsplit_once(' ').expect("sample line");
        let key = match series.split_once('{') {
            Some((name, labels)) => {
                let mut labels: Vec<&str> = labels
                    .trim_end_matches('}')
                    .split(',')
                    .filter(|l| !l.is_empty())
                    .collect();
                labels.sort();
                format!("{name}{{{}}}", labels.join(","))
            }
            None => series.to_string(),
        };
        samples.insert(key, value.parse().expect("sample value"));
    }
    samples
}

/// The value of `playgate_decisions_total` for these labels (0 when absent).
pub fn decisions(
    samples: &std::collections::HashMap<String, f64>,
    dialect: &str,
    result: &str,
    reason: &str,
) -> f64 {
    let key = format!(
        r#"playgate_decisions_total{{dialect="{dialect}",reason="{reason}",result="{result}"}}"#
    );
    samples.get(&key).copied().unwrap_or(0.0)
}

/// A streamer hook's answer: status, headers, body text.
pub struct HookAnswer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl HookAnswer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
}

impl TestApp {
    /// Sends a prepared request to a hook.
    pub async fn hook(&self, request: reqwest::RequestBuilder) -> HookAnswer {
        let response = request.send().await.expect("request");
        HookAnswer {
            status: response.status().as_u16(),
            headers: response.headers().clone(),
            body: response.text().await.unwrap_or_default(),
        }
    }

    /// GET `/hook/...` (path with query) with these headers.
    pub async fn hook_get(&self, path: &str, headers: &[(&str, &str)]) -> HookAnswer {
        let mut request = self.http.get(format!("{}{}", self.address, path));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        self.hook(request).await
    }

    /// An HLS player's request as nginx `auth_request` forwards it.
    pub async fn hls_get(&self, uri: &str, client_ip: &str) -> HookAnswer {
        self.hook_get(
            "/hook/forward-auth",
            &[
                ("X-Original-URI", uri),
                ("X-Real-IP", client_ip),
                ("User-Agent", "hls.js/1.5"),
            ],
        )
        .await
    }

    /// POST a JSON body (raw text, as a streamer sends it) to `/hook/...`.
    pub async fn hook_post_json(&self, path: &str, body: &str) -> HookAnswer {
        self.hook(
            self.http
                .post(format!("{}{}", self.address, path))
                .header("Content-Type", "application/json")
                .body(body.to_string()),
        )
        .await
    }

    /// (login, ended, end_reason) of every session of a dialect, oldest first.
    pub async fn sessions_of_dialect(
        &self,
        dialect: &str,
    ) -> Vec<(Option<String>, bool, Option<String>)> {
        self.db()
            .await
            .query(
                "SELECT login, ended_at IS NOT NULL, end_reason FROM session_log WHERE dialect = $1 ORDER BY started_at",
                &[&dialect],
            )
            .await
            .unwrap()
            .iter()
            .map(|row| (row.get(0), row.get(1), row.get(2)))
            .collect()
    }

    pub async fn decision_count(&self, dialect: &str, result: &str, reason: &str) -> f64 {
        decisions(
            &parse_metrics(&self.metrics_text().await),
            dialect,
            result,
            reason,
        )
    }
}

// ---- Admin API helpers ----

/// How a test authenticates to the admin API.
#[derive(Clone, Copy, Debug)]
pub enum Auth<'a> {
    None,
    Basic(&'a str, &'a str),
    Bearer(&'a str),
}

/// Logins and passwords of the staff that `spawn_admin_app` creates.
pub const ADMIN: Auth<'static> = Auth::Basic("root", "root-pw");
pub const OBSERVER: Auth<'static> = Auth::Basic("watcher", "watcher-pw");
pub const VIEWER: Auth<'static> = Auth::Basic("viewer", "viewer-pw");

/// An answer of the admin API.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
    pub headers: reqwest::header::HeaderMap,
}

impl TestApp {
    /// One admin API request; `body` None sends none.
    pub async fn api(
        &self,
        method: &str,
        path: &str,
        auth: Auth<'_>,
        body: Option<Value>,
    ) -> Answer {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = self
            .http
            .request(method, format!("{}{}", self.address, path));
        request = match auth {
            Auth::None => request,
            Auth::Basic(login, password) => request.basic_auth(login, Some(password)),
            Auth::Bearer(token) => request.bearer_auth(token),
        };
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Answer {
            status,
            body,
            headers,
        }
    }

    /// As `ADMIN`, expecting `status`; returns the body.
    pub async fn admin(&self, method: &str, path: &str, body: Option<Value>, status: u16) -> Value {
        let answer = self.api(method, path, ADMIN, body).await;
        assert_eq!(answer.status, status, "{method} {path}: {}", answer.body);
        answer.body
    }

    /// Every table of the database as text (to look for secrets in it).
    pub async fn dump(&self) -> String {
        let client = self.db().await;
        let mut text = String::new();
        for table in [
            "users",
            "tokens",
            "packages",
            "user_packages",
            "ip_rules",
            "sessions",
            "audit_log",
        ] {
            for row in client
                .query(&format!("SELECT t::text FROM {table} t"), &[])
                .await
                .unwrap()
            {
                let line: String = row.get(0);
                text.push_str(&line);
                text.push('\n');
            }
        }
        text
    }
}

/// A server with an admin (`root`), an observer (`watcher`) and a plain user
/// (`viewer`), created through the store (bcrypt cost 4, for speed).
pub async fn spawn_admin_app() -> TestApp {
    let app = spawn_app().await;
    seed_admins(&app).await;
    app
}

/// `root`, `watcher` and `viewer` of `spawn_admin_app`, on any server.
pub async fn seed_admins(app: &TestApp) {
    use playgate::domain::UserKind;
    for (login, password, kind) in [
        ("root", "root-pw", UserKind::Admin),
        ("watcher", "watcher-pw", UserKind::Observer),
        ("viewer", "viewer-pw", UserKind::User),
    ] {
        let mut spec = user(login).password(password);
        spec.user.kind = kind;
        app.create(spec).await;
    }
}

// ---- Callers at other addresses ----

/// An HTTP client whose requests come from `peer`, another loopback address
/// (127.0.0.2, …): Linux routes all of 127.0.0.0/8 to the loopback, so a
/// test can be a second caller of the same server.
pub fn client_from(peer: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(peer.parse::<std::net::IpAddr>().unwrap())
        .build()
        .unwrap()
}

impl TestApp {
    /// POST /hook/decide through `client` and expect a decision (200).
    pub async fn decide_via(&self, client: &reqwest::Client, body: Value) -> Value {
        let response = client
            .post(format!("{}/hook/decide", self.address))
            .json(&body)
            .send()
            .await
            .expect("request");
        assert_eq!(response.status().as_u16(), 200);
        response.json().await.unwrap()
    }
}

/// The real `playgate serve` binary with its real logger, on port 0, with
/// only the given settings (none inherited from the environment), its
/// standard error read line by line.
pub struct ServedBinary {
    pub child: std::process::Child,
    /// Every line read so far.
    pub log: Vec<String>,
    pub base: String,
    lines: std::sync::mpsc::Receiver<String>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl ServedBinary {
    /// Started and listening (its "listening on port" line read).
    pub fn serve(settings: &[(&str, String)]) -> ServedBinary {
        use std::io::{BufRead, BufReader};
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_playgate"));
        for (name, _) in std::env::vars() {
            if name.starts_with("PLAYGATE_") || name == "DATABASE_URL" || name == "RUST_LOG" {
                command.env_remove(name);
            }
        }
        command
            .arg("serve")
            .env("PLAYGATE_LISTEN", "127.0.0.1:0")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        for (name, value) in settings {
            command.env(name, value);
        }
        let mut child = command.spawn().expect("start playgate");
        let (sender, lines) = std::sync::mpsc::channel::<String>();
        let stderr = child.stderr.take().unwrap();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        let mut served = ServedBinary {
            child,
            log: Vec::new(),
            base: String::new(),
            lines,
            reader: Some(reader),
        };
        let port = served
            .line_where(std::time::Duration::from_secs(60), |line| {
                line.contains("listening on port ")
            })
            .unwrap_or_else(|| panic!("playgate did not start: {:#?}", served.log))
            .rsplit_once("listening on port ")
            .map(|(_, port)| port.trim().to_string())
            .unwrap();
        served.base = format!("http://127.0.0.1:{port}");
        served
    }

    /// The next line that `matches`, waiting at most `limit` for each line.
    pub fn line_where(
        &mut self,
        limit: std::time::Duration,
        matches: impl Fn(&str) -> bool,
    ) -> Option<String> {
        while let Ok(line) = self.lines.recv_timeout(limit) {
            self.log.push(line.clone());
            if matches(&line) {
                return Some(line);
            }
        }
        None
    }

    /// Stops it with SIGTERM; true when it exited 0. The log is then whole.
    pub fn stop(&mut self) -> bool {
        std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        let success = self.child.wait().unwrap().success();
        if let Some(reader) = self.reader.take() {
            reader.join().unwrap();
        }
        self.log.extend(self.lines.try_iter());
        success
    }
}

impl Drop for ServedBinary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---- A relay to PostgreSQL that can hold its answers back ----

/// A TCP relay to the test PostgreSQL server whose answers can be held
/// back: a replica listening through it hears no notification while they
/// are held, so its policy view is stale as it is while a notification is
/// on its way or its listener reconnects.
pub struct HeldRelay {
    port: u16,
    held: Arc<std::sync::atomic::AtomicBool>,
}

impl HeldRelay {
    pub async fn to_postgres() -> HeldRelay {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let server = server_url();
        let upstream = server.rsplit('@').next().unwrap().to_string();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let held = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let holding = Arc::clone(&held);
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = tokio::net::TcpStream::connect(&upstream).await else {
                    continue;
                };
                let (mut client_reads, mut client_writes) = client.into_split();
                let (mut server_reads, mut server_writes) = server.into_split();
                tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut client_reads, &mut server_writes).await;
                });
                let holding = Arc::clone(&holding);
                tokio::spawn(async move {
                    let mut buffer = vec![0u8; 16 * 1024];
                    while let Ok(read) = server_reads.read(&mut buffer).await {
                        if read == 0 {
                            break;
                        }
                        while holding.load(std::sync::atomic::Ordering::SeqCst) {
                            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                        }
                        if client_writes.write_all(&buffer[..read]).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        HeldRelay { port, held }
    }

    /// The URL of `db` through the relay.
    pub fn url_of(&self, db: &TestDb) -> String {
        let server = server_url();
        let (user, _) = server.rsplit_once('@').unwrap();
        format!("{user}@127.0.0.1:{}/{}", self.port, db.name)
    }

    pub fn hold(&self) {
        self.held.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn release(&self) {
        self.held.store(false, std::sync::atomic::Ordering::SeqCst);
    }
}
