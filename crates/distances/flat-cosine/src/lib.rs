//! 1 - cos over the flattened concatenation of all gradient tensors, as peers use.

use gradmatch_core::{Distance, Result, Tensor};
use gradmatch_distance_angle::row_cosine;

pub const NAME: &str = "flat-cosine";
pub const SUMMARY: &str = "1 - cos over all gradient tensors flattened into one vector";

#[derive(Debug, Default, Clone, Copy)]
pub struct FlatCosine;

impl Distance for FlatCosine {
    fn distance(&self, real: &[Tensor], syn: &[Tensor]) -> Result<Tensor> {
        let row = |ts: &[Tensor]| -> Result<Tensor> {
            Tensor::cat(&ts.iter().map(|t| t.flatten_all()).collect::<Result<Vec<_>>>()?, 0)?.unsqueeze(0)
        };
        row_cosine(&row(real)?, &row(syn)?)?.affine(-1.0, 1.0)?.sum_all()
    }
}
