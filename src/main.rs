//! The `playgate` command line: serve | migrate | import-astra | healthcheck.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use playgate::{Application, Settings, SettingsArgs};

#[derive(Parser)]
#[command(
    name = "playgate",
    version,
    about = "Authorization backend for streaming servers"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    settings: SettingsArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP service (the default).
    Serve,
    /// Apply pending SQL migrations and exit.
    Migrate,
    /// Import users and packages from a Cesbo Astra configuration file
    /// (idempotent; see docs/migrating-from-astra.md).
    ImportAstra {
        /// Astra's configuration file (usually /etc/astra/astra.conf).
        file: PathBuf,
        /// Print what would change and write nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Exit 0 when the local server answers ready (for container probes).
    Healthcheck,
}

fn main() -> ExitCode {
    init_logging(std::env::var("RUST_LOG").ok().as_deref());
    let cli = Cli::parse();
    let settings = match Settings::from_args(&cli.settings) {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("playgate: invalid configuration: {e}");
            return ExitCode::from(2);
        }
    };
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => run_async(serve(settings)),
        Command::Migrate => run_async(migrate(settings)),
        Command::ImportAstra { file, dry_run } => run_async(import_astra(settings, file, dry_run)),
        Command::Healthcheck => healthcheck(&settings),
    }
}

/// `RUST_LOG` (default `info`), except that the database driver stays at
/// `info` unless `RUST_LOG` names it: at `debug`, tokio-postgres logs every
/// statement with its parameters, which include bcrypt hashes and token
/// digests. Asking for it by name (`RUST_LOG=debug,tokio_postgres=debug`)
/// is asking for them.
fn init_logging(rust_log: Option<&str>) {
    let mut builder =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"));
    let names_the_driver = rust_log.is_some_and(|filter| {
        let directives = filter.split('/').next().unwrap_or_default();
        directives.split(',').any(|directive| {
            let module = directive.split('=').next().unwrap_or_default().trim();
            module == "tokio_postgres" || module.starts_with("tokio_postgres::")
        })
    });
    if !names_the_driver {
        builder.filter_module("tokio_postgres", log::LevelFilter::Info);
    }
    builder.init();
}

fn run_async(task: impl std::future::Future<Output = ExitCode>) -> ExitCode {
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(task),
        Err(e) => {
            eprintln!("playgate: cannot start the runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(settings: Settings) -> ExitCode {
    log::info!("starting with {settings:?}");
    let application = match Application::build(settings).await {
        Ok(application) => application,
        Err(e) => {
            log::error!("cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    match application.run_until_stopped().await {
        Ok(()) => {
            log::info!("stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            log::error!("server failed: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn migrate(settings: Settings) -> ExitCode {
    let result = async {
        let direct = &settings.database.listen;
        playgate::store::ensure_database(direct).await?;
        playgate::app::migrate(direct).await
    }
    .await;
    match result {
        Ok(applied) if applied.is_empty() => {
            log::info!("database is up to date");
            ExitCode::SUCCESS
        }
        Ok(applied) => {
            log::info!("applied migrations {applied:?}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            log::error!("migration failed: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Parses the file (nothing written when it is malformed), creates and
/// migrates the database like `migrate`, then applies (or, with `--dry-run`,
/// only compares) in one transaction.
async fn import_astra(settings: Settings, file: PathBuf, dry_run: bool) -> ExitCode {
    let shown = file.display();
    let text = match std::fs::read_to_string(&file) {
        Ok(text) => text,
        Err(e) => {
            eprintln!("playgate: cannot read {shown}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let plan = match playgate::import::astra::parse(&text) {
        Ok(plan) => plan,
        Err(e) => {
            eprintln!("playgate: {shown}: {e}; nothing imported");
            return ExitCode::FAILURE;
        }
    };
    let result = async {
        let direct = &settings.database.listen;
        playgate::store::ensure_database(direct).await?;
        playgate::app::migrate(direct).await?;
        let pool = settings.database.create_pool()?;
        let mut client = pool.get().await?;
        Ok::<_, playgate::store::StoreError>(
            playgate::import::astra::apply(&mut client, &plan, dry_run).await,
        )
    }
    .await;
    match result {
        Ok(Ok(report)) => {
            println!(
                "{shown}: {} users, {} categories",
                plan.users.len(),
                plan.packages.len()
            );
            println!("{report}");
            ExitCode::SUCCESS
        }
        Ok(Err(e)) => {
            eprintln!("playgate: {shown}: {e}; nothing imported");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("playgate: import-astra: {e}; nothing imported");
            ExitCode::FAILURE
        }
    }
}

/// Plain HTTP/1.0 to /readyz on the local listen port: no HTTP client needed
/// in a minimal container image.
fn healthcheck(settings: &Settings) -> ExitCode {
    let mut address: SocketAddr = settings.listen;
    if address.ip().is_unspecified() {
        address.set_ip(match address.ip() {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
        });
    }
    let timeout = Duration::from_secs(3);
    let result = (|| -> std::io::Result<String> {
        let mut stream = TcpStream::connect_timeout(&address, timeout)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        stream.write_all(b"GET /readyz HTTP/1.0\r\nHost: localhost\r\n\r\n")?;
        let mut response = String::new();
        stream.read_to_string(&mut response)?;
        Ok(response)
    })();
    match result {
        Ok(response)
            if response.starts_with("HTTP/1.1 200") || response.starts_with("HTTP/1.0 200") =>
        {
            println!("ready");
            ExitCode::SUCCESS
        }
        Ok(response) => {
            println!("not ready: {}", response.lines().next().unwrap_or(""));
            ExitCode::FAILURE
        }
        Err(e) => {
            println!("not ready: {address}: {e}");
            ExitCode::FAILURE
        }
    }
}
