//! Typed settings from environment and flags, validated once at start-up.
//!
//! Every setting is read as text (clap gives the flag or the environment
//! variable) and validated here, so that an error names the variable an
//! operator actually set.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use ipnet::IpNet;

pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/playgate";
/// A viewer cookie key shorter than this is guessable.
const MIN_VIEWER_COOKIE_SECRET: usize = 32;

use crate::domain::{parse_network, Login};
pub use crate::domain::{
    redact_database_url, redact_url, HlsContinuation, LimitPolicy, OnDbError, SessionCommit,
    Zapping,
};
use crate::store::{DatabaseSettings, Endpoint};

/// The raw settings, as flags of `serve` or environment variables.
#[derive(Args, Clone, Debug, Default)]
pub struct SettingsArgs {
    /// PostgreSQL connection URL.
    #[arg(long, env = "DATABASE_URL", global = true, hide_env_values = true)]
    pub database_url: Option<String>,
    /// Direct PostgreSQL connection for LISTEN and migrations (default: DATABASE_URL).
    #[arg(
        long,
        env = "PLAYGATE_LISTEN_DATABASE_URL",
        global = true,
        hide_env_values = true
    )]
    pub listen_database_url: Option<String>,
    /// PostgreSQL for the statistics API and the timeline, e.g. a replica (default: DATABASE_URL).
    #[arg(
        long,
        env = "PLAYGATE_STATS_DATABASE_URL",
        global = true,
        hide_env_values = true
    )]
    pub stats_database_url: Option<String>,
    /// `on`, or `off` behind a transaction pooler (no named prepared statements, no startup options).
    #[arg(long, env = "PLAYGATE_DB_PREPARED", global = true)]
    pub db_prepared: Option<String>,
    /// Address the HTTP server listens on.
    #[arg(long, env = "PLAYGATE_LISTEN", global = true)]
    pub listen: Option<String>,
    /// Seconds an allow answer holds before the streamer must ask again.
    #[arg(long, env = "PLAYGATE_SESSION_DURATION", global = true)]
    pub session_duration: Option<String>,
    /// Extra seconds a session stays active without a refresh.
    #[arg(long, env = "PLAYGATE_SESSION_GRACE", global = true)]
    pub session_grace: Option<String>,
    /// `reject_new` or `kick_oldest`.
    #[arg(long, env = "PLAYGATE_LIMIT_POLICY", global = true)]
    pub limit_policy: Option<String>,
    /// `durable` (default) or `async`: whether an admission waits for its commit to reach the disk.
    #[arg(long, env = "PLAYGATE_SESSION_COMMIT", global = true)]
    pub session_commit: Option<String>,
    /// `deny` or `allow` new sessions while the database is unreachable.
    #[arg(long, env = "PLAYGATE_ON_DB_ERROR", global = true)]
    pub on_db_error: Option<String>,
    /// Comma-separated networks whose client-address header is believed (default: loopback).
    #[arg(long, env = "PLAYGATE_TRUSTED_PROXIES", global = true)]
    pub trusted_proxies: Option<String>,
    /// Comma-separated networks allowed to call /hook/* (default: loopback and private ranges; `*` = anyone).
    #[arg(long, env = "PLAYGATE_HOOK_NETWORKS", global = true)]
    pub hook_networks: Option<String>,
    /// The header in which the proxy sends the original URI to forward-auth (default X-Original-URI).
    #[arg(long, env = "PLAYGATE_FORWARD_AUTH_URI_HEADER", global = true)]
    pub forward_auth_uri_header: Option<String>,
    /// The header in which a trusted proxy sends the client address (default X-Real-IP).
    #[arg(long, env = "PLAYGATE_FORWARD_AUTH_IP_HEADER", global = true)]
    pub forward_auth_ip_header: Option<String>,
    /// `ip` or `strict`: whether HLS segments without credentials may continue a session by stream, client IP and user agent.
    #[arg(long, env = "PLAYGATE_HLS_CONTINUATION", global = true)]
    pub hls_continuation: Option<String>,
    /// `replace` (default) or `count`: whether a start past a user's limit ends the same device's session on another stream (channel switching).
    #[arg(long, env = "PLAYGATE_ZAPPING", global = true)]
    pub zapping: Option<String>,
    /// Seconds of tolerance on both ends of a signed link's window (60).
    #[arg(long, env = "PLAYGATE_LINK_SKEW", global = true)]
    pub link_skew: Option<String>,
    /// Active sessions of the whole service at most (unset: no cap).
    #[arg(long, env = "PLAYGATE_MAX_VIEWERS", global = true)]
    pub max_viewers: Option<String>,
    /// HMAC key of the HLS viewer cookie, the same on every replica (default: one kept in the database).
    #[arg(
        long,
        env = "PLAYGATE_VIEWER_COOKIE_SECRET",
        global = true,
        hide_env_values = true
    )]
    pub viewer_cookie_secret: Option<String>,
    /// Shared secret for OvenMediaEngine's X-OME-Signature.
    #[arg(
        long,
        env = "PLAYGATE_OME_SECRET",
        global = true,
        hide_env_values = true
    )]
    pub ome_secret: Option<String>,
    /// Ministra/Stalker portal URL for tokens playgate does not know.
    #[arg(
        long,
        env = "PLAYGATE_MINISTRA_URL",
        global = true,
        hide_env_values = true
    )]
    pub ministra_url: Option<String>,
    /// `login:password` of an admin created when no admin exists.
    #[arg(
        long,
        env = "PLAYGATE_BOOTSTRAP_ADMIN",
        global = true,
        hide_env_values = true
    )]
    pub bootstrap_admin: Option<String>,
    /// Days ended sessions are kept.
    #[arg(long, env = "PLAYGATE_HISTORY_DAYS", global = true)]
    pub history_days: Option<String>,
    /// Distinct stream label values before folding into "other".
    #[arg(long, env = "PLAYGATE_METRICS_MAX_STREAMS", global = true)]
    pub metrics_max_streams: Option<String>,
    /// Maximum PostgreSQL connections of this replica.
    #[arg(long, env = "PLAYGATE_DB_POOL_SIZE", global = true)]
    pub db_pool_size: Option<String>,
    /// Seconds between sweeps that end timed-out sessions.
    #[arg(long, env = "PLAYGATE_SWEEP_INTERVAL", global = true)]
    pub sweep_interval: Option<String>,
    /// Seconds a drop call to a streamer's control API is retried before it is given up (300).
    #[arg(long, env = "PLAYGATE_STREAMER_CALL_RETRY", global = true)]
    pub streamer_call_retry: Option<String>,
    /// Seconds between readings of the cluster-wide gauges from PostgreSQL.
    #[arg(long, env = "PLAYGATE_STATS_INTERVAL", global = true)]
    pub stats_interval: Option<String>,
    /// Failed credentials from one IP before its requests are refused (`rate_limited`); 0 = off.
    #[arg(long, env = "PLAYGATE_AUTH_FAILURE_LIMIT", global = true)]
    pub auth_failure_limit: Option<String>,
    /// Seconds over which failed credentials are counted.
    #[arg(long, env = "PLAYGATE_AUTH_FAILURE_WINDOW", global = true)]
    pub auth_failure_window: Option<String>,
    /// bcrypt verifications run at once (default: one per core); beyond, `rate_limited`.
    #[arg(long, env = "PLAYGATE_BCRYPT_CONCURRENCY", global = true)]
    pub bcrypt_concurrency: Option<String>,
    /// Failed credentials one /hook/decide caller may send, whatever `ip` it names; 0 = off.
    #[arg(long, env = "PLAYGATE_AUTH_FAILURE_CALLER_LIMIT", global = true)]
    pub auth_failure_caller_limit: Option<String>,
    /// Milliseconds a hook waits for PostgreSQL before answering as if it were down.
    #[arg(long, env = "PLAYGATE_DB_TIMEOUT_MS", global = true)]
    pub db_timeout_ms: Option<String>,
    /// Seconds an active session is kept alive through a database outage.
    #[arg(long, env = "PLAYGATE_OUTAGE_GRACE", global = true)]
    pub outage_grace: Option<String>,
    /// MaxMind-format (.mmdb) country database: GeoLite2/GeoIP2 Country, DB-IP or ip-location-db (unset: every address is XX).
    #[arg(long, env = "PLAYGATE_GEOIP_COUNTRY_DB", global = true)]
    pub geoip_country_db: Option<String>,
    /// MaxMind-format (.mmdb) ASN database, e.g. GeoLite2 ASN (unset: every address is AS 0).
    #[arg(long, env = "PLAYGATE_GEOIP_ASN_DB", global = true)]
    pub geoip_asn_db: Option<String>,
    /// `true` lets webhooks reach link-local and cloud metadata addresses (169.254.0.0/16, fe80::/10, metadata.google.internal, …); default false.
    #[arg(long, env = "PLAYGATE_WEBHOOK_ALLOW_LINK_LOCAL", global = true)]
    pub webhook_allow_link_local: Option<String>,
    /// Comma-separated networks webhook receivers may be on (default: any address but link-local and metadata ones).
    #[arg(long, env = "PLAYGATE_WEBHOOK_NETWORKS", global = true)]
    pub webhook_networks: Option<String>,
    /// Do not apply pending migrations at start-up.
    #[arg(long, global = true)]
    pub no_migrate: bool,
}

