//! 1 - cos over the flattened concatenation of all gradient tensors, as peers use.

use gradmatch_core::{flatten_into_one, plugin_without_options, Distance, Result, Tensor};
use gradmatch_distance_angle::row_cosine;

#[derive(Debug, Default, Clone, Copy)]
pub struct FlatCosine;

impl Distance for FlatCosine {
    fn distance(&self, real: &[Tensor], syn: &[Tensor]) -> Result<Tensor> {
        let row = |ts: &[Tensor]| flatten_into_one(ts)?.unsqueeze(0);
        row_cosine(&row(real)?, &row(syn)?)?.affine(-1.0, 1.0)?.sum_all()
    }
}

plugin_without_options!(FlatCosine, "flat-cosine", "1 - cos over all gradient tensors flattened into one vector");

#[cfg(test)]
mod tests {
    use super::*;
    use gradmatch_testkit::{check_distance_laws, tensor, value, Bound, DistanceLaws};

    #[test]
    fn hand_computed() {
        // One vector over both tensors, the 1-D one included: (1, 0, 0) against (0, 1, 1), cos 0.
        let (real, syn) = ([tensor(&[1.0, 0.0], &[1, 2]), tensor(&[0.0], &[1])], [tensor(&[0.0, 1.0], &[1, 2]), tensor(&[1.0], &[1])]);
        assert!((value(&FlatCosine, &real, &syn) - 1.0).abs() < 1e-12);
    }

    #[test]
    fn laws() {
        check_distance_laws(
            &FlatCosine,
            &DistanceLaws { symmetric: true, scale_invariant: true, bound: Some(Bound::Total(2.0)), ..DistanceLaws::UNIVERSAL },
        );
    }
}
