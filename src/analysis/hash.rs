//! A version-stable hash for seeds and fingerprints: the same bytes give the same value on any
//! platform, toolchain or dependency version (std's `DefaultHasher` and `Hash` impls promise
//! neither), so "same data and seed, same numbers" survives upgrades.
//!
//! Algorithm: 64-bit FNV-1a (offset 0xcbf29ce484222325, prime 0x100000001b3) over the bytes fed
//! in, each text followed by a 0xff separator (no UTF-8 text contains that byte) and each
//! integer as 8 little-endian bytes; the state is finished with SplitMix64's mixer, which
//! spreads FNV's weak low bits. Not cryptographic.

/// SplitMix64's finaliser: a strong mix of 64 bits.
pub fn mix(mut v: u64) -> u64 {
    v = (v ^ (v >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    v = (v ^ (v >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    v ^ (v >> 31)
}

/// The stable hasher; see the module documentation.
#[derive(Debug, Clone, Copy)]
pub struct StableHash(u64);

impl Default for StableHash {
    fn default() -> Self {
        StableHash(0xcbf2_9ce4_8422_2325)
    }
}

impl StableHash {
    fn bytes(mut self, bytes: &[u8]) -> Self {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
        self
    }

    /// Feeds a text and its separator.
    pub fn text(self, s: &str) -> Self {
        self.bytes(s.as_bytes()).bytes(&[0xff])
    }

    /// Feeds an integer as 8 little-endian bytes.
    pub fn int(self, v: u64) -> Self {
        self.bytes(&v.to_le_bytes())
    }

    pub fn finish(self) -> u64 {
        mix(self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pinned values: a change of algorithm must show here (and change the fingerprint version).
    #[test]
    fn values_are_pinned() {
        // FNV-1a of the empty input is the offset basis; of "a" the published 0xaf63dc4c8601ec8c.
        assert_eq!(StableHash::default().bytes(b"a").0, 0xaf63_dc4c_8601_ec8c);
        assert_eq!(
            StableHash::default().bytes(b"foobar").0,
            0x8594_4171_f739_67e8
        );
        assert_eq!(
            StableHash::default().text("u-1").int(7).finish(),
            StableHash::default().text("u-1").int(7).finish()
        );
        assert_ne!(
            StableHash::default().text("ab").text("c").finish(),
            StableHash::default().text("a").text("bc").finish()
        );
    }
}
