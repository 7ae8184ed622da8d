//! Typed settings from environment and flags, validated once at start-up.
//!
//! Every setting is read as text (clap gives the flag or the environment
//! variable) and validated here, so that an error names the variable an
//! operator actually set.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use clap::Args;
use ipnet::IpNet;

pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/playgate";

use crate::domain::{parse_network, Login};
pub use crate::domain::{LimitPolicy, OnDbError};
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
    /// `deny` or `allow` new sessions while the database is unreachable.
    #[arg(long, env = "PLAYGATE_ON_DB_ERROR", global = true)]
    pub on_db_error: Option<String>,
    /// Comma-separated networks whose X-Forwarded-For / X-Real-IP are believed.
    #[arg(long, env = "PLAYGATE_TRUSTED_PROXIES", global = true)]
    pub trusted_proxies: Option<String>,
    /// Comma-separated networks allowed to call /hook/* (empty = anyone).
    #[arg(long, env = "PLAYGATE_HOOK_NETWORKS", global = true)]
    pub hook_networks: Option<String>,
    /// Shared secret for OvenMediaEngine's X-OME-Signature.
    #[arg(
        long,
        env = "PLAYGATE_OME_SECRET",
        global = true,
        hide_env_values = true
    )]
    pub ome_secret: Option<String>,
    /// Ministra/Stalker portal URL for tokens playgate does not know.
    #[arg(long, env = "PLAYGATE_MINISTRA_URL", global = true)]
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
    /// Seconds between readings of the cluster-wide gauges from PostgreSQL.
    #[arg(long, env = "PLAYGATE_STATS_INTERVAL", global = true)]
    pub stats_interval: Option<String>,
    /// Failed credentials from one IP before its requests are refused (`rate_limited`); 0 = off.
    #[arg(long, env = "PLAYGATE_AUTH_FAILURE_LIMIT", global = true)]
    pub auth_failure_limit: Option<String>,
    /// Seconds over which failed credentials are counted.
    #[arg(long, env = "PLAYGATE_AUTH_FAILURE_WINDOW", global = true)]
    pub auth_failure_window: Option<String>,
    /// Milliseconds a hook waits for PostgreSQL before answering as if it were down.
    #[arg(long, env = "PLAYGATE_DB_TIMEOUT_MS", global = true)]
    pub db_timeout_ms: Option<String>,
    /// Seconds an active session is kept alive through a database outage.
    #[arg(long, env = "PLAYGATE_OUTAGE_GRACE", global = true)]
    pub outage_grace: Option<String>,
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
    pub on_db_error: OnDbError,
    pub trusted_proxies: Vec<IpNet>,
    pub hook_networks: Vec<IpNet>,
    pub ome_secret: Option<String>,
    pub ministra_url: Option<String>,
    pub bootstrap_admin: Option<(String, String)>,
    pub history_days: u32,
    pub metrics_max_streams: usize,
    pub sweep_interval: Duration,
    pub stats_interval: Duration,
    pub auth_failure_limit: u32,
    pub auth_failure_window: Duration,
    pub db_timeout: Duration,
    pub outage_grace: Duration,
    pub migrate_on_start: bool,
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

fn default_trusted_proxies() -> Vec<IpNet> {
    [
        "127.0.0.0/8",
        "::1/128",
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "fc00::/7",
    ]
    .iter()
    .map(|net| net.parse().expect("static network"))
    .collect()
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
        let hook_networks = match non_empty(&args.hook_networks) {
            Some(text) => parse_networks("PLAYGATE_HOOK_NETWORKS", text)?,
            None => Vec::new(),
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
            on_db_error,
            trusted_proxies,
            hook_networks,
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
            .field("on_db_error", &self.on_db_error)
            .field("trusted_proxies", &self.trusted_proxies)
            .field("hook_networks", &self.hook_networks)
            .field(
                "ome_secret",
                &self.ome_secret.as_ref().map(|_| "[redacted]"),
            )
            .field("ministra_url", &self.ministra_url)
            .field(
                "bootstrap_admin",
                &self.bootstrap_admin.as_ref().map(|(login, _)| login),
            )
            .field("history_days", &self.history_days)
            .field("metrics_max_streams", &self.metrics_max_streams)
            .field("sweep_interval", &self.sweep_interval)
            .field("stats_interval", &self.stats_interval)
            .field("auth_failure_limit", &self.auth_failure_limit)
            .field("auth_failure_window", &self.auth_failure_window)
            .field("db_timeout", &self.db_timeout)
            .field("outage_grace", &self.outage_grace)
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
        assert!(settings
            .trusted_proxies
            .iter()
            .any(|net| net.contains(&"10.1.2.3".parse::<std::net::IpAddr>().unwrap())));
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
            ..Default::default()
        };
        let text = format!("{:?}", Settings::from_args(&args).unwrap());
        for secret in ["s3cr3t", "hunter2", "omesecret", "l1st3n", "st4ts"] {
            assert!(!text.contains(secret), "{text}");
        }
        assert!(text.contains("postgres://app:[redacted]@db:5432/playgate"));
    }

    #[test]
    fn networks_are_normalised() {
        let nets = parse_networks("X", "10.1.2.3/16, 2001:db8::1, 192.0.2.7").unwrap();
        assert_eq!(nets[0].to_string(), "10.1.0.0/16");
        assert_eq!(nets[1].to_string(), "2001:db8::1/128");
        assert_eq!(nets[2].to_string(), "192.0.2.7/32");
    }
}
