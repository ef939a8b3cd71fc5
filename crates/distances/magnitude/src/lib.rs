//! The magnitude distance of Jiang et al.: sum over rows of |real - syn|_2.

use gradmatch_core::{at_least, plugin_without_options, sum_over_tensors, Distance, Result, Tensor};

/// Floor under the squared norm: keeps the gradient of sqrt finite.
const TINY: f64 = 1e-30;

/// Row-wise Euclidean norm of a `(rows, cols)` tensor whose gradient is 0 (not NaN) at a zero row,
/// like torch.norm's backward. Zero rows occur for real: dead units give zero gradient rows on both
/// sides. The value is exact: the floor only applies where the mask zeroes the result.
pub fn row_norm(x: &Tensor) -> Result<Tensor> {
    let sq = x.sqr()?.sum(1)?;
    // sq >= 0, so its sign is the mask sq > 0 (and no scalar goes to the GPU).
    let nonzero = sq.detach().sign()?;
    at_least(&sq, TINY)?.sqrt()? * nonzero
}

#[derive(Debug, Default, Clone, Copy)]
pub struct Magnitude;

impl Distance for Magnitude {
    fn distance(&self, real: &[Tensor], syn: &[Tensor]) -> Result<Tensor> {
        sum_over_tensors(real, syn, |a, b| row_norm(&(a - b)?)?.sum_all())
    }
}

plugin_without_options!(Magnitude, "magnitude", "sum over rows of |real - syn|_2");

#[cfg(test)]
mod tests;
