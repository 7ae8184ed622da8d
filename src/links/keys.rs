//! Signing keys: id, secret, and each format's typed options.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{json, Map, Value};

use super::LinkFormat;

/// A signing key as the verifier and the issuer use it. The secret is the
/// HMAC key (or the hashed secret text): the UTF-8 bytes of the secret, or
/// for `akamai` its hex-decoded bytes. `Debug` never shows it.
#[derive(Clone)]
pub struct SigningKey {
    id: String,
    secret: Vec<u8>,
    options: KeyOptions,
}

impl SigningKey {
    /// Checks the id and the secret (the format is the options').
    pub fn new(id: &str, secret: &str, options: KeyOptions) -> Result<SigningKey, String> {
        validate_key_id(id)?;
        let format = options.format();
        validate_secret(format, secret)?;
        let secret = match format {
            LinkFormat::Akamai => hex::decode(secret).map_err(|_| "secret: hex".to_string())?,
            _ => secret.as_bytes().to_vec(),
        };
        Ok(SigningKey {
            id: id.to_string(),
            secret,
            options,
        })
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn format(&self) -> LinkFormat {
        self.options.format()
    }

    pub fn options(&self) -> &KeyOptions {
        &self.options
    }

    pub(super) fn secret(&self) -> &[u8] {
        &self.secret
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("id", &self.id)
            .field("secret", &"<redacted>")
            .field("options", &self.options)
            .finish()
    }
}

/// A key id (SPEC §9): 1–32 characters of `[a-z0-9-]`.
pub fn validate_key_id(id: &str) -> Result<(), String> {
    let valid = (1..=32).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if valid {
        Ok(())
    } else {
        Err("id: 1-32 characters of a-z 0-9 -".into())
    }
}

/// A given secret: 1–256 bytes; for `akamai`, an even number of hex digits
/// (it is the HMAC key's bytes).
pub fn validate_secret(format: LinkFormat, secret: &str) -> Result<(), String> {
    if secret.is_empty() || secret.len() > 256 {
        return Err("secret: 1-256 characters".into());
    }
    if format == LinkFormat::Akamai
        && (!secret.len().is_multiple_of(2) || !secret.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        return Err("secret: an even number of hex digits for akamai".into());
    }
    Ok(())
}

/// 256 bits from the operating system's CSPRNG: 43 characters of base64url
/// without padding, or 64 hex digits for `akamai` (whose secret is a hex key).
pub fn generate_secret(format: LinkFormat) -> String {
    use rand::{RngCore as _, TryRngCore as _};
    let mut bytes = [0u8; 32];
    // The thread CSPRNG (seeded from the same OS source) stands in if the OS
    // call fails, which it does not on a booted Linux; a weak secret is never
    // the fallback.
    if rand::rngs::OsRng.try_fill_bytes(&mut bytes).is_err() {
        rand::rng().fill_bytes(&mut bytes);
    }
    match format {
        LinkFormat::Akamai => hex::encode(bytes),
        _ => URL_SAFE_NO_PAD.encode(bytes),
    }
}

/// Each format's options, typed; `from_json` is the only way in from the
/// admin API and checks every field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyOptions {
    Playgate,
    SecureToken(SecureTokenOptions),
    Nginx(NginxOptions),
    Wowza(WowzaOptions),
    Akamai(AkamaiOptions),
}

impl KeyOptions {
    pub fn defaults(format: LinkFormat) -> KeyOptions {
        match format {
            LinkFormat::Playgate => KeyOptions::Playgate,
            LinkFormat::SecureToken => KeyOptions::SecureToken(SecureTokenOptions::default()),
            LinkFormat::Nginx => KeyOptions::Nginx(NginxOptions::default()),
            LinkFormat::Wowza => KeyOptions::Wowza(WowzaOptions::default()),
            LinkFormat::Akamai => KeyOptions::Akamai(AkamaiOptions::default()),
        }
    }

    pub fn format(&self) -> LinkFormat {
        match self {
            KeyOptions::Playgate => LinkFormat::Playgate,
            KeyOptions::SecureToken(_) => LinkFormat::SecureToken,
            KeyOptions::Nginx(_) => LinkFormat::Nginx,
            KeyOptions::Wowza(_) => LinkFormat::Wowza,
            KeyOptions::Akamai(_) => LinkFormat::Akamai,
        }
    }

