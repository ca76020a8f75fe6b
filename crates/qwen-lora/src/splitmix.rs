//! SplitMix64 (Steele, Lea and Flood, 2014): the workspace's one small PRNG and counter hash.
//!
//! Ours rather than a dependency's, so that batch orders, dropout seeds and dropout masks never
//! change with a crate's version: a resumed run must replay them exactly.

/// The generator: its state is the counter, advanced by the golden-ratio increment per draw.
#[derive(Debug, Clone)]
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    /// The next value of the sequence.
    #[inline(always)]
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in 0..n (n > 0); the modulo bias is negligible for data-set sizes.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

/// A well-mixed 64-bit hash of a counter: the first value of the sequence seeded with `z`.
#[inline(always)]
pub fn hash(z: u64) -> u64 {
    SplitMix64(z).next_u64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_reference_sequence() {
        // The first outputs for seed 1234567, from the reference C implementation.
        let mut r = SplitMix64(1234567);
        let got: Vec<u64> = (0..3).map(|_| r.next_u64()).collect();
        assert_eq!(got, [6457827717110365317, 3203168211198807973, 9817491932198370423]);
        assert_eq!(hash(1234567), got[0]);
    }
}
