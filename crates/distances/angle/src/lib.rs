//! The angle distance of DC ("baseline" in the reference code): sum over rows of (1 - cos).

use gradmatch_core::{at_least, plugin_without_options, sum_over_tensors, Distance, Result, Tensor};

/// torch's `cosine_similarity` guard.
pub const EPS: f64 = 1e-8;

/// Row-wise cosine of two `(rows, cols)` tensors, as torch's `cosine_similarity`:
/// a.b / sqrt(max(|a|^2 |b|^2, eps^2)). Differentiable everywhere, zero rows included.
pub fn row_cosine(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let dot = (a * b)?.sum(1)?;
    let norms = (a.sqr()?.sum(1)? * b.sqr()?.sum(1)?)?;
    dot / at_least(&norms, EPS * EPS)?.sqrt()?
}

#[derive(Debug, Default, Clone, Copy)]
pub struct Angle;

impl Distance for Angle {
    fn distance(&self, real: &[Tensor], syn: &[Tensor]) -> Result<Tensor> {
        sum_over_tensors(real, syn, |a, b| row_cosine(a, b)?.affine(-1.0, 1.0)?.sum_all())
    }
}

plugin_without_options!(Angle, "angle", "sum over rows of (1 - cos(real, syn)) (DC)");

#[cfg(test)]
mod tests;