    /// `null` or an object of the format's options; absent ones take their
    /// defaults. The error is one line naming the option.
    pub fn from_json(format: LinkFormat, value: &Value) -> Result<KeyOptions, String> {
        let empty = Map::new();
        let fields = match value {
            Value::Null => &empty,
            Value::Object(fields) => fields,
            _ => return Err("options: an object".into()),
        };
        let known: &[&str] = match format {
            LinkFormat::Playgate => &[],
            LinkFormat::SecureToken => &["subject", "check_ip"],
            LinkFormat::Nginx => &["template"],
            LinkFormat::Wowza => &["prefix", "algorithm", "check_ip"],
            LinkFormat::Akamai => &["param", "algorithm"],
        };
        if let Some(name) = fields.keys().find(|name| !known.contains(&name.as_str())) {
            return Err(format!("options: {format} keys have no option {name:?}"));
        }
        let mut options = KeyOptions::defaults(format);
        match &mut options {
            KeyOptions::Playgate => {}
            KeyOptions::SecureToken(o) => {
                if let Some(subject) = string(fields, "subject")? {
                    o.subject = match subject {
                        "stream" => Subject::Stream,
                        "path" => Subject::Path,
                        _ => return Err("options.subject: \"stream\" or \"path\"".into()),
                    };
                }
                if let Some(check_ip) = boolean(fields, "check_ip")? {
                    o.check_ip = check_ip;
                }
            }
            KeyOptions::Nginx(o) => {
                if let Some(template) = string(fields, "template")? {
                    *o = NginxOptions::new(template)?;
                }
            }
            KeyOptions::Wowza(o) => {
                if let Some(prefix) = string(fields, "prefix")? {
                    o.prefix = parameter_name("options.prefix", prefix)?;
                }
                if let Some(algorithm) = string(fields, "algorithm")? {
                    o.algorithm = match algorithm {
                        "sha256" => WowzaAlgorithm::Sha256,
                        "sha384" => WowzaAlgorithm::Sha384,
                        "sha512" => WowzaAlgorithm::Sha512,
                        _ => return Err("options.algorithm: sha256, sha384 or sha512".into()),
                    };
                }
                if let Some(check_ip) = boolean(fields, "check_ip")? {
                    o.check_ip = check_ip;
                }
            }
            KeyOptions::Akamai(o) => {
                if let Some(param) = string(fields, "param")? {
                    o.param = parameter_name("options.param", param)?;
                }
                if let Some(algorithm) = string(fields, "algorithm")? {
                    o.algorithm = match algorithm {
                        "sha256" => AkamaiAlgorithm::Sha256,
                        "sha1" => AkamaiAlgorithm::Sha1,
                        "md5" => AkamaiAlgorithm::Md5,
                        _ => return Err("options.algorithm: sha256, sha1 or md5".into()),
                    };
                }
            }
        }
        Ok(options)
    }

    /// Every option with its value, defaults included: what the admin API
    /// shows and stores.
    pub fn to_json(&self) -> Value {
        match self {
            KeyOptions::Playgate => json!({}),
            KeyOptions::SecureToken(o) => json!({
                "subject": match o.subject { Subject::Stream => "stream", Subject::Path => "path" },
                "check_ip": o.check_ip,
            }),
            KeyOptions::Nginx(o) => json!({ "template": o.template() }),
            KeyOptions::Wowza(o) => json!({
                "prefix": o.prefix,
                "algorithm": o.algorithm.as_str(),
                "check_ip": o.check_ip,
            }),
            KeyOptions::Akamai(o) => json!({
                "param": o.param,
                "algorithm": o.algorithm.as_str(),
            }),
        }
    }
}

fn string<'a>(fields: &'a Map<String, Value>, name: &str) -> Result<Option<&'a str>, String> {
    match fields.get(name) {
        None => Ok(None),
        Some(Value::String(text)) => Ok(Some(text)),
        Some(_) => Err(format!("options.{name}: a string")),
    }
}

fn boolean(fields: &Map<String, Value>, name: &str) -> Result<Option<bool>, String> {
    match fields.get(name) {
        None => Ok(None),
        Some(Value::Bool(flag)) => Ok(Some(*flag)),
        Some(_) => Err(format!("options.{name}: true or false")),
    }
}

/// A query parameter name a link is recognised by: plain URL-safe text, so
/// that it needs no encoding and cannot collide with `&` or `=`.
fn parameter_name(option: &str, name: &str) -> Result<String, String> {
    let valid = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if valid {
        Ok(name.to_string())
    } else {
        Err(format!("{option}: 1-64 characters of A-Z a-z 0-9 _ - ."))
    }
}

