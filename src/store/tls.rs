//! TLS to PostgreSQL with libpq's `sslmode` and `sslrootcert` (SPEC §13).
//! tokio-postgres reads only `disable`, `prefer` and `require` and rejects
//! `sslrootcert`, so both keys are taken out of the URL here and the rest is
//! left to tokio-postgres; the certificate checks are rustls verifiers.

use std::fmt;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio_postgres::config::SslMode as DriverSslMode;
use tokio_postgres_rustls::MakeRustlsConnect;

/// libpq's `sslmode`, as far as playgate honours it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    /// TLS when the server offers it, unverified (libpq's default).
    Prefer,
    /// TLS or no connection; verified like `VerifyCa` when a root certificate is given.
    Require,
    /// The chain must lead to a root; the host name is not checked.
    VerifyCa,
    /// The chain and the host name.
    VerifyFull,
}

impl SslMode {
    fn parse(text: &str) -> Result<SslMode, String> {
        Ok(match text {
            "disable" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            other => {
                return Err(format!(
                "sslmode '{other}' is not one of disable, prefer, require, verify-ca, verify-full"
            ))
            }
        })
    }

    /// What tokio-postgres is told: whether TLS is tried, and whether it is required.
    pub(super) fn driver(self) -> DriverSslMode {
        match self {
            SslMode::Disable => DriverSslMode::Disable,
            SslMode::Prefer => DriverSslMode::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => DriverSslMode::Require,
        }
    }
}

/// A connection URL (or libpq key=value string) with `sslmode` and
/// `sslrootcert` taken out.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct TlsKeys {
    /// The rest, for tokio-postgres.
    pub rest: String,
    pub sslmode: Option<String>,
    pub sslrootcert: Option<String>,
}

/// Keys libpq knows that would otherwise fail as "unknown option" without saying why.
const UNSUPPORTED: [&str; 4] = ["sslcert", "sslkey", "sslpassword", "sslcrl"];

pub(super) fn take_tls_keys(url: &str) -> Result<TlsKeys, String> {
    let mut keys = TlsKeys {
        rest: String::new(),
        sslmode: None,
        sslrootcert: None,
    };
    let mut keep = |key: &str, value: String| -> Result<bool, String> {
        if UNSUPPORTED.contains(&key) {
            return Err(format!(
                "{key} is not supported (client certificates are not)"
            ));
        }
        match key {
            "sslmode" => keys.sslmode = Some(value),
            "sslrootcert" => keys.sslrootcert = Some(value),
            _ => return Ok(true),
        }
        Ok(false)
    };
    let rest = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        match url.split_once('?') {
            None => url.to_string(),
            Some((base, query)) => {
                let mut kept = Vec::new();
                for part in query.split('&').filter(|part| !part.is_empty()) {
                    let (key, value) = part.split_once('=').unwrap_or((part, ""));
                    if keep(&percent_decode(key)?, percent_decode(value)?)? {
                        kept.push(part);
                    }
                }
                if kept.is_empty() {
                    base.to_string()
                } else {
                    format!("{base}?{}", kept.join("&"))
                }
            }
        }
    } else {
        let mut kept = Vec::new();
        for (key, value, text) in key_values(url)? {
            if keep(&key, value)? {
                kept.push(text);
            }
        }
        kept.join(" ")
    };
    Ok(TlsKeys { rest, ..keys })
}

fn percent_decode(text: &str) -> Result<String, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text
                .get(i + 1..i + 3)
                .and_then(|hex| u8::from_str_radix(hex, 16).ok())
                .ok_or_else(|| "invalid percent-encoding in the URL".to_string())?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "invalid percent-encoding in the URL".to_string())
}

/// The pairs of a libpq key=value string: (key, value, the pair's own text).
fn key_values(text: &str) -> Result<Vec<(String, String, &str)>, String> {
    let mut pairs = Vec::new();
    let mut rest = text.trim_start();
    while !rest.is_empty() {
        let start = rest;
        let equals = rest
            .find('=')
            .ok_or_else(|| "expected key=value pairs".to_string())?;
        let key = rest[..equals].trim().to_string();
        if key.is_empty() || key.contains(char::is_whitespace) {
            return Err("expected key=value pairs".into());
        }
        rest = rest[equals + 1..].trim_start();
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end;
        if rest.starts_with('\'') {
            chars.next();
            loop {
                match chars.next() {
                    Some((_, '\\')) => match chars.next() {
                        Some((_, c)) => value.push(c),
                        None => return Err("unterminated quoted value".into()),
                    },
                    Some((i, '\'')) => {
                        end = i + 1;
                        break;
                    }
                    Some((_, c)) => value.push(c),
                    None => return Err("unterminated quoted value".into()),
                }
            }
        } else {
            loop {
                match chars.next() {
                    Some((_, '\\')) => {
                        if let Some((_, c)) = chars.next() {
                            value.push(c);
                        }
                    }
                    Some((i, c)) if c.is_whitespace() => {
                        end = i;
                        break;
                    }
                    Some((_, c)) => value.push(c),
                    None => {
                        end = rest.len();
                        break;
                    }
                }
            }
        }
        let consumed = start.len() - rest.len() + end;
        pairs.push((key, value, start[..consumed].trim_end()));
        rest = rest[end..].trim_start();
    }
    Ok(pairs)
}

