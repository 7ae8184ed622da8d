//! Signed playback links (SPEC §9): verify a link in any of the five formats
//! against the enabled signing keys, and issue one with a key.
//!
//! Pure: no database, no HTTP, no clock (callers pass `now`), and nothing of
//! playgate but `crate::domain`. Every check compares signatures in constant
//! time, takes the signed text as received (never re-encoded), and answers a
//! bare [`LinkError`] so that no link parameter can reach a log through it.

mod akamai;
mod keys;
mod nginx;
mod playgate;
mod query;
mod securetoken;
mod wowza;

#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::domain::{canonical_ip, canonical_network, glob_matches, Login};

pub use keys::{
    generate_secret, validate_key_id, validate_secret, AkamaiAlgorithm, AkamaiOptions, KeyOptions,
    NginxOptions, SecureTokenOptions, SigningKey, Subject, WowzaAlgorithm, WowzaOptions,
};
use query::Query;

/// The `format` of a signing key: which dialect of signed link it verifies
/// and issues.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LinkFormat {
    Playgate,
    SecureToken,
    Nginx,
    Wowza,
    Akamai,
}

impl LinkFormat {
    pub const ALL: [LinkFormat; 5] = [
        LinkFormat::Playgate,
        LinkFormat::SecureToken,
        LinkFormat::Nginx,
        LinkFormat::Wowza,
        LinkFormat::Akamai,
    ];

    pub fn parse(text: &str) -> Option<LinkFormat> {
        LinkFormat::ALL.into_iter().find(|f| f.as_str() == text)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            LinkFormat::Playgate => "playgate",
            LinkFormat::SecureToken => "securetoken",
            LinkFormat::Nginx => "nginx",
            LinkFormat::Wowza => "wowza",
            LinkFormat::Akamai => "akamai",
        }
    }
}

impl fmt::Display for LinkFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a streamer's hook knows about the request a link came with.
#[derive(Clone, Copy, Debug)]
pub struct LinkRequest<'a> {
    /// The stream as the dialect names it (Astra's channel id, Flussonic's
    /// stream name, MediaMTX's path): the subject of `securetoken` (option
    /// `subject: "stream"`) and `wowza` links, matched by `playgate` links.
    pub stream: &'a str,
    /// The requested URI's percent-decoded path, when the dialect has one
    /// (forward-auth, Astra's `X-Real-Path`): what `nginx`, `akamai` and
    /// `securetoken` with `subject: "path"` sign; `/` + stream without it.
    pub path: Option<&'a str>,
    pub client_ip: IpAddr,
    /// The client's raw query string (a leading `?` is ignored).
    pub query: &'a str,
}

/// A link whose signature, window and address held.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedLink {
    pub key_id: String,
    pub format: LinkFormat,
    /// `u` of a native link, `user_id` of a securetoken link.
    pub user: Option<Login>,
    pub not_before: Option<i64>,
    pub expires_at: i64,
    /// A native link's `n` when it has `once`: the caller remembers it until
    /// `expires_at` so that it starts one session only.
    pub once_nonce: Option<String>,
    /// What the link names, as signed.
    pub scope: LinkScope,
}

/// The streams or paths a link is good for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LinkScope {
    /// A native link's `s`: a stream name or a `*` glob of names.
    StreamGlob(String),
    /// Exactly this stream (securetoken by stream, wowza).
    Stream(String),
    /// Exactly this URI path (nginx, securetoken by path).
    Path(String),
    /// Akamai ACL globs (`*` and `?`, `*` crossing `/`) over the URI path.
    PathGlobs(Vec<String>),
}

impl LinkScope {
    /// Whether a request for `stream` (at `path`, if the dialect has one) is
    /// inside the scope; paths are compared normalised, as verify does.
    pub fn matches(&self, stream: &str, path: Option<&str>) -> bool {
        match self {
            LinkScope::StreamGlob(glob) => glob_matches(glob, stream),
            LinkScope::Stream(name) => name == stream,
            LinkScope::Path(signed) => {
                resource_path(stream, path).is_some_and(|p| p.as_ref() == signed)
            }
            LinkScope::PathGlobs(globs) => resource_path(stream, path)
                .is_some_and(|p| globs.iter().any(|g| query::wildcard_matches(g, &p))),
        }
    }
}

/// Why a link is refused; the reason codes of SPEC §9. Deliberately carries
/// nothing of the link.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    /// A bad signature, a malformed link, another stream or path, an unknown
    /// key, or another address where the address is inside the hash.
    #[error("link_invalid")]
    Invalid,
    /// Before its start or after its end, beyond the skew.
    #[error("link_expired")]
    Expired,
    /// Another address than the one a `playgate` or `akamai` link names.
    #[error("ip_mismatch")]
    IpMismatch,
}

