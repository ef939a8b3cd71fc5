use candle_core::{Result, Tensor};

/// A random, differentiable image transform (DSA's "Siamese" augmentation): what both sides of a
/// gradient match see, so that the real and the synthetic images of a class are transformed alike.
pub trait Augmentation: Send + Sync {
    /// Transforms the batch `x` of shape `(n, c, h, w)` by the transform and parameters that `seed`
    /// alone determines: the same seed gives the same transform and parameters whatever `n`, and
    /// every image of the batch gets them. Differentiable with respect to `x` (tensor operations
    /// only, on `x`'s device).
    fn augment(&self, x: &Tensor, seed: u64) -> Result<Tensor>;

    /// Transforms each image of the training batch `x` with its own parameters, all drawn from
    /// `seed`: how the batches that train an evaluation network are augmented (DSA's non-Siamese
    /// use). The default augments image `i` alone with seed [`image_seed`]`(seed, i)`.
    fn augment_each(&self, x: &Tensor, seed: u64) -> Result<Tensor> {
        let images = (0..x.dim(0)?).map(|i| self.augment(&x.narrow(0, i, 1)?, image_seed(seed, i))).collect::<Result<Vec<_>>>()?;
        Tensor::cat(&images, 0)
    }

    /// [`Augmentation::augment_each`] of each of `seeds.len()` equal, contiguous groups of `x`,
    /// group g with `seeds[g]`: the batches of an ensemble's networks, one group per network. An
    /// augmentation may do them in one pass (on a GPU, one launch for all instead of one each).
    fn augment_groups(&self, x: &Tensor, seeds: &[u64]) -> Result<Tensor> {
        let per_group = x.dim(0)? / seeds.len().max(1);
        let groups = seeds.iter().enumerate().map(|(g, &seed)| self.augment_each(&x.narrow(0, g * per_group, per_group)?, seed));
        Tensor::cat(&groups.collect::<Result<Vec<_>>>()?, 0)
    }
}

/// The seed of image `index` of a batch augmented with `seed`.
pub fn image_seed(seed: u64, index: usize) -> u64 {
    mix64(seed.wrapping_add((index as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)))
}

/// SplitMix64's finaliser: every bit of the output depends on every bit of `z`, so that nearby seeds
/// (consecutive indices) give unrelated streams.
pub fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
