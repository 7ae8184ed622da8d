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

/// A header that must be sent once: a second copy means someone added to
/// what the proxy set (a client's own copy kept beside it), so which one
/// counts would be a guess.
pub fn only_header<'a>(req: &'a HttpRequest, name: &str) -> Result<Option<&'a str>, String> {
    let mut values = req.headers().get_all(name);
    let first = values.next();
    if values.next().is_some() {
        return Err(format!("{name}: sent more than once"));
    }
    Ok(first
        .and_then(|value| std::str::from_utf8(value.as_bytes()).ok())
        .map(str::trim)
        .filter(|value| !value.is_empty()))
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

/// Whether the connected peer is one of `trusted` (the proxies whose
/// forwarded headers are believed).
pub fn from_trusted_proxy(req: &HttpRequest, trusted: &[IpNet]) -> bool {
    peer_ip(req).is_some_and(|peer| trusted.iter().any(|network| network.contains(&peer)))
}

/// `X-Forwarded-Proto: https`, sent once, by a trusted proxy: the client
/// came over HTTPS. From anyone else the header is the client's to choose.
pub fn https_via_trusted_proxy(req: &HttpRequest, trusted: &[IpNet]) -> bool {
    from_trusted_proxy(req, trusted)
        && only_header(req, "x-forwarded-proto")
            .ok()
            .flatten()
            .is_some_and(|proto| proto.eq_ignore_ascii_case("https"))
}

/// The client: the peer itself, unless the peer is a trusted proxy, whose
/// `ip_header` (a lower-case name) is believed. That header is read as one
/// address, except `x-forwarded-for`, which is read from the right, skipping
/// trusted hops: proxies append to it, so only its right end is theirs.
/// Every other header the client sent is ignored, whoever relayed it.
pub fn client_ip(req: &HttpRequest, trusted: &[IpNet], ip_header: &str) -> Result<IpAddr, String> {
    let peer = peer_ip(req).ok_or("no peer address")?;
    let is_trusted = |ip: IpAddr| trusted.iter().any(|network| network.contains(&ip));
    if !is_trusted(peer) {
        return Ok(peer);
    }
    if ip_header != "x-forwarded-for" {
        return match only_header(req, ip_header)? {
            Some(value) => parse_ip(ip_header, Some(value)).map(canonical_ip),
            None => Ok(peer),
        };
    }
    // Several X-Forwarded-For lines are one list, in order (RFC 9110 §5.3).
    let hops = req
        .headers()
        .get_all(ip_header)
        .flat_map(|value| value.to_str().unwrap_or("?").split(','))
        .map(|hop| parse_ip(ip_header, Some(hop)).map(canonical_ip))
        .collect::<Result<Vec<_>, _>>()?;
    if hops.is_empty() {
        return Ok(peer);
    }
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
    fn only_the_configured_header_of_a_trusted_peer_names_the_client() {
        let trusted: Vec<IpNet> = vec![
            "127.0.0.0/8".parse().unwrap(),
            "10.0.0.0/8".parse().unwrap(),
        ];
        let from = |peer: &str, headers: &[(&str, &str)], ip_header: &str| {
            let mut req = TestRequest::default().peer_addr(format!("{peer}:1000").parse().unwrap());
            for header in headers {
                req = req.insert_header(*header);
            }
            client_ip(&req.to_http_request(), &trusted, ip_header).map(|ip| ip.to_string())
        };
        let both = [
            ("X-Real-IP", "198.51.100.1"),
            ("X-Forwarded-For", "198.51.100.2"),
        ];
        assert_eq!(
            from("127.0.0.1", &both, "x-real-ip").unwrap(),
            "198.51.100.1"
        );
        assert_eq!(
            from("127.0.0.1", &both, "x-forwarded-for").unwrap(),
            "198.51.100.2"
        );
        // Another header than the configured one is the client's: ignored.
        let xff = [("X-Forwarded-For", "198.51.100.2")];
        assert_eq!(from("127.0.0.1", &xff, "x-real-ip").unwrap(), "127.0.0.1");
        // An untrusted peer is the client, whatever it sends.
        assert_eq!(
            from("203.0.113.9", &both, "x-real-ip").unwrap(),
            "203.0.113.9"
        );
        // X-Forwarded-For: the right-most hop that is not a trusted proxy.
        let chain = [("X-Forwarded-For", "192.0.2.66, 198.51.100.9, 10.0.0.7")];
        assert_eq!(
            from("10.0.0.2", &chain, "x-forwarded-for").unwrap(),
            "198.51.100.9"
        );
        assert!(from("127.0.0.1", &[("X-Real-IP", "nope")], "x-real-ip").is_err());
        // A second copy beside the proxy's: which one counts would be a guess.
        let twice = [("X-Real-IP", "198.51.100.7"), ("X-Real-IP", "127.0.0.1")];
        let req = twice
            .iter()
            .fold(TestRequest::default(), |req, header| {
                req.append_header(*header)
            })
            .peer_addr("127.0.0.1:1000".parse().unwrap())
            .to_http_request();
        assert!(client_ip(&req, &trusted, "x-real-ip").is_err());
        // X-Forwarded-For lines are one list: the right end is the proxy's.
        let req = TestRequest::default()
            .append_header(("X-Forwarded-For", "192.0.2.66"))
            .append_header(("X-Forwarded-For", "198.51.100.9, 10.0.0.7"))
            .peer_addr("10.0.0.2:1000".parse().unwrap())
            .to_http_request();
        assert_eq!(
            client_ip(&req, &trusted, "x-forwarded-for")
                .unwrap()
                .to_string(),
            "198.51.100.9"
        );
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
