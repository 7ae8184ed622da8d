//! Where a client address is, as far as the GeoIP databases tell (SPEC §10).

/// A client's country and autonomous system: `XX` and 0 when unknown (no
/// database, or no entry for the address).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Geo {
    /// Upper-case ISO 3166-1 alpha-2.
    pub country: [u8; 2],
    pub asn: u32,
}

impl Geo {
    pub const UNKNOWN: Geo = Geo {
        country: *b"XX",
        asn: 0,
    };

    pub fn country_str(&self) -> &str {
        std::str::from_utf8(&self.country).unwrap_or("XX")
    }
}

impl Default for Geo {
    fn default() -> Geo {
        Geo::UNKNOWN
    }
}
