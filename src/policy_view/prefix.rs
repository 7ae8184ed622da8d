//! Networks grouped by prefix length, and the fast map used for keys that
//! come from the database.

use std::collections::hash_map::Entry;
use std::net::IpAddr;

use ipnet::IpNet;

use crate::domain::canonical_ip;

/// FxHash (rustc-hash) for the fixed-size keys looked up per decision
/// (SHA-256 digests, ids, networks): several times cheaper than SipHash.
/// Only for keys that come from the database (written by admins): a
/// client's key only ever probes these maps, so it cannot flood them.
/// Logins keep SipHash: on text with a common prefix FxHash collides more.
pub type FastMap<K, V> = rustc_hash::FxHashMap<K, V>;

/// Networks grouped by prefix length, looked up from the most specific down:
/// a lookup costs one hash probe per distinct prefix length, however many
/// networks there are.
#[derive(Debug)]
pub struct PrefixTable<T> {
    /// (prefix length, is IPv6, networks), longest prefix first.
    levels: Vec<(u8, bool, FastMap<IpNet, T>)>,
    /// Further values of a network already present, in insertion order:
    /// `lookup_where` falls back on them when it filters out the first.
    shadowed: FastMap<IpNet, Vec<T>>,
}

impl<T> Default for PrefixTable<T> {
    fn default() -> Self {
        PrefixTable {
            levels: Vec::new(),
            shadowed: FastMap::default(),
        }
    }
}

impl<T> PrefixTable<T> {
    /// The first value inserted for a network is the one `lookup` finds.
    pub fn insert(&mut self, network: IpNet, value: T) {
        let network = network.trunc();
        let key = (network.prefix_len(), matches!(network, IpNet::V6(_)));
        let position = match self
            .levels
            .iter()
            .position(|(len, v6, _)| (*len, *v6) == key)
        {
            Some(position) => position,
            None => {
                self.levels.push((key.0, key.1, FastMap::default()));
                self.levels.sort_by_key(|level| std::cmp::Reverse(level.0));
                self.levels
                    .iter()
                    .position(|(len, v6, _)| (*len, *v6) == key)
                    .expect("just inserted")
            }
        };
        match self.levels[position].2.entry(network) {
            Entry::Vacant(slot) => {
                slot.insert(value);
            }
            Entry::Occupied(_) => self.shadowed.entry(network).or_default().push(value),
        }
    }

    /// The value of the most specific network containing `ip`.
    pub fn lookup(&self, ip: IpAddr) -> Option<&T> {
        let ip = canonical_ip(ip);
        let is_v6 = ip.is_ipv6();
        self.levels
            .iter()
            .filter(|(_, v6, _)| *v6 == is_v6)
            .find_map(|(len, _, networks)| {
                let network = IpNet::new(ip, *len).ok()?.trunc();
                networks.get(&network)
            })
    }

    /// The first value that `keep` accepts of the most specific network
    /// containing `ip` that has one, with that network's prefix length.
    pub fn lookup_where(&self, ip: IpAddr, keep: impl Fn(&T) -> bool) -> Option<(u8, &T)> {
        let ip = canonical_ip(ip);
        let is_v6 = ip.is_ipv6();
        self.levels
            .iter()
            .filter(|(_, v6, _)| *v6 == is_v6)
            .find_map(|(len, _, networks)| {
                let network = IpNet::new(ip, *len).ok()?.trunc();
                let first = networks.get(&network)?;
                if keep(first) {
                    return Some((*len, first));
                }
                let others = self.shadowed.get(&network)?;
                others
                    .iter()
                    .find(|value| keep(value))
                    .map(|value| (*len, value))
            })
    }

    pub fn is_empty(&self) -> bool {
        self.levels.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(text: &str) -> IpNet {
        crate::domain::parse_network(text).unwrap()
    }

    #[test]
    fn prefix_table_most_specific_wins() {
        let mut table = PrefixTable::default();
        table.insert(net("10.0.0.0/8"), "wide");
        table.insert(net("10.1.0.0/16"), "narrow");
        table.insert(net("10.1.0.0/16"), "ignored duplicate");
        table.insert(net("::/0"), "any v6");
        assert_eq!(table.lookup("10.1.9.9".parse().unwrap()), Some(&"narrow"));
        assert_eq!(table.lookup("10.2.9.9".parse().unwrap()), Some(&"wide"));
        assert_eq!(table.lookup("11.0.0.1".parse().unwrap()), None);
        assert_eq!(
            table.lookup("2001:db8::1".parse().unwrap()),
            Some(&"any v6")
        );
    }

    #[test]
    fn prefix_table_filtered_lookup_falls_back_on_shadowed_values() {
        let mut table = PrefixTable::default();
        table.insert(net("10.0.0.0/8"), 1);
        table.insert(net("10.1.0.0/16"), 2);
        table.insert(net("10.1.0.0/16"), 3);
        let ip = "10.1.9.9".parse().unwrap();
        assert_eq!(table.lookup_where(ip, |_| true), Some((16, &2)));
        assert_eq!(table.lookup_where(ip, |v| *v != 2), Some((16, &3)));
        assert_eq!(table.lookup_where(ip, |v| *v == 1), Some((8, &1)));
        assert_eq!(table.lookup_where(ip, |_| false), None);
    }
}
