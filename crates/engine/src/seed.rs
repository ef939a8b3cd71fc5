/// A seed for sub-task `index` of stream `stream` of a run seeded with `seed` (SplitMix64 mixing):
/// every iteration, network and evaluation gets its own reproducible stream, so a resumed run
/// continues exactly as an uninterrupted one.
pub fn derive_seed(seed: u64, stream: u64, index: u64) -> u64 {
    let mut z = seed ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ index.wrapping_mul(0xD1B5_4A32_D192_ED03);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Streams of [`derive_seed`], all in one place and never renumbered: a changed number changes every
/// result seeded from it.
pub mod stream {
    /// Outer iteration `i` of a condensation: its real batches and the inner training's shuffles.
    pub const ITERATION: u64 = 1;
    /// The initial weights of a network: of outer iteration `i`, or of an evaluation (index 0).
    pub const NETWORK: u64 = 2;
    /// The batch order and augmentation of an evaluation.
    pub const EVALUATION: u64 = 3;
    /// The initial synthetic images (noise or which real images).
    pub const INIT: u64 = 4;
    /// Evaluation network `n` of an image set, the same in every command of the runner.
    pub const SET_EVALUATION: u64 = 100;
    /// Which real images random-baseline subset `e` takes.
    pub const BASELINE_SUBSET: u64 = 200;
    /// The set seed that evaluates random-baseline subset `e` (through [`SET_EVALUATION`]).
    pub const BASELINE_EVALUATION: u64 = 201;
}

#[cfg(test)]
mod tests {
    use super::stream::*;

    #[test]
    fn streams_are_distinct() {
        let all = [ITERATION, NETWORK, EVALUATION, INIT, SET_EVALUATION, BASELINE_SUBSET, BASELINE_EVALUATION];
        for (i, s) in all.iter().enumerate() {
            assert!(!all[..i].contains(s), "stream {s} is used twice");
        }
    }
}
