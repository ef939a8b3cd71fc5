//! The worked example of docs/write-a-distance.md: sum over rows of |real - syn|_1.
//!
//! A distance is one struct implementing `gradmatch_core::Distance`; `sum_over_tensors` gives the
//! paper's per-row view (4-D conv gradients as (out, in*h*w), 1-D tensors skipped).

use gradmatch_core::{sum_over_tensors, Distance, NoOptions, OptionError, Plugin, Result, Tensor};

#[derive(Debug, Default, Clone, Copy)]
pub struct Manhattan;

impl Distance for Manhattan {
    fn distance(&self, real: &[Tensor], syn: &[Tensor]) -> Result<Tensor> {
        // |x| has a subgradient of 0 at x = 0 in candle (sign(0) = 0): finite everywhere.
        sum_over_tensors(real, syn, |a, b| (a - b)?.abs()?.sum_all())
    }
}

impl Plugin for Manhattan {
    const NAME: &'static str = "manhattan";
    const SUMMARY: &'static str = "sum over rows of |real - syn|_1 (worked example)";
    type Options = NoOptions;
    fn from_options(_: NoOptions) -> std::result::Result<Self, OptionError> {
        Ok(Manhattan)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gradmatch_testkit::{check_distance_laws, tensor, value, DistanceLaws};

    #[test]
    fn hand_computed() {
        let d = value(&Manhattan, &[tensor(&[1.0, 0.0, 2.0, 2.0], &[2, 2])], &[tensor(&[0.0, 1.0, 2.0, -1.0], &[2, 2])]);
        assert_eq!(d, 5.0);
    }

    #[test]
    fn laws() {
        check_distance_laws(&Manhattan, &DistanceLaws { symmetric: true, triangle: true, skips_vectors: true, ..DistanceLaws::UNIVERSAL });
    }
}
