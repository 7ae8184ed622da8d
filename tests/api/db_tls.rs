//! TLS to PostgreSQL (SPEC §13): a private cluster with `ssl = on` and a
//! certificate signed by a CA made here with `openssl`, one without TLS, and
//! what each `sslmode` does against them.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;

use playgate::store::DatabaseSettings;

use crate::helpers::*;
use crate::private_pg::{missing, PrivatePostgres};

/// A CA, a server certificate it signed (localhost and 127.0.0.1), and a
/// second CA that signed nothing of ours.
struct Certificates {
    dir: PathBuf,
}

impl Certificates {
    fn make() -> Option<Certificates> {
        if Command::new("openssl").arg("version").output().is_err() {
            missing("openssl");
            return None;
        }
        let dir =
            std::env::temp_dir().join(format!("playgate-certs-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let certificates = Certificates { dir };
        for ca in ["ca", "other-ca"] {
            certificates.openssl(&[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-days",
                "2",
                "-subj",
                &format!("/CN=playgate test {ca}"),
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
                "-keyout",
                &format!("{ca}.key"),
                "-out",
                &format!("{ca}.pem"),
            ]);
        }
        certificates.openssl(&[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ]);
        std::fs::write(
            certificates.path("server.ext"),
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
             keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        certificates.openssl(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "server.ext",
            "-out",
            "server.pem",
        ]);
        Some(certificates)
    }

    fn openssl(&self, args: &[&str]) {
        let output = Command::new("openssl")
            .args(args)
            .current_dir(&self.dir)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn shown(&self, name: &str) -> String {
        self.path(name).display().to_string()
    }
}

impl Drop for Certificates {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn tls_cluster(certificates: &Certificates) -> Option<PrivatePostgres> {
    let cluster = PrivatePostgres::init()?;
    let cert = cluster.install_file(&certificates.path("server.pem"), "server.pem");
    let key = cluster.install_file(&certificates.path("server.key"), "server.key");
    cluster.set("ssl", "on");
    cluster.set("ssl_cert_file", &cert.display().to_string());
    cluster.set("ssl_key_file", &key.display().to_string());
    cluster.resume();
    Some(cluster)
}

/// `postgres://postgres@HOST:PORT/DB?QUERY` for the test database.
fn url(db: &TestDb, cluster: &PrivatePostgres, host: &str, query: &str) -> String {
    format!(
        "postgres://postgres@{host}:{}/{}?{query}",
        cluster.port, db.name
    )
}

/// Starts a replica with every URL set to `url`; its pool's connection is TLS or not.
async fn starts_with(db: &Arc<TestDb>, url: &str) -> bool {
    let url = url.to_string();
    let app = spawn_on(db.clone(), |settings| {
        settings.database = database_settings(&url, None, None, None);
    })
    .await;
    let encrypted: bool = app
        .db()
        .await
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    // And it works: a session is admitted in this database.
    let login: &'static str = format!("u{}", uuid::Uuid::new_v4().simple()).leak();
    app.create(user(login).token(login)).await;
    let decision = app
        .decide(with(
            play("news", "192.0.2.1"),
            serde_json::json!({"token": login}),
        ))
        .await;
    assert_eq!(reason(&decision), "ok");
    encrypted
}

/// The start-up error with these URLs.
async fn refused(db: &Arc<TestDb>, url: &str) -> String {
    refused_with(db, database_settings(url, None, None, None)).await
}

async fn refused_with(db: &Arc<TestDb>, database: DatabaseSettings) -> String {
    let url = format!("{:?}", database.main);
    match try_spawn_on(db.clone(), |settings| settings.database = database).await {
        Ok(_) => panic!("started with {url}"),
        Err(e) => e.to_string(),
    }
}

#[tokio::test]
async fn sslmode_and_sslrootcert_are_honoured() {
    let Some(certificates) = Certificates::make() else {
        return;
    };
    let Some(cluster) = tls_cluster(&certificates) else {
        return;
    };
    let db = TestDb::on(&cluster.server_url());
    let ca = certificates.shown("ca.pem");
    let other_ca = certificates.shown("other-ca.pem");

    // require: encrypted, no certificate check (the CA is unknown to us).
    assert!(starts_with(&db, &url(&db, &cluster, "127.0.0.1", "sslmode=require")).await);
    // No sslmode is libpq's prefer: encrypted when the server offers it.
    assert!(starts_with(&db, &url(&db, &cluster, "127.0.0.1", "")).await);
    // verify-full: the chain up to our CA and the host name localhost.
    let full = format!("sslmode=verify-full&sslrootcert={ca}");
    assert!(starts_with(&db, &url(&db, &cluster, "localhost", &full)).await);

    // A CA that did not sign the server's certificate.
    let wrong_ca = url(
        &db,
        &cluster,
        "localhost",
        &format!("sslmode=verify-full&sslrootcert={other_ca}"),
    );
    let error = refused(&db, &wrong_ca).await;
    assert!(
        error.starts_with("DATABASE_URL: ") && error.contains("UnknownIssuer"),
        "{error}"
    );
    // require with a root certificate checks the chain, as libpq does.
    let require_checked = url(
        &db,
        &cluster,
        "127.0.0.1",
        &format!("sslmode=require&sslrootcert={other_ca}"),
    );
    let error = refused(&db, &require_checked).await;
    assert!(error.contains("UnknownIssuer"), "{error}");

    // A name the certificate does not carry (the address is the server's):
    // verify-full refuses, verify-ca checks only the chain.
    let elsewhere = |mode: &str| {
        url(
            &db,
            &cluster,
            "db.example.invalid",
            &format!("hostaddr=127.0.0.1&sslmode={mode}&sslrootcert={ca}"),
        )
    };
    let error = refused(&db, &elsewhere("verify-full")).await;
    assert!(
        error.starts_with("DATABASE_URL: ") && error.contains("not valid for name"),
        "{error}"
    );
    assert!(starts_with(&db, &elsewhere("verify-ca")).await);

    // The listening connection (and the migrations on it) and the
    // statistics pool are checked too, each named by its variable.
    let good = url(&db, &cluster, "localhost", &full);
    let error = refused_with(&db, database_settings(&good, Some(&wrong_ca), None, None)).await;
    assert!(
        error.starts_with("PLAYGATE_LISTEN_DATABASE_URL: ") && error.contains("UnknownIssuer"),
        "{error}"
    );
    let error = refused_with(&db, database_settings(&good, None, Some(&wrong_ca), None)).await;
    assert!(
        error.starts_with("PLAYGATE_STATS_DATABASE_URL: ") && error.contains("UnknownIssuer"),
        "{error}"
    );
}

#[tokio::test]
async fn a_server_without_tls() {
    let Some(cluster) = PrivatePostgres::start() else {
        return;
    };
    let db = TestDb::on(&cluster.server_url());
    // prefer falls back to plain text…
    assert!(!starts_with(&db, &url(&db, &cluster, "127.0.0.1", "sslmode=prefer")).await);
    // …require does not start.
    let error = refused(&db, &url(&db, &cluster, "127.0.0.1", "sslmode=require")).await;
    assert!(
        error.starts_with("DATABASE_URL: ") && error.contains("server does not support TLS"),
        "{error}"
    );
}

/// The real binary, as an operator would start it: a root certificate that
/// cannot be read and an unknown sslmode stop it before any connection.
#[test]
fn bad_tls_settings_stop_the_binary_naming_the_variable() {
    for (variable, url, expected) in [
        (
            "DATABASE_URL",
            "postgres://postgres@127.0.0.1/x?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem",
            "sslrootcert /nonexistent/ca.pem",
        ),
        (
            "PLAYGATE_STATS_DATABASE_URL",
            "postgres://postgres@127.0.0.1/x?sslmode=always",
            "sslmode 'always'",
        ),
        (
            "PLAYGATE_LISTEN_DATABASE_URL",
            "host=127.0.0.1 dbname=x sslmode=verify-ca sslrootcert=Cargo.toml",
            "sslrootcert Cargo.toml: no PEM certificate",
        ),
    ] {
        let mut command = Command::new(env!("CARGO_BIN_EXE_playgate"));
        for (name, _) in std::env::vars() {
            if name.starts_with("PLAYGATE_") || name == "DATABASE_URL" {
                command.env_remove(name);
            }
        }
        let output = command
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .arg("serve")
            .env(variable, url)
            .env("PLAYGATE_LISTEN", "127.0.0.1:0")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{stderr}");
        assert!(
            stderr.contains(&format!("invalid configuration: {variable}: "))
                && stderr.contains(expected),
            "{stderr}"
        );
    }
}