#[derive(Clone)]
pub struct Settings {
    /// Every PostgreSQL endpoint, the pool size and how statements are sent.
    pub database: DatabaseSettings,
    pub listen: SocketAddr,
    pub session_duration: Duration,
    pub session_grace: Duration,
    pub limit_policy: LimitPolicy,
    pub session_commit: SessionCommit,
    pub on_db_error: OnDbError,
    pub trusted_proxies: Vec<IpNet>,
    pub hook_networks: HookNetworks,
    /// Lower-case header names (HTTP header names are case-insensitive).
    pub forward_auth_uri_header: String,
    pub forward_auth_ip_header: String,
    pub hls_continuation: HlsContinuation,
    pub zapping: Zapping,
    /// Tolerance on both ends of a signed link's window (SPEC §9).
    pub link_skew: Duration,
    /// The whole service's cap on active sessions (SPEC §11).
    pub max_viewers: Option<i32>,
    /// None: the key kept in the database (`store::viewer_cookie`).
    pub viewer_cookie_secret: Option<String>,
    pub ome_secret: Option<String>,
    pub ministra_url: Option<String>,
    pub bootstrap_admin: Option<(String, String)>,
    pub history_days: u32,
    pub metrics_max_streams: usize,
    pub sweep_interval: Duration,
    /// How long a drop call is retried (SPEC §12: 5 minutes).
    pub streamer_call_retry: Duration,
    pub stats_interval: Duration,
    pub auth_failure_limit: u32,
    pub auth_failure_window: Duration,
    pub auth_failure_caller_limit: u32,
    pub bcrypt_concurrency: usize,
    pub db_timeout: Duration,
    pub outage_grace: Duration,
    pub geoip: GeoIpSettings,
    /// Webhook deliveries (SPEC §12); only `allow_link_local` is read from
    /// the environment, the rest are the contract's numbers.
    pub webhooks: WebhookSettings,
    pub migrate_on_start: bool,
}

