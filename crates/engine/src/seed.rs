use gradmatch_core::mix64;

/// A seed for sub-task `index` of stream `stream` of a run seeded with `seed` ([`mix64`]ed):
/// every iteration, network and evaluation gets its own reproducible stream, so a resumed run
/// continues exactly as an uninterrupted one.
pub fn derive_seed(seed: u64, stream: u64, index: u64) -> u64 {
    mix64(seed ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ index.wrapping_mul(0xD1B5_4A32_D192_ED03))
}

/// The augmentation seeds of matching step `step` of outer iteration `iteration`, in stream
/// [`stream::AUGMENT`]: one per class (its real batch and its synthetic images, Siamese), one for the
/// mixed batches, and one per batch of the inner training that follows the step.
#[derive(Debug, Clone, Copy)]
pub struct AugmentSeeds {
    pub run_seed: u64,
    pub iteration: usize,
    pub step: usize,
    /// Matching steps per outer iteration.
    pub steps: usize,
    pub classes: usize,
}

impl AugmentSeeds {
    /// Slots per matching step: the classes, the mixed batches, the inner training.
    fn slot(&self, slot: usize) -> u64 {
        let per_step = self.classes as u64 + 2;
        let index = ((self.iteration * self.steps + self.step) as u64) * per_step + slot as u64;
        derive_seed(self.run_seed, stream::AUGMENT, index)
    }

    pub fn class(&self, class: usize) -> u64 {
        self.slot(class)
    }

    pub fn mixed(&self) -> u64 {
        self.slot(self.classes)
    }

    /// Batch `batch` (counted over every epoch) of the inner training after the step.
    pub fn training_batch(&self, batch: usize) -> u64 {
        derive_seed(self.slot(self.classes + 1), stream::AUGMENT, batch as u64)
    }
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
    /// The augmentation of a condensation's batches: both sides of a match, and the inner training.
    pub const AUGMENT: u64 = 5;
    /// The augmentation of training batch `b` (counted over every epoch) of an evaluation.
    pub const EVAL_AUGMENT: u64 = 6;
    /// The CutMix draws of training batch `b` (counted over every epoch) of an evaluation.
    pub const EVAL_MIX: u64 = 7;
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
    use super::AugmentSeeds;

    #[test]
    fn augment_seeds_never_repeat_within_a_run() {
        let mut seen = std::collections::HashSet::new();
        for iteration in 0..3 {
            for step in 0..4 {
                let s = AugmentSeeds { run_seed: 7, iteration, step, steps: 4, classes: 3 };
                let all = (0..3).map(|c| s.class(c)).chain([s.mixed()]).chain((0..5).map(|b| s.training_batch(b)));
                for seed in all {
                    assert!(seen.insert(seed), "seed {seed} twice (iteration {iteration}, step {step})");
                }
            }
        }
    }

    #[test]
    fn streams_are_distinct() {
        let all =
            [ITERATION, NETWORK, EVALUATION, INIT, AUGMENT, EVAL_AUGMENT, EVAL_MIX, SET_EVALUATION, BASELINE_SUBSET, BASELINE_EVALUATION];
        for (i, s) in all.iter().enumerate() {
            assert!(!all[..i].contains(s), "stream {s} is used twice");
        }
    }
}