impl LinkError {
    pub fn reason(self) -> &'static str {
        match self {
            LinkError::Invalid => "link_invalid",
            LinkError::Expired => "link_expired",
            LinkError::IpMismatch => "ip_mismatch",
        }
    }

    /// With several keys, the answer of the one whose signature held (the
    /// window or the address failed) tells more than "no key matched".
    fn rank(self) -> u8 {
        match self {
            LinkError::Invalid => 0,
            LinkError::IpMismatch => 1,
            LinkError::Expired => 2,
        }
    }
}

/// What a link to issue says. `uri` is the path the viewer will request
/// (signed by `nginx`, `akamai` — where it may hold ACL globs — and
/// `securetoken` by path; default `/` + stream); others ignore it.
#[derive(Clone, Copy, Debug)]
pub struct IssueRequest<'a> {
    pub stream: &'a str,
    pub uri: Option<&'a str>,
    pub user: Option<&'a Login>,
    pub expires_at: i64,
    pub not_before: Option<i64>,
    /// An address, or (native links only) a network.
    pub ip: Option<IpNet>,
    pub once: bool,
}

/// Why a link cannot be issued: one line each, for a 422.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IssueError {
    #[error("stream: must not be empty")]
    EmptyStream,
    #[error("expires_at: must be later than now and than not_before")]
    Window,
    #[error("ip: this key signs the client address, so the link needs one")]
    NeedsIp,
    #[error("ip: a {0} link of this key cannot carry an address")]
    IpNotCarried(LinkFormat),
    #[error("ip: a {0} link carries one address, not a network")]
    NotAnAddress(LinkFormat),
    #[error("user: only playgate and securetoken links carry a user")]
    UserNotCarried,
    #[error("once: only playgate links can be used once")]
    OnceNotCarried,
    #[error("not_before: nginx links have no start")]
    NotBeforeNotCarried,
    #[error("uri: {0}")]
    Uri(&'static str),
}

/// Whether `query` carries the parameters of a signed link, and of which
/// format: `pglink`; `token` shaped `<40 hex>-<salt>-<digits>-<digits>` (any
/// other `token` is a plain playgate token); `md5` and `expires`;
/// `wowzatokenhash` or `<prefix>hash` of a wowza key; `__token__` or the
/// `param` of an akamai key.
pub fn find_link(query: &str, keys: &[SigningKey]) -> Option<LinkFormat> {
    let query = Query::parse(query);
    if playgate::present(&query) {
        return Some(LinkFormat::Playgate);
    }
    if securetoken::present(&query) {
        return Some(LinkFormat::SecureToken);
    }
    if nginx::present(&query) {
        return Some(LinkFormat::Nginx);
    }
    let wowza_default = WowzaOptions::default();
    let wowza_options = keys.iter().filter_map(|k| match k.options() {
        KeyOptions::Wowza(o) => Some(o),
        _ => None,
    });
    if std::iter::once(&wowza_default)
        .chain(wowza_options)
        .any(|o| wowza::present(&query, o))
    {
        return Some(LinkFormat::Wowza);
    }
    let akamai_default = AkamaiOptions::default();
    let akamai_options = keys.iter().filter_map(|k| match k.options() {
        KeyOptions::Akamai(o) => Some(o),
        _ => None,
    });
    if std::iter::once(&akamai_default)
        .chain(akamai_options)
        .any(|o| akamai::present(&query, o))
    {
        return Some(LinkFormat::Akamai);
    }
    None
}

/// What every format's verifier needs to know about the request, computed
/// once for all the keys tried.
struct Context<'a> {
    stream: &'a str,
    /// `None` when the request's path cannot be normalised (`..` above the
    /// root, not absolute): path-signing formats then refuse the link.
    resource: Option<Cow<'a, str>>,
    ip: IpAddr,
    ip_text: String,
    now: i64,
    skew: u64,
}

impl Context<'_> {
    /// The window check of every format: from `not_before - skew` to
    /// `expires_at + skew`, both included (nginx: `expires == now` is valid).
    fn within_window(&self, not_before: Option<i64>, expires_at: i64) -> Result<(), LinkError> {
        let (now, skew) = (i128::from(self.now), i128::from(self.skew));
        let early = not_before.is_some_and(|start| now < i128::from(start) - skew);
        if early || now > i128::from(expires_at) + skew {
            return Err(LinkError::Expired);
        }
        Ok(())
    }
}

