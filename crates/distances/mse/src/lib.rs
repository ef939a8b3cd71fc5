//! Sum of squared differences over all gradient tensors (1-D ones included), as peers use.

use gradmatch_core::{Distance, Result, Tensor};

pub const NAME: &str = "mse";
pub const SUMMARY: &str = "sum of squared differences over all gradient tensors";

#[derive(Debug, Default, Clone, Copy)]
pub struct Mse;

impl Distance for Mse {
    fn distance(&self, real: &[Tensor], syn: &[Tensor]) -> Result<Tensor> {
        let (a, b) = (flatten_all(real)?, flatten_all(syn)?);
        (a - b)?.sqr()?.sum_all()
    }
}

/// Every tensor flattened and concatenated, in order.
pub fn flatten_all(tensors: &[Tensor]) -> Result<Tensor> {
    Tensor::cat(&tensors.iter().map(|t| t.flatten_all()).collect::<Result<Vec<_>>>()?, 0)
}