/// How deliveries are made (SPEC §12); only `allow_link_local` is an
/// operator's setting (`PLAYGATE_WEBHOOK_ALLOW_LINK_LOCAL`), the rest are
/// the contract's numbers, shortened by tests.
#[derive(Clone, Debug)]
pub struct WebhookSettings {
    /// Link-local and cloud metadata receivers allowed.
    pub allow_link_local: bool,
    /// `PLAYGATE_WEBHOOK_NETWORKS`: receivers only there (None: anywhere).
    pub networks: Option<Vec<IpNet>>,
    /// The first retry's delay; doubled for each next one (5 s).
    pub retry_base: Duration,
    /// How long a claimed attempt is this worker's: longer than `timeout`.
    pub lease: Duration,
    /// How long a receiver has to answer (5 s).
    pub timeout: Duration,
    /// How often due attempts are looked for.
    pub poll_interval: Duration,
    /// Deliveries under way at once on this replica.
    pub max_in_flight: usize,
}

impl Default for WebhookSettings {
    fn default() -> WebhookSettings {
        WebhookSettings {
            allow_link_local: false,
            networks: None,
            retry_base: Duration::from_secs(5),
            lease: Duration::from_secs(30),
            timeout: Duration::from_secs(5),
            poll_interval: Duration::from_millis(200),
            max_in_flight: 256,
        }
    }
}

/// The GeoIP database files (SPEC §10). Only named here: `serve` opens them
/// at start-up (`GeoIp::open`, whose error names the variable), so that
/// `migrate` and `healthcheck` run where the files are not mounted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GeoIpSettings {
    pub country_db: Option<PathBuf>,
    pub asn_db: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
#[error("{variable}: {message}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub message: String,
}

fn invalid(variable: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        variable,
        message: message.into(),
    }
}

fn non_empty(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

fn parse_number<T: std::str::FromStr + PartialOrd + fmt::Display + Copy>(
    variable: &'static str,
    value: &Option<String>,
    default: T,
    min: T,
    max: T,
) -> Result<T, ConfigError> {
    let Some(text) = non_empty(value) else {
        return Ok(default);
    };
    let number: T = text
        .parse()
        .map_err(|_| invalid(variable, format!("'{text}' is not a whole number")))?;
    if number < min || number > max {
        return Err(invalid(
            variable,
            format!("{number} is out of range ({min}..={max})"),
        ));
    }
    Ok(number)
}

/// Parses a comma-separated list of networks; a bare address is a /32 or /128.
pub fn parse_networks(variable: &'static str, text: &str) -> Result<Vec<IpNet>, ConfigError> {
    text.split(',')
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .map(|part| {
            parse_network(part)
                .ok_or_else(|| invalid(variable, format!("'{part}' is not an IP network")))
        })
        .collect()
}

fn static_networks(networks: &[&str]) -> Vec<IpNet> {
    networks
        .iter()
        .map(|net| net.parse().expect("static network"))
        .collect()
}

/// Only the local proxy's headers are believed unless an operator names more
/// (SPEC §3): a header from anyone else is the client's to choose.
fn default_trusted_proxies() -> Vec<IpNet> {
    static_networks(&["127.0.0.0/8", "::1/128"])
}

/// Where streamers and ingress controllers live (SPEC §3).
fn default_hook_networks() -> Vec<IpNet> {
    static_networks(&[
        "127.0.0.0/8",
        "::1/128",
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "fc00::/7",
    ])
}

/// Who may call `/hook/*` (`PLAYGATE_HOOK_NETWORKS`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HookNetworks {
    /// `*`: anyone (warned about at start-up).
    Anyone,
    Only(Vec<IpNet>),
}

impl HookNetworks {
    pub fn allows(&self, ip: Option<IpAddr>) -> bool {
        match self {
            HookNetworks::Anyone => true,
            HookNetworks::Only(networks) => {
                ip.is_some_and(|ip| networks.iter().any(|network| network.contains(&ip)))
            }
        }
    }
}

