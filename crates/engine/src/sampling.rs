//! The engine's side of [`SampleContext`]: a condensation's real images, its current network and
//! its random stream, as a sampler sees them.

use crate::device::DeviceData;
use candle_core::{Result, Tensor};
use gradmatch_core::rand::RngCore;
use gradmatch_core::SampleContext;
use gradmatch_models::{Mode, Network};
use rand_chacha::ChaCha8Rng;

/// A condensation's real images, current network and stream as a sampler sees them (public for the
/// bench's clustering row).
pub struct RealDraws<'a> {
    pub real: &'a DeviceData<'a>,
    pub net: &'a Network,
    /// The mode the matching step runs the network in (`Eval` once batch norm is set).
    pub mode: Mode,
    pub rng: &'a mut ChaCha8Rng,
    pub batch_size: usize,
    pub iteration: usize,
    pub step: usize,
    /// Most images one pass of the network embeds (the real side's pass).
    pub pass: usize,
}

impl SampleContext for RealDraws<'_> {
    fn class_indices(&self, class: usize) -> &[usize] {
        self.real.split.class_indices(class)
    }

    fn batch_size(&self) -> usize {
        self.batch_size
    }

    fn iteration(&self) -> usize {
        self.iteration
    }

    fn step(&self) -> usize {
        self.step
    }

    fn rng(&mut self) -> &mut dyn RngCore {
        self.rng
    }

    fn uniform(&mut self, class: usize, n: usize) -> Vec<usize> {
        self.real.split.sample_class(class, n, self.rng)
    }

    fn features(&mut self, indices: &[usize]) -> Result<Tensor> {
        let passes = indices
            .chunks(self.pass.max(1))
            .map(|chunk| self.net.embed(&self.real.select(chunk)?, self.mode))
            .collect::<Result<Vec<_>>>()?;
        Tensor::cat(&passes, 0)
    }
}
