//! Reading what a request says about itself: headers, the client's address,
//! HTTP Basic credentials.

use std::net::IpAddr;

use actix_web::HttpRequest;
use base64::Engine as _;
use ipnet::IpNet;

use crate::domain::canonical_ip;

/// A short, printable excerpt of untrusted input for an error message.
pub fn excerpt(text: &str) -> String {
    text.chars()
        .take(64)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// A header's value when present, non-empty and visible ASCII/UTF-8.
pub fn header<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
    req.headers()
        .get(name)
        .and_then(|value| std::str::from_utf8(value.as_bytes()).ok())
        .map(str::trim)
        .filter(|value| !value.is_empty())
}

/// An IP address field (`192.0.2.1`, `192.0.2.1:5000`, `[2001:db8::1]:80`);
/// `name` is what the error message calls it.
pub fn parse_ip(name: &str, text: Option<&str>) -> Result<IpAddr, String> {
    let text = text.ok_or_else(|| format!("{name}: missing client IP"))?;
    let text = text.trim();
    let bare = text
        .strip_prefix('[')
        .and_then(|t| t.split_once(']'))
        .map(|(ip, _)| ip)
        .unwrap_or(text);
    bare.parse::<IpAddr>()
        .or_else(|_| bare.parse::<std::net::SocketAddr>().map(|a| a.ip()))
        .map_err(|_| format!("{name}: '{}' is not an IP address", excerpt(text)))
}

/// The connected peer's address, IPv4-mapped forms as IPv4.
pub fn peer_ip(req: &HttpRequest) -> Option<IpAddr> {
    req.peer_addr().map(|addr| canonical_ip(addr.ip()))
}

/// The client: the peer itself, unless the peer is a trusted proxy, whose
/// `X-Real-IP` (else `X-Forwarded-For`, read from the right, skipping trusted
/// hops) is believed.
pub fn client_ip(req: &HttpRequest, trusted: &[IpNet]) -> Result<IpAddr, String> {
    let peer = peer_ip(req).ok_or("no peer address")?;
    let is_trusted = |ip: IpAddr| trusted.iter().any(|network| network.contains(&ip));
    if !is_trusted(peer) {
        return Ok(peer);
    }
    if let Some(real_ip) = header(req, "x-real-ip") {
        return parse_ip("X-Real-IP", Some(real_ip)).map(canonical_ip);
    }
    let Some(forwarded) = header(req, "x-forwarded-for") else {
        return Ok(peer);
    };
    let hops = forwarded
        .split(',')
        .map(|hop| parse_ip("X-Forwarded-For", Some(hop)).map(canonical_ip))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(hops
        .iter()
        .rev()
        .find(|ip| !is_trusted(**ip))
        .or(hops.first())
        .copied()
        .unwrap_or(peer))
}

/// The value of `Authorization: Basic <value>`, decoded into login and
/// password; None when it is not valid base64 of UTF-8 `login:password`.
pub fn decode_basic(value: &str) -> Option<(String, String)> {
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(value.trim())
        .ok()?;
    let pair = String::from_utf8(decoded).ok()?;
    let (login, password) = pair.split_once(':')?;
    Some((login.to_string(), password.to_string()))
}

/// `Authorization: Basic base64(login:password)` with a non-empty login.
pub fn basic_credentials(req: &HttpRequest) -> Option<(String, String)> {
    let value = header(req, "authorization")?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    decode_basic(encoded).filter(|(login, _)| !login.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    #[test]
    fn basic_auth_header() {
        let req = TestRequest::default()
            .insert_header(("Authorization", "Basic Ym9iOnB3"))
            .to_http_request();
        assert_eq!(
            basic_credentials(&req),
            Some(("bob".to_string(), "pw".to_string()))
        );
        for bad in ["Basic !!!", "Bearer abc", "Basic", "Basic Om5vbG9naW4="] {
            let req = TestRequest::default()
                .insert_header(("Authorization", bad))
                .to_http_request();
            assert!(basic_credentials(&req).is_none(), "{bad}");
        }
    }

    #[test]
    fn ip_forms() {
        for (text, ip) in [
            ("192.0.2.1", "192.0.2.1"),
            ("192.0.2.1:5000", "192.0.2.1"),
            ("[2001:db8::1]:80", "2001:db8::1"),
            ("2001:db8::1", "2001:db8::1"),
        ] {
            assert_eq!(parse_ip("ip", Some(text)).unwrap().to_string(), ip);
        }
        assert!(parse_ip("ip", Some("unix:")).is_err());
        assert!(parse_ip("ip", None).is_err());
    }
}