/// What a securetoken link's hash starts with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Subject {
    /// The stream name (Flussonic; Astra's channel id).
    #[default]
    Stream,
    /// The request path (Alta, Astra before its 2023 doc change).
    Path,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecureTokenOptions {
    pub subject: Subject,
    /// Off: the address part is `no_check_ip` (Flussonic ≥ 20.07) or empty.
    pub check_ip: bool,
}

impl Default for SecureTokenOptions {
    fn default() -> Self {
        SecureTokenOptions {
            subject: Subject::Stream,
            check_ip: true,
        }
    }
}

/// One piece of a `secure_link_md5` template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Part {
    Text(String),
    Expires,
    Uri,
    RemoteAddr,
    Secret,
}

/// An nginx `secure_link_md5` template, parsed once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NginxOptions {
    template: String,
    parts: Vec<Part>,
}

impl NginxOptions {
    pub const DEFAULT_TEMPLATE: &'static str = "$secure_link_expires$uri$remote_addr $secret";

    /// Variables are `$name` or `${name}` as in nginx; the template must use
    /// `$secret` (or anyone could sign) and `$secure_link_expires` (or anyone
    /// could extend a link).
    pub fn new(template: &str) -> Result<NginxOptions, String> {
        if template.len() > 1024 {
            return Err("options.template: at most 1024 characters".into());
        }
        let mut parts = Vec::new();
        let mut text = String::new();
        let mut rest = template;
        while let Some(at) = rest.find('$') {
            text.push_str(&rest[..at]);
            rest = &rest[at + 1..];
            let (name, after) = match rest.strip_prefix('{') {
                Some(braced) => match braced.split_once('}') {
                    Some((name, after)) => (name, after),
                    None => return Err("options.template: an unclosed ${".into()),
                },
                None => {
                    let end = rest
                        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                        .unwrap_or(rest.len());
                    (&rest[..end], &rest[end..])
                }
            };
            let part = match name {
                "secure_link_expires" => Part::Expires,
                "uri" => Part::Uri,
                "remote_addr" => Part::RemoteAddr,
                "secret" => Part::Secret,
                _ => {
                    return Err(format!(
                        "options.template: unknown variable ${name} (known: $secure_link_expires, $uri, $remote_addr, $secret)"
                    ))
                }
            };
            if !text.is_empty() {
                parts.push(Part::Text(std::mem::take(&mut text)));
            }
            parts.push(part);
            rest = after;
        }
        text.push_str(rest);
        if !text.is_empty() {
            parts.push(Part::Text(text));
        }
        if !parts.contains(&Part::Secret) || !parts.contains(&Part::Expires) {
            return Err("options.template: must use $secret and $secure_link_expires".into());
        }
        Ok(NginxOptions {
            template: template.to_string(),
            parts,
        })
    }

    pub fn template(&self) -> &str {
        &self.template
    }

    pub fn uses_remote_addr(&self) -> bool {
        self.parts.contains(&Part::RemoteAddr)
    }

    pub(super) fn parts(&self) -> &[Part] {
        &self.parts
    }
}