fn parse_hook_networks(text: Option<&str>) -> Result<HookNetworks, ConfigError> {
    const VARIABLE: &str = "PLAYGATE_HOOK_NETWORKS";
    match text {
        None => Ok(HookNetworks::Only(default_hook_networks())),
        Some("*") => Ok(HookNetworks::Anyone),
        Some(text) if text.split(',').any(|part| part.trim() == "*") => Err(invalid(
            VARIABLE,
            "'*' (anyone) cannot be combined with networks",
        )),
        Some(text) => Ok(HookNetworks::Only(parse_networks(VARIABLE, text)?)),
    }
}

/// A header name as HTTP defines it (RFC 9110 token), lower-cased.
fn parse_header_name(
    variable: &'static str,
    value: &Option<String>,
    default: &str,
) -> Result<String, ConfigError> {
    let Some(name) = non_empty(value) else {
        return Ok(default.to_string());
    };
    let is_token_char = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if !name.chars().all(is_token_char) {
        return Err(invalid(
            variable,
            format!("'{name}' is not an HTTP header name"),
        ));
    }
    Ok(name.to_ascii_lowercase())
}

impl Settings {
    pub fn from_args(args: &SettingsArgs) -> Result<Settings, ConfigError> {
        let database = database_settings(args)?;

        let listen_text = non_empty(&args.listen).unwrap_or("0.0.0.0:8080");
        let listen = listen_text.parse().map_err(|_| {
            invalid(
                "PLAYGATE_LISTEN",
                format!("'{listen_text}' is not an address:port"),
            )
        })?;

        let limit_policy = match non_empty(&args.limit_policy).unwrap_or("reject_new") {
            "reject_new" => LimitPolicy::RejectNew,
            "kick_oldest" => LimitPolicy::KickOldest,
            other => {
                return Err(invalid(
                    "PLAYGATE_LIMIT_POLICY",
                    format!("'{other}' is not reject_new or kick_oldest"),
                ))
            }
        };
        let session_commit = match non_empty(&args.session_commit).unwrap_or("durable") {
            "durable" => SessionCommit::Durable,
            "async" => SessionCommit::Async,
            other => {
                return Err(invalid(
                    "PLAYGATE_SESSION_COMMIT",
                    format!("'{other}' is not durable or async"),
                ))
            }
        };
        let on_db_error = match non_empty(&args.on_db_error).unwrap_or("deny") {
            "deny" => OnDbError::Deny,
            "allow" => OnDbError::Allow,
            other => {
                return Err(invalid(
                    "PLAYGATE_ON_DB_ERROR",
                    format!("'{other}' is not deny or allow"),
                ))
            }
        };

        let trusted_proxies = match non_empty(&args.trusted_proxies) {
            Some(text) => parse_networks("PLAYGATE_TRUSTED_PROXIES", text)?,
            None => default_trusted_proxies(),
        };
        let hook_networks = parse_hook_networks(non_empty(&args.hook_networks))?;
        let forward_auth_uri_header = parse_header_name(
            "PLAYGATE_FORWARD_AUTH_URI_HEADER",
            &args.forward_auth_uri_header,
            "x-original-uri",
        )?;
        let forward_auth_ip_header = parse_header_name(
            "PLAYGATE_FORWARD_AUTH_IP_HEADER",
            &args.forward_auth_ip_header,
            "x-real-ip",
        )?;

        let hls_continuation = match non_empty(&args.hls_continuation).unwrap_or("ip") {
            "ip" => HlsContinuation::Ip,
            "strict" => HlsContinuation::Strict,
            other => {
                return Err(invalid(
                    "PLAYGATE_HLS_CONTINUATION",
                    format!("'{other}' is not ip or strict"),
                ))
            }
        };
        let zapping = match non_empty(&args.zapping).unwrap_or("replace") {
            "replace" => Zapping::Replace,
            "count" => Zapping::Count,
            other => {
                return Err(invalid(
                    "PLAYGATE_ZAPPING",
                    format!("'{other}' is not replace or count"),
                ))
            }
        };
        let max_viewers = match non_empty(&args.max_viewers) {
            Some(_) => Some(parse_number(
                "PLAYGATE_MAX_VIEWERS",
                &args.max_viewers,
                0,
                0,
                i32::MAX,
            )?),
            None => None,
        };
        let viewer_cookie_secret = match non_empty(&args.viewer_cookie_secret) {
            Some(secret) if secret.len() < MIN_VIEWER_COOKIE_SECRET => {
                return Err(invalid(
                    "PLAYGATE_VIEWER_COOKIE_SECRET",
                    format!("shorter than {MIN_VIEWER_COOKIE_SECRET} characters"),
                ))
            }
            secret => secret.map(str::to_string),
        };

        let ministra_url = match non_empty(&args.ministra_url) {
            Some(url) if url.starts_with("http://") || url.starts_with("https://") => {
                Some(url.trim_end_matches('/').to_string())
            }
            Some(url) => {
                return Err(invalid(
                    "PLAYGATE_MINISTRA_URL",
                    format!("'{url}' is not an http(s) URL"),
                ))
            }
            None => None,
        };

        let bootstrap_admin = match non_empty(&args.bootstrap_admin) {
            Some(pair) => {
                let (login, password) = pair
                    .split_once(':')
                    .filter(|(login, password)| !login.is_empty() && !password.is_empty())
                    .ok_or_else(|| {
                        invalid("PLAYGATE_BOOTSTRAP_ADMIN", "expected login:password")
                    })?;
                if Login::parse(login).is_none() {
                    return Err(invalid(
                        "PLAYGATE_BOOTSTRAP_ADMIN",
                        "login must be 1-64 characters of A-Z a-z 0-9 . _ @ -",
                    ));
                }
                Some((login.to_string(), password.to_string()))
            }
            None => None,
        };

        let webhook_allow_link_local = match non_empty(&args.webhook_allow_link_local) {
            None | Some("false") => false,
            Some("true") => true,
            Some(other) => {
                return Err(invalid(
                    "PLAYGATE_WEBHOOK_ALLOW_LINK_LOCAL",
                    format!("'{other}' is not true or false"),
                ))
            }
        };

        Ok(Settings {
            database,
            listen,
            session_duration: Duration::from_secs(parse_number(
                "PLAYGATE_SESSION_DURATION",
                &args.session_duration,
                60,
                1,
                86_400,
            )?),
            session_grace: Duration::from_secs(parse_number(
                "PLAYGATE_SESSION_GRACE",
                &args.session_grace,
                30,
                0,
                86_400,
            )?),
            limit_policy,
            session_commit,
            on_db_error,
            trusted_proxies,
            hook_networks,
            forward_auth_uri_header,
            forward_auth_ip_header,
            hls_continuation,
            zapping,
            link_skew: Duration::from_secs(parse_number(
                "PLAYGATE_LINK_SKEW",
                &args.link_skew,
                60,
                0,
                3600,
            )?),
            max_viewers,
            viewer_cookie_secret,
            ome_secret: non_empty(&args.ome_secret).map(str::to_string),
            ministra_url,
            bootstrap_admin,
            history_days: parse_number("PLAYGATE_HISTORY_DAYS", &args.history_days, 90, 1, 36_500)?,
            metrics_max_streams: parse_number(
                "PLAYGATE_METRICS_MAX_STREAMS",
                &args.metrics_max_streams,
                1000,
                1,
                1_000_000,
            )?,
            sweep_interval: Duration::from_secs(parse_number(
                "PLAYGATE_SWEEP_INTERVAL",
                &args.sweep_interval,
                10,
                1,
                3600,
            )?),
            streamer_call_retry: Duration::from_secs(parse_number(
                "PLAYGATE_STREAMER_CALL_RETRY",
                &args.streamer_call_retry,
                300,
                1,
                86_400,
            )?),
            stats_interval: Duration::from_secs(parse_number(
                "PLAYGATE_STATS_INTERVAL",
                &args.stats_interval,
                10,
                1,
                3600,
            )?),
            auth_failure_limit: parse_number(
                "PLAYGATE_AUTH_FAILURE_LIMIT",
                &args.auth_failure_limit,
                20,
                0,
                1_000_000,
            )?,
            auth_failure_window: Duration::from_secs(parse_number(
                "PLAYGATE_AUTH_FAILURE_WINDOW",
                &args.auth_failure_window,
                60,
                1,
                86_400,
            )?),
            auth_failure_caller_limit: parse_number(
                "PLAYGATE_AUTH_FAILURE_CALLER_LIMIT",
                &args.auth_failure_caller_limit,
                100,
                0,
                1_000_000,
            )?,
            bcrypt_concurrency: parse_number(
                "PLAYGATE_BCRYPT_CONCURRENCY",
                &args.bcrypt_concurrency,
                std::thread::available_parallelism().map_or(1, usize::from),
                1,
                1024,
            )?,
            db_timeout: Duration::from_millis(parse_number(
                "PLAYGATE_DB_TIMEOUT_MS",
                &args.db_timeout_ms,
                2000,
                50,
                60_000,
            )?),
            outage_grace: Duration::from_secs(parse_number(
                "PLAYGATE_OUTAGE_GRACE",
                &args.outage_grace,
                300,
                0,
                86_400,
            )?),
            geoip: GeoIpSettings {
                country_db: non_empty(&args.geoip_country_db).map(PathBuf::from),
                asn_db: non_empty(&args.geoip_asn_db).map(PathBuf::from),
            },
            webhooks: WebhookSettings {
                allow_link_local: webhook_allow_link_local,
                networks: non_empty(&args.webhook_networks)
                    .map(|text| parse_networks("PLAYGATE_WEBHOOK_NETWORKS", text))
                    .transpose()?,
                ..WebhookSettings::default()
            },
            migrate_on_start: !args.no_migrate,
        })
    }
}

