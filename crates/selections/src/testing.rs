//! A selection context over hand-made features: class 0 is training-split indices 10, 11, ...

use crate::Rows;
use gradmatch_core::candle_core::{Device, Tensor};
use gradmatch_core::rand::{seq::index::sample, RngCore, SeedableRng};
use gradmatch_core::{Result, SelectContext};
use rand_chacha::ChaCha8Rng;

/// One-dimensional features at `points`.
pub fn line(points: &[f64]) -> Rows {
    Rows::from_vec(points.to_vec(), 1)
}

pub struct Context {
    rows: Rows,
    indices: Vec<usize>,
    rng: ChaCha8Rng,
    /// Forgetting events of class 0's images, in class order.
    pub events: Vec<u32>,
}

impl Context {
    pub fn new(rows: Rows) -> Context {
        let indices = (10..10 + rows.len()).collect();
        Context { events: vec![0; rows.len()], rows, indices, rng: ChaCha8Rng::seed_from_u64(0) }
    }

    pub fn with_seed(self, seed: u64) -> Context {
        Context { rng: ChaCha8Rng::seed_from_u64(seed), ..self }
    }

    fn position(&self, index: usize) -> usize {
        self.indices.iter().position(|&i| i == index).expect("an image of class 0")
    }
}

impl SelectContext for Context {
    fn class_indices(&self, _: usize) -> &[usize] {
        &self.indices
    }

    fn rng(&mut self) -> &mut dyn RngCore {
        &mut self.rng
    }

    fn uniform(&mut self, _: usize, n: usize) -> Vec<usize> {
        sample(&mut self.rng, self.indices.len(), n).into_iter().map(|i| self.indices[i]).collect()
    }

    fn features(&mut self, indices: &[usize]) -> Result<Tensor> {
        let values: Vec<f64> = indices.iter().flat_map(|&i| self.rows.row(self.position(i)).to_vec()).collect();
        let width = self.rows.row(0).len();
        Tensor::from_vec(values, (indices.len(), width), &Device::Cpu)
    }

    fn forgetting_events(&mut self, indices: &[usize]) -> Result<Vec<u32>> {
        Ok(indices.iter().map(|&i| self.events[self.position(i)]).collect())
    }
}