impl Default for NginxOptions {
    fn default() -> Self {
        NginxOptions::new(NginxOptions::DEFAULT_TEMPLATE).expect("the default template parses")
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum WowzaAlgorithm {
    #[default]
    Sha256,
    Sha384,
    Sha512,
}

impl WowzaAlgorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            WowzaAlgorithm::Sha256 => "sha256",
            WowzaAlgorithm::Sha384 => "sha384",
            WowzaAlgorithm::Sha512 => "sha512",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WowzaOptions {
    prefix: String,
    pub algorithm: WowzaAlgorithm,
    /// "Include client IP address in hash generation".
    pub check_ip: bool,
}

impl WowzaOptions {
    pub fn prefix(&self) -> &str {
        &self.prefix
    }
}

impl Default for WowzaOptions {
    fn default() -> Self {
        WowzaOptions {
            prefix: "wowzatoken".into(),
            algorithm: WowzaAlgorithm::Sha256,
            check_ip: false,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum AkamaiAlgorithm {
    #[default]
    Sha256,
    Sha1,
    Md5,
}

impl AkamaiAlgorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            AkamaiAlgorithm::Sha256 => "sha256",
            AkamaiAlgorithm::Sha1 => "sha1",
            AkamaiAlgorithm::Md5 => "md5",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AkamaiOptions {
    param: String,
    pub algorithm: AkamaiAlgorithm,
}

impl AkamaiOptions {
    pub fn param(&self) -> &str {
        &self.param
    }
}

impl Default for AkamaiOptions {
    fn default() -> Self {
        AkamaiOptions {
            param: "__token__".into(),
            algorithm: AkamaiAlgorithm::Sha256,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_default_and_validate() {
        for format in LinkFormat::ALL {
            let options = KeyOptions::from_json(format, &Value::Null).unwrap();
            assert_eq!(options, KeyOptions::defaults(format));
            assert_eq!(KeyOptions::from_json(format, &json!({})).unwrap(), options);
            assert_eq!(
                KeyOptions::from_json(format, &options.to_json()).unwrap(),
                options
            );
            assert!(KeyOptions::from_json(format, &json!({"nope": 1})).is_err());
            assert!(KeyOptions::from_json(format, &json!([])).is_err());
        }
        assert_eq!(
            KeyOptions::defaults(LinkFormat::Nginx).to_json(),
            json!({"template": "$secure_link_expires$uri$remote_addr $secret"})
        );
        let wowza = KeyOptions::from_json(
            LinkFormat::Wowza,
            &json!({"prefix": "zhashinstance", "algorithm": "sha512", "check_ip": true}),
        )
        .unwrap();
        assert_eq!(
            wowza.to_json(),
            json!({"prefix": "zhashinstance", "algorithm": "sha512", "check_ip": true})
        );
        for (format, bad) in [
            (LinkFormat::SecureToken, json!({"subject": "channel"})),
            (LinkFormat::SecureToken, json!({"check_ip": "no"})),
            (LinkFormat::Nginx, json!({"template": "$uri $secret"})),
            (
                LinkFormat::Nginx,
                json!({"template": "$secure_link_expires$uri"}),
            ),
            (
                LinkFormat::Nginx,
                json!({"template": "$secure_link_expires$http_host $secret"}),
            ),
            (
                LinkFormat::Nginx,
                json!({"template": "${secure_link_expires $secret"}),
            ),
            (LinkFormat::Nginx, json!({"template": 5})),
            (LinkFormat::Wowza, json!({"prefix": ""})),
            (LinkFormat::Wowza, json!({"prefix": "a&b"})),
            (LinkFormat::Wowza, json!({"algorithm": "md5"})),
            (LinkFormat::Akamai, json!({"param": "a=b"})),
            (LinkFormat::Akamai, json!({"algorithm": "sha512"})),
            (LinkFormat::Playgate, json!({"subject": "stream"})),
        ] {
            let error = KeyOptions::from_json(format, &bad).unwrap_err();
            assert!(!error.contains('\n'), "{error}");
        }
    }

    #[test]
    fn templates_parse_like_nginx() {
        let braced =
            NginxOptions::new("${secure_link_expires}x$uri${remote_addr} $secret").unwrap();
        assert_eq!(
            braced.parts(),
            [
                Part::Expires,
                Part::Text("x".into()),
                Part::Uri,
                Part::RemoteAddr,
                Part::Text(" ".into()),
                Part::Secret,
            ]
        );
        let no_ip = NginxOptions::new("$secret:$secure_link_expires:$uri").unwrap();
        assert!(!no_ip.uses_remote_addr());
        assert!(NginxOptions::default().uses_remote_addr());
    }

    #[test]
    fn keys_and_secrets() {
        for format in LinkFormat::ALL {
            let secret = generate_secret(format);
            let expected = if format == LinkFormat::Akamai { 64 } else { 43 };
            assert_eq!(secret.len(), expected, "{format}");
            assert_ne!(secret, generate_secret(format));
            let key = SigningKey::new("k-1", &secret, KeyOptions::defaults(format)).unwrap();
            assert_eq!(key.format(), format);
            assert!(!format!("{key:?}").contains(&secret));
        }
        let akamai = KeyOptions::defaults(LinkFormat::Akamai);
        let key = SigningKey::new("a", "00ff", akamai.clone()).unwrap();
        assert_eq!(key.secret(), [0x00, 0xff]);
        assert!(SigningKey::new("a", "0ff", akamai.clone()).is_err());
        assert!(SigningKey::new("a", "zz", akamai).is_err());
        let playgate = KeyOptions::Playgate;
        assert_eq!(
            SigningKey::new("a", "s3cr3t", playgate.clone())
                .unwrap()
                .secret(),
            b"s3cr3t"
        );
        assert!(SigningKey::new("a", "", playgate.clone()).is_err());
        assert!(SigningKey::new("K1", "x", playgate.clone()).is_err());
        assert!(SigningKey::new(&"a".repeat(33), "x", playgate.clone()).is_err());
        assert!(SigningKey::new("", "x", playgate).is_err());
    }
}
