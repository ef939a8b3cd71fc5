use crate::Distance;
use candle_core::{Result, Tensor};

/// What the engine offers a gradient level during one matching step: gradients of the mean
/// cross-entropy of the current network with respect to each of its parameters.
///
/// Real-image gradients are constants (no graph); synthetic-image gradients stay differentiable with
/// respect to the synthetic images, so the returned matching loss can be back-propagated to them.
pub trait MatchContext {
    fn num_classes(&self) -> usize;
    /// Index of the outer iteration (0-based), for levels that alternate between iterations.
    fn iteration(&self) -> usize;
    /// For every class, in class order, the gradient on a fresh batch of real images of that class
    /// (256 by default). One call computes all classes (batched as the device allows).
    fn real_class_grads(&mut self) -> Result<Vec<Vec<Tensor>>>;
    /// For every class, in class order, the differentiable gradient on its synthetic images.
    fn syn_class_grads(&mut self) -> Result<Vec<Vec<Tensor>>>;
    /// Gradient on `n` random real images drawn from all classes.
    fn real_mixed_grads(&mut self, n: usize) -> Result<Vec<Tensor>>;
    /// Differentiable gradient on a shuffled batch of at most `max` synthetic images of all classes.
    fn syn_mixed_grads(&mut self, max: usize) -> Result<Vec<Tensor>>;
}

/// What to match: turns the gradients the context offers into one scalar matching loss.
pub trait GradientLevel: Send + Sync {
    fn matching_loss(&self, ctx: &mut dyn MatchContext, distance: &dyn Distance) -> Result<Tensor>;
}