/// The endpoints of SPEC §13: each URL read (TLS root certificates
/// included) and named after the variable it came from.
fn database_settings(args: &SettingsArgs) -> Result<DatabaseSettings, ConfigError> {
    let endpoint = |variable: &'static str, url: &str| {
        Endpoint::parse(variable, url).map_err(|message| invalid(variable, message))
    };
    let main = endpoint(
        "DATABASE_URL",
        non_empty(&args.database_url).unwrap_or(DEFAULT_DATABASE_URL),
    )?;
    let listen = match non_empty(&args.listen_database_url) {
        Some(url) => endpoint("PLAYGATE_LISTEN_DATABASE_URL", url)?,
        None => main.clone(),
    };
    let stats = match non_empty(&args.stats_database_url) {
        Some(url) => endpoint("PLAYGATE_STATS_DATABASE_URL", url)?,
        None => main.clone(),
    };
    let prepared = match non_empty(&args.db_prepared).unwrap_or("on") {
        "on" => true,
        "off" => false,
        other => {
            return Err(invalid(
                "PLAYGATE_DB_PREPARED",
                format!("'{other}' is not on or off"),
            ))
        }
    };
    Ok(DatabaseSettings {
        main,
        listen,
        stats,
        prepared,
        pool_size: parse_number("PLAYGATE_DB_POOL_SIZE", &args.db_pool_size, 16, 1, 1000)?,
    })
}

