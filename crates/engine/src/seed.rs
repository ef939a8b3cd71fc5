/// A seed for sub-task `index` of stream `stream` of a run seeded with `seed` (SplitMix64 mixing):
/// every iteration, network and evaluation gets its own reproducible stream, so a resumed run
/// continues exactly as an uninterrupted one.
pub fn derive_seed(seed: u64, stream: u64, index: u64) -> u64 {
    let mut z = seed ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ index.wrapping_mul(0xD1B5_4A32_D192_ED03);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Streams of [`derive_seed`].
pub(crate) mod stream {
    pub const ITERATION: u64 = 1;
    pub const NETWORK: u64 = 2;
    pub const EVALUATION: u64 = 3;
    pub const INIT: u64 = 4;
}