/// The path a path-signing format signs: the request's path, normalised the
/// way nginx's `$uri` is, or `/` + stream.
fn resource_path<'a>(stream: &'a str, path: Option<&'a str>) -> Option<Cow<'a, str>> {
    match path {
        Some(path) => query::normalize_path(path),
        None => query::normalize_path(&format!("/{stream}")).map(|p| Cow::Owned(p.into_owned())),
    }
}

/// Verify the link in `request.query` against `keys` (the enabled ones: a
/// disabled key is simply not passed). Every key whose format's parameters
/// are present is tried (rotation); a native link goes to its `kid` only.
/// `now` is unix seconds, `skew` the tolerance on both ends of the window.
pub fn verify(
    request: &LinkRequest<'_>,
    keys: &[SigningKey],
    now: i64,
    skew: u64,
) -> Result<VerifiedLink, LinkError> {
    let query = Query::parse(request.query);
    let ip = canonical_ip(request.client_ip);
    let context = Context {
        stream: request.stream,
        resource: resource_path(request.stream, request.path),
        ip,
        ip_text: ip.to_string(),
        now,
        skew,
    };
    let mut refusal = LinkError::Invalid;
    for key in keys {
        let result = match key.options() {
            KeyOptions::Playgate if playgate::present(&query) => {
                playgate::verify(key, &context, &query)
            }
            KeyOptions::SecureToken(o) if securetoken::present(&query) => {
                securetoken::verify(key, o, &context, &query)
            }
            KeyOptions::Nginx(o) if nginx::present(&query) => {
                nginx::verify(key, o, &context, &query)
            }
            KeyOptions::Wowza(o) if wowza::present(&query, o) => {
                wowza::verify(key, o, &context, &query)
            }
            KeyOptions::Akamai(o) if akamai::present(&query, o) => {
                akamai::verify(key, o, &context, &query)
            }
            _ => continue,
        };
        match result {
            Ok(link) => return Ok(link),
            Err(error) if error.rank() > refusal.rank() => refusal = error,
            Err(_) => {}
        }
    }
    Err(refusal)
}

/// Issue a link with `key`: the query string to append to the stream's URL
/// (without `?`). `now` is unix seconds (a securetoken link's default start).
pub fn issue(key: &SigningKey, request: &IssueRequest<'_>, now: i64) -> Result<String, IssueError> {
    if request.stream.is_empty() {
        return Err(IssueError::EmptyStream);
    }
    let start = request.not_before.unwrap_or(now);
    if request.expires_at <= now || request.expires_at <= start {
        return Err(IssueError::Window);
    }
    let format = key.format();
    if request.once && format != LinkFormat::Playgate {
        return Err(IssueError::OnceNotCarried);
    }
    if request.user.is_some() && !matches!(format, LinkFormat::Playgate | LinkFormat::SecureToken) {
        return Err(IssueError::UserNotCarried);
    }
    let ip = request.ip.map(canonical_network);
    match key.options() {
        KeyOptions::Playgate => Ok(playgate::issue(key, request, ip)),
        KeyOptions::SecureToken(o) => {
            securetoken::issue(key, o, request, address(format, ip)?, now)
        }
        KeyOptions::Nginx(o) => nginx::issue(key, o, request, address(format, ip)?),
        KeyOptions::Wowza(o) => wowza::issue(key, o, request, address(format, ip)?),
        KeyOptions::Akamai(o) => akamai::issue(key, o, request, address(format, ip)?),
    }
}

/// Formats other than the native one sign one address, not a network.
fn address(format: LinkFormat, ip: Option<IpNet>) -> Result<Option<IpAddr>, IssueError> {
    match ip {
        None => Ok(None),
        Some(net) if net.prefix_len() == net.max_prefix_len() => Ok(Some(net.addr())),
        Some(_) => Err(IssueError::NotAnAddress(format)),
    }
}

/// The path an issued link signs: `uri`, or `/` + stream, normalised as
/// verify will see it.
fn issue_path(request: &IssueRequest<'_>) -> Result<String, IssueError> {
    let path = match request.uri {
        Some(uri) => {
            if uri.contains(['?', '#']) || uri.chars().any(char::is_control) {
                return Err(IssueError::Uri("a path, without query or fragment"));
            }
            query::normalize_path(uri)
        }
        None => query::normalize_path(&format!("/{}", request.stream))
            .map(|p| Cow::Owned(p.into_owned())),
    };
    path.map(Cow::into_owned)
        .ok_or(IssueError::Uri("an absolute path that stays under /"))
}
