use candle_core::{Result, Tensor};
use rand::RngCore;

/// Which real images of a class make a coreset: the baselines of DC's table beside condensation
/// (Random, Herding, K-Center, Forgetting). A coreset is real images, chosen once.
pub trait Selection: Send + Sync {
    /// `n` training-split indices of `class`, distinct, in the order chosen.
    fn select(&self, ctx: &mut dyn SelectContext, class: usize, n: usize) -> Result<Vec<usize>>;
}

/// What a selection sees of the training split.
pub trait SelectContext {
    /// The training-split indices of the images of `class`, ascending.
    fn class_indices(&self, class: usize) -> &[usize];
    /// The selection's random stream: draw from nothing else, so that a seed gives the same set.
    fn rng(&mut self) -> &mut dyn RngCore;
    /// `n` distinct images of `class` drawn uniformly from [`SelectContext::rng`]: the Random
    /// baseline's draw.
    fn uniform(&mut self, class: usize, n: usize) -> Vec<usize>;
    /// Features `(indices.len(), d)` of training images `indices` under a network trained on the
    /// whole training split (the input of its classifier), as f32 on the host.
    fn features(&mut self, indices: &[usize]) -> Result<Tensor>;
    /// How often each image of `indices` was forgotten (classified correctly, then wrongly at its next
    /// visit) while that network trained (Toneva et al., 2019).
    fn forgetting_events(&mut self, indices: &[usize]) -> Result<Vec<u32>>;
}
