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
    use candle_core::Device;
    use proptest::prelude::*;

    fn t(v: &[f64], shape: (usize, usize)) -> Tensor {
        Tensor::from_slice(v, shape, &Device::Cpu).unwrap()
    }

    #[test]
    fn hand_computed() {
        let d = Manhattan.distance(&[t(&[1.0, 0.0, 2.0, 2.0], (2, 2))], &[t(&[0.0, 1.0, 2.0, -1.0], (2, 2))]).unwrap();
        assert_eq!(d.to_scalar::<f64>().unwrap(), 5.0);
    }

    proptest! {
        #[test]
        fn symmetric_nonnegative_zero_on_identical(a in prop::collection::vec(-10f64..10.0, 12), b in prop::collection::vec(-10f64..10.0, 12)) {
            let (a, b) = ([t(&a, (3, 4))], [t(&b, (3, 4))]);
            let ab = Manhattan.distance(&a, &b).unwrap().to_scalar::<f64>().unwrap();
            let ba = Manhattan.distance(&b, &a).unwrap().to_scalar::<f64>().unwrap();
            prop_assert!(ab >= 0.0);
            prop_assert!((ab - ba).abs() < 1e-9);
            prop_assert_eq!(Manhattan.distance(&a, &a).unwrap().to_scalar::<f64>().unwrap(), 0.0);
        }
    }
}
