use candle_core::{Result, Tensor};

/// A random, differentiable image transform (DSA's "Siamese" augmentation): what both sides of a
/// gradient match see, so that the real and the synthetic images of a class are transformed alike.
pub trait Augmentation: Send + Sync {
    /// Transforms the batch `x` of shape `(n, c, h, w)` by the transform and parameters that `seed`
    /// alone determines: the same seed gives the same transform and parameters whatever `n`, and
    /// every image of the batch gets them. Differentiable with respect to `x` (tensor operations
    /// only, on `x`'s device).
    fn augment(&self, x: &Tensor, seed: u64) -> Result<Tensor>;
}