/// Hides the database password and every other secret.
impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("database", &self.database)
            .field("listen", &self.listen)
            .field("session_duration", &self.session_duration)
            .field("session_grace", &self.session_grace)
            .field("limit_policy", &self.limit_policy)
            .field("session_commit", &self.session_commit)
            .field("on_db_error", &self.on_db_error)
            .field("trusted_proxies", &self.trusted_proxies)
            .field("hook_networks", &self.hook_networks)
            .field("forward_auth_uri_header", &self.forward_auth_uri_header)
            .field("forward_auth_ip_header", &self.forward_auth_ip_header)
            .field("hls_continuation", &self.hls_continuation)
            .field("zapping", &self.zapping)
            .field("link_skew", &self.link_skew)
            .field("max_viewers", &self.max_viewers)
            .field(
                "viewer_cookie_secret",
                &self.viewer_cookie_secret.as_ref().map(|_| "[redacted]"),
            )
            .field(
                "ome_secret",
                &self.ome_secret.as_ref().map(|_| "[redacted]"),
            )
            .field(
                "ministra_url",
                &self.ministra_url.as_deref().map(redact_url),
            )
            .field(
                "bootstrap_admin",
                &self.bootstrap_admin.as_ref().map(|(login, _)| login),
            )
            .field("history_days", &self.history_days)
            .field("metrics_max_streams", &self.metrics_max_streams)
            .field("sweep_interval", &self.sweep_interval)
            .field("streamer_call_retry", &self.streamer_call_retry)
            .field("stats_interval", &self.stats_interval)
            .field("auth_failure_limit", &self.auth_failure_limit)
            .field("auth_failure_window", &self.auth_failure_window)
            .field("auth_failure_caller_limit", &self.auth_failure_caller_limit)
            .field("bcrypt_concurrency", &self.bcrypt_concurrency)
            .field("db_timeout", &self.db_timeout)
            .field("outage_grace", &self.outage_grace)
            .field("geoip", &self.geoip)
            .field("webhooks", &self.webhooks)
            .field("migrate_on_start", &self.migrate_on_start)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_spec() {
        let settings = Settings::from_args(&SettingsArgs::default()).unwrap();
        assert_eq!(
            format!("{:?}", settings.database.main),
            DEFAULT_DATABASE_URL
        );
        assert!(settings.database.prepared);
        assert_eq!(settings.database.listen.setting, "DATABASE_URL");
        assert_eq!(settings.listen.to_string(), "0.0.0.0:8080");
        assert_eq!(settings.session_duration, Duration::from_secs(60));
        assert_eq!(settings.session_grace, Duration::from_secs(30));
        assert_eq!(settings.limit_policy, LimitPolicy::RejectNew);
        assert_eq!(settings.on_db_error, OnDbError::Deny);
        assert_eq!(settings.history_days, 90);
        let ip = |text: &str| text.parse::<IpAddr>().unwrap();
        let trusted = |text: &str| {
            settings
                .trusted_proxies
                .iter()
                .any(|n| n.contains(&ip(text)))
        };
        assert!(trusted("127.0.0.1") && trusted("::1"));
        assert!(!trusted("10.1.2.3") && !trusted("192.168.1.1"));
        for caller in [
            "127.0.0.1",
            "::1",
            "10.1.2.3",
            "172.20.0.1",
            "192.168.1.1",
            "fd00::1",
        ] {
            assert!(settings.hook_networks.allows(Some(ip(caller))), "{caller}");
        }
        assert!(!settings.hook_networks.allows(Some(ip("203.0.113.1"))));
        assert!(!settings.hook_networks.allows(None));
        assert_eq!(settings.auth_failure_caller_limit, 100);
        assert!(settings.bcrypt_concurrency >= 1);
        assert_eq!(settings.forward_auth_uri_header, "x-original-uri");
        assert_eq!(settings.forward_auth_ip_header, "x-real-ip");
        assert_eq!(settings.hls_continuation, HlsContinuation::Ip);
        assert_eq!(settings.zapping, Zapping::Replace);
        assert_eq!(settings.max_viewers, None);
        assert_eq!(settings.link_skew, Duration::from_secs(60));
        assert!(settings.viewer_cookie_secret.is_none());
        assert_eq!(settings.geoip, GeoIpSettings::default());
        assert!(!settings.webhooks.allow_link_local);
        assert_eq!(settings.webhooks.retry_base, Duration::from_secs(5));
        assert_eq!(settings.webhooks.timeout, Duration::from_secs(5));
        assert!(settings.webhooks.lease > settings.webhooks.timeout);
        let allowed = Settings::from_args(&SettingsArgs {
            webhook_allow_link_local: Some("true".into()),
            ..Default::default()
        })
        .unwrap();
        assert!(allowed.webhooks.allow_link_local);
        assert_eq!(settings.webhooks.networks, None);
        let local = Settings::from_args(&SettingsArgs {
            webhook_networks: Some("127.0.0.0/8, ::1".into()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(
            local.webhooks.networks.unwrap(),
            parse_networks("X", "127.0.0.0/8,::1/128").unwrap()
        );
    }

    #[test]
    fn geoip_databases_are_paths() {
        let settings = Settings::from_args(&SettingsArgs {
            geoip_country_db: Some(" /var/lib/geoip/GeoLite2-Country.mmdb ".into()),
            geoip_asn_db: Some("geo/asn.mmdb".into()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(
            settings.geoip.country_db.as_deref(),
            Some(std::path::Path::new("/var/lib/geoip/GeoLite2-Country.mmdb"))
        );
        assert_eq!(
            settings.geoip.asn_db.as_deref(),
            Some(std::path::Path::new("geo/asn.mmdb"))
        );
        assert!(format!("{settings:?}").contains("GeoLite2-Country.mmdb"));
        // Empty is unset, as for every other setting; a missing file is
        // refused by `serve`, not here (tests of GeoIp::open).
        let settings = Settings::from_args(&SettingsArgs {
            geoip_country_db: Some("  ".into()),
            geoip_asn_db: Some("/nonexistent/asn.mmdb".into()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(settings.geoip.country_db, None);
        assert!(settings.geoip.asn_db.is_some());
    }

    #[test]
    fn forward_auth_headers_and_hook_networks() {
        let settings = Settings::from_args(&SettingsArgs {
            forward_auth_uri_header: Some("X-Forwarded-Uri".into()),
            forward_auth_ip_header: Some(" X-Forwarded-For ".into()),
            hook_networks: Some("*".into()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(settings.forward_auth_uri_header, "x-forwarded-uri");
        assert_eq!(settings.forward_auth_ip_header, "x-forwarded-for");
        assert_eq!(settings.hook_networks, HookNetworks::Anyone);
        assert!(settings.hook_networks.allows(None));
    }

    #[test]
    fn invalid_values_name_the_variable() {
        let cases: Vec<(SettingsArgs, &str)> = vec![
            (
                SettingsArgs {
                    session_duration: Some("abc".into()),
                    ..Default::default()
                },
                "PLAYGATE_SESSION_DURATION",
            ),
            (
                SettingsArgs {
                    session_duration: Some("0".into()),
                    ..Default::default()
                },
                "PLAYGATE_SESSION_DURATION",
            ),
            (
                SettingsArgs {
                    limit_policy: Some("oldest".into()),
                    ..Default::default()
                },
                "PLAYGATE_LIMIT_POLICY",
            ),
            (
                SettingsArgs {
                    listen: Some("nowhere".into()),
                    ..Default::default()
                },
                "PLAYGATE_LISTEN",
            ),
            (
                SettingsArgs {
                    trusted_proxies: Some("10.0.0.0/33".into()),
                    ..Default::default()
                },
                "PLAYGATE_TRUSTED_PROXIES",
            ),
            (
                SettingsArgs {
                    hook_networks: Some("10.0.0.0/8, *".into()),
                    ..Default::default()
                },
                "PLAYGATE_HOOK_NETWORKS",
            ),
            (
                SettingsArgs {
                    forward_auth_uri_header: Some("X Original URI".into()),
                    ..Default::default()
                },
                "PLAYGATE_FORWARD_AUTH_URI_HEADER",
            ),
            (
                SettingsArgs {
                    forward_auth_ip_header: Some("X-Real-IP:".into()),
                    ..Default::default()
                },
                "PLAYGATE_FORWARD_AUTH_IP_HEADER",
            ),
            (
                SettingsArgs {
                    hls_continuation: Some("cookie".into()),
                    ..Default::default()
                },
                "PLAYGATE_HLS_CONTINUATION",
            ),
            (
                SettingsArgs {
                    zapping: Some("always".into()),
                    ..Default::default()
                },
                "PLAYGATE_ZAPPING",
            ),
            (
                SettingsArgs {
                    link_skew: Some("86400".into()),
                    ..Default::default()
                },
                "PLAYGATE_LINK_SKEW",
            ),
            (
                SettingsArgs {
                    max_viewers: Some("-1".into()),
                    ..Default::default()
                },
                "PLAYGATE_MAX_VIEWERS",
            ),
            (
                SettingsArgs {
                    max_viewers: Some("many".into()),
                    ..Default::default()
                },
                "PLAYGATE_MAX_VIEWERS",
            ),
            (
                SettingsArgs {
                    viewer_cookie_secret: Some("short".into()),
                    ..Default::default()
                },
                "PLAYGATE_VIEWER_COOKIE_SECRET",
            ),
            (
                SettingsArgs {
                    bootstrap_admin: Some("nopassword".into()),
                    ..Default::default()
                },
                "PLAYGATE_BOOTSTRAP_ADMIN",
            ),
            (
                SettingsArgs {
                    database_url: Some("postgres://a:b@h:notaport/x".into()),
                    ..Default::default()
                },
                "DATABASE_URL",
            ),
            (
                SettingsArgs {
                    on_db_error: Some("maybe".into()),
                    ..Default::default()
                },
                "PLAYGATE_ON_DB_ERROR",
            ),
            (
                SettingsArgs {
                    bcrypt_concurrency: Some("0".into()),
                    ..Default::default()
                },
                "PLAYGATE_BCRYPT_CONCURRENCY",
            ),
            (
                SettingsArgs {
                    auth_failure_caller_limit: Some("-1".into()),
                    ..Default::default()
                },
                "PLAYGATE_AUTH_FAILURE_CALLER_LIMIT",
            ),
            (
                SettingsArgs {
                    database_url: Some("postgres://db/x?sslmode=verify-everything".into()),
                    ..Default::default()
                },
                "DATABASE_URL",
            ),
            (
                SettingsArgs {
                    listen_database_url: Some(
                        "postgres://db/x?sslmode=verify-full&sslrootcert=/nonexistent.pem".into(),
                    ),
                    ..Default::default()
                },
                "PLAYGATE_LISTEN_DATABASE_URL",
            ),
            (
                SettingsArgs {
                    stats_database_url: Some("host=db sslmode=sometimes".into()),
                    ..Default::default()
                },
                "PLAYGATE_STATS_DATABASE_URL",
            ),
            (
                SettingsArgs {
                    db_prepared: Some("maybe".into()),
                    ..Default::default()
                },
                "PLAYGATE_DB_PREPARED",
            ),
            (
                SettingsArgs {
                    webhook_allow_link_local: Some("yes".into()),
                    ..Default::default()
                },
                "PLAYGATE_WEBHOOK_ALLOW_LINK_LOCAL",
            ),
            (
                SettingsArgs {
                    webhook_networks: Some("10.0.0.0/8, nowhere".into()),
                    ..Default::default()
                },
                "PLAYGATE_WEBHOOK_NETWORKS",
            ),
        ];
        for (args, variable) in cases {
            let error = Settings::from_args(&args).unwrap_err();
            assert_eq!(error.variable, variable);
            assert!(error.to_string().starts_with(variable), "{error}");
        }
    }

    #[test]
    fn debug_redacts_secrets() {
        let args = SettingsArgs {
            database_url: Some("postgres://app:s3cr3t@db:5432/playgate".into()),
            listen_database_url: Some("host=db password=l1st3n user=app".into()),
            stats_database_url: Some("postgres://app:st4ts@replica/playgate".into()),
            bootstrap_admin: Some("root:hunter2".into()),
            ome_secret: Some("omesecret".into()),
            viewer_cookie_secret: Some("viewer-cookie-secret-0123456789abcdef".into()),
            ..Default::default()
        };
        let text = format!("{:?}", Settings::from_args(&args).unwrap());
        for secret in [
            "s3cr3t",
            "hunter2",
            "omesecret",
            "viewer-cookie-secret",
            "l1st3n",
            "st4ts",
        ] {
            assert!(!text.contains(secret), "{text}");
        }
        assert!(text.contains("postgres://app:[redacted]@db:5432/playgate"));

        let args = SettingsArgs {
            database_url: Some("host=db user=app password=kv-s3cr3t dbname=playgate".into()),
            ministra_url: Some("http://portal:m1n1stra@portal.example/stalker_portal".into()),
            ..Default::default()
        };
        let text = format!("{:?}", Settings::from_args(&args).unwrap());
        for secret in ["kv-s3cr3t", "m1n1stra"] {
            assert!(!text.contains(secret), "{text}");
        }
        assert!(text.contains("host=db user=app password=[redacted] dbname=playgate"));
        assert!(text.contains("http://portal:[redacted]@portal.example/stalker_portal"));
    }

    #[test]
    fn networks_are_normalised() {
        let nets = parse_networks("X", "10.1.2.3/16, 2001:db8::1, 192.0.2.7").unwrap();
        assert_eq!(nets[0].to_string(), "10.1.0.0/16");
        assert_eq!(nets[1].to_string(), "2001:db8::1/128");
        assert_eq!(nets[2].to_string(), "192.0.2.7/32");
        // IPv4-mapped forms are the IPv4 networks they cover.
        let mapped = parse_networks("X", "::ffff:10.0.0.0/104, ::ffff:192.0.2.7").unwrap();
        assert_eq!(mapped[0].to_string(), "10.0.0.0/8");
        assert_eq!(mapped[1].to_string(), "192.0.2.7/32");
    }
}
