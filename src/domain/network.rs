//! IP addresses and networks as every layer compares them.

use std::net::IpAddr;

use ipnet::{IpNet, Ipv4Net};

/// IPv4-mapped IPv6 addresses (`::ffff:192.0.2.1`, what dual-stack sockets
/// report) are matched as the IPv4 address they are.
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// An IPv4-mapped network (`::ffff:198.51.100.0/120`) as the IPv4 network it
/// covers (`198.51.100.0/24`): clients are canonicalised to IPv4, so a mapped
/// network kept as IPv6 would never match anyone.
pub fn canonical_network(network: IpNet) -> IpNet {
    match network {
        IpNet::V6(v6) if v6.prefix_len() >= 96 => match v6.network().to_ipv4_mapped() {
            Some(v4) => Ipv4Net::new(v4, v6.prefix_len() - 96)
                .map(IpNet::V4)
                .unwrap_or(network),
            None => network,
        },
        other => other,
    }
}

/// An address or CIDR network, normalised: host bits cleared, IPv4-mapped
/// forms as IPv4. A bare address is a /32 or /128.
pub fn parse_network(text: &str) -> Option<IpNet> {
    let network = match text.parse::<IpNet>() {
        Ok(net) => net.trunc(),
        Err(_) => IpNet::from(text.parse::<IpAddr>().ok()?),
    };
    Some(canonical_network(network))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_are_normalised() {
        for (text, expected) in [
            ("10.1.2.3/16", "10.1.0.0/16"),
            ("2001:db8::1", "2001:db8::1/128"),
            ("192.0.2.7", "192.0.2.7/32"),
            ("::ffff:198.51.100.0/120", "198.51.100.0/24"),
            ("::ffff:198.51.100.7", "198.51.100.7/32"),
        ] {
            assert_eq!(parse_network(text).unwrap().to_string(), expected, "{text}");
        }
        assert!(parse_network("10.0.0.0/33").is_none());
        assert!(parse_network("nonsense").is_none());
    }

    #[test]
    fn mapped_addresses_are_ipv4() {
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        assert_eq!(canonical_ip(mapped).to_string(), "192.0.2.1");
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        assert_eq!(canonical_ip(v6), v6);
    }
}
