use candle_core::{Result, Tensor};
use rand::RngCore;

/// Which real images a match is made against: for each class, the training-split indices of the
/// real batch that the class's synthetic gradients are matched to. Uniform draws (DC's) are the
/// default; DREAM matches against the images nearest k-means centres of the network's features.
pub trait Sampler: Send + Sync {
    /// What draws the batches while one network lives (a condensation draws a fresh network every
    /// outer iteration): what a sampler keeps between its matching steps (DREAM's chosen images)
    /// lives in it and goes with the network.
    fn for_network(&self) -> Box<dyn ClassBatches + '_>;

    /// `n` real images of `class` that start the synthetic set (`init = "sampler"`), seen through
    /// the network the condensation's first outer iteration draws.
    fn initial(&self, ctx: &mut dyn SampleContext, class: usize, n: usize) -> Result<Vec<usize>>;
}

/// The batches of one network, one call per class and matching step.
pub trait ClassBatches {
    /// The training-split indices of `class`'s real batch at the context's matching step: `batch
    /// size` images of the class (all of them, once each, when it has fewer).
    fn batch(&mut self, ctx: &mut dyn SampleContext, class: usize) -> Result<Vec<usize>>;
}

/// What a sampler sees of a condensation.
pub trait SampleContext {
    /// The training-split indices of the images of `class`, ascending.
    fn class_indices(&self, class: usize) -> &[usize];
    /// Real images per class per match (`batch_real`).
    fn batch_size(&self) -> usize;
    /// The outer iteration (0-based).
    fn iteration(&self) -> usize;
    /// The matching step since the network was drawn (0-based).
    fn step(&self) -> usize;
    /// The condensation's random stream of this outer iteration: draw from nothing else, so that a
    /// seed gives the same run.
    fn rng(&mut self) -> &mut dyn RngCore;
    /// `n` distinct images of `class` drawn uniformly from [`SampleContext::rng`] (all of them,
    /// shuffled, if it has fewer): DC's draw.
    fn uniform(&mut self, class: usize, n: usize) -> Vec<usize>;
    /// Features `(indices.len(), d)` of training images `indices` under the current network (the
    /// input of its classifier; no graph), on the device of the condensation.
    fn features(&mut self, indices: &[usize]) -> Result<Tensor>;
}