/// The rustls side of one endpoint: how its certificate is checked.
#[derive(Clone)]
pub struct Tls {
    pub mode: SslMode,
    pub connector: MakeRustlsConnect,
}

impl fmt::Debug for Tls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tls").field("mode", &self.mode).finish()
    }
}

fn provider() -> Arc<CryptoProvider> {
    // ring, the provider reqwest already links; no process-wide default is set.
    Arc::new(rustls::crypto::ring::default_provider())
}

impl Tls {
    pub(super) fn new(sslmode: Option<&str>, sslrootcert: Option<&str>) -> Result<Tls, String> {
        let mode = sslmode
            .map(SslMode::parse)
            .transpose()?
            .unwrap_or(SslMode::Prefer);
        let provider = provider();
        let given = sslrootcert.map(read_root_certificates).transpose()?;
        let verifier: Arc<dyn ServerCertVerifier> = match (mode, given) {
            // libpq verifies nothing for prefer, nor for require without a root certificate.
            (SslMode::Disable | SslMode::Prefer, _) | (SslMode::Require, None) => {
                Arc::new(Unverified(Arc::clone(&provider)))
            }
            (SslMode::Require | SslMode::VerifyCa, Some(roots)) => {
                Arc::new(ChainOnly(webpki(roots, &provider)?))
            }
            (SslMode::VerifyCa, None) => Arc::new(ChainOnly(webpki(system_roots()?, &provider)?)),
            (SslMode::VerifyFull, roots) => {
                let roots = match roots {
                    Some(roots) => roots,
                    None => system_roots()?,
                };
                webpki(roots, &provider)?
            }
        };
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS: {e}"))?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        Ok(Tls {
            mode,
            connector: MakeRustlsConnect::new(config),
        })
    }
}

fn read_root_certificates(path: &str) -> Result<RootCertStore, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("sslrootcert {path}: {e}"))?;
    let mut roots = RootCertStore::empty();
    for certificate in CertificateDer::pem_slice_iter(&bytes) {
        let certificate =
            certificate.map_err(|e| format!("sslrootcert {path}: not a PEM certificate: {e}"))?;
        roots
            .add(certificate)
            .map_err(|e| format!("sslrootcert {path}: {e}"))?;
    }
    if roots.is_empty() {
        return Err(format!("sslrootcert {path}: no PEM certificate in it"));
    }
    Ok(roots)
}

fn system_roots() -> Result<RootCertStore, String> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        let why = found
            .errors
            .first()
            .map_or_else(|| "none found".to_string(), ToString::to_string);
        return Err(format!(
            "no system root certificates for sslmode verify-* without sslrootcert: {why}"
        ));
    }
    Ok(roots)
}

fn webpki(
    roots: RootCertStore,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<WebPkiServerVerifier>, String> {
    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), Arc::clone(provider))
        .build()
        .map_err(|e| format!("TLS: {e}"))
}

/// `prefer`, and `require` without a root certificate: encryption only.
/// The handshake's signature is still checked (against the presented certificate).
#[derive(Debug)]
struct Unverified(Arc<CryptoProvider>);

impl ServerCertVerifier for Unverified {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `verify-ca`: the whole WebPKI check but for the host name. WebPKI checks
/// the chain before the name, so a name mismatch means the chain verified.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_keys_leave_the_url_and_the_rest_stays() {
        let keys = take_tls_keys(
            "postgres://u:p@db1:5432,db2/app?sslmode=verify-full&target_session_attrs=read-write&sslrootcert=%2Fetc%2Fca.pem",
        )
        .unwrap();
        assert_eq!(
            keys,
            TlsKeys {
                rest: "postgres://u:p@db1:5432,db2/app?target_session_attrs=read-write".into(),
                sslmode: Some("verify-full".into()),
                sslrootcert: Some("/etc/ca.pem".into()),
            }
        );
        let keys = take_tls_keys("postgresql://db/app?sslmode=require").unwrap();
        assert_eq!(keys.rest, "postgresql://db/app");
        assert_eq!(keys.sslrootcert, None);
    }

    #[test]
    fn key_value_strings_too() {
        let keys = take_tls_keys(
            r"host=db sslmode = verify-ca sslrootcert='/etc/my ca.pem' password='it\'s' user=app",
        )
        .unwrap();
        assert_eq!(keys.rest, r"host=db password='it\'s' user=app");
        assert_eq!(keys.sslmode.as_deref(), Some("verify-ca"));
        assert_eq!(keys.sslrootcert.as_deref(), Some("/etc/my ca.pem"));
    }

    #[test]
    fn unknown_modes_and_missing_roots_are_errors() {
        let error = Tls::new(Some("allow"), None).unwrap_err();
        assert!(error.contains("sslmode 'allow'"), "{error}");
        let error = Tls::new(Some("verify-full"), Some("/nonexistent/ca.pem")).unwrap_err();
        assert!(
            error.starts_with("sslrootcert /nonexistent/ca.pem"),
            "{error}"
        );
        let error = take_tls_keys("postgres://db/app?sslcert=/c.pem").unwrap_err();
        assert!(error.contains("sslcert"), "{error}");
        assert_eq!(Tls::new(None, None).unwrap().mode, SslMode::Prefer);
    }
}
