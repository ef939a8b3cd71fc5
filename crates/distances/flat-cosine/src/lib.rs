//! 1 - cos over the flattened concatenation of all gradient tensors, as peers use.

use gradmatch_core::{Distance, NoOptions, OptionError, Plugin, Result, Tensor};
use gradmatch_distance_angle::row_cosine;

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

impl Plugin for FlatCosine {
    const NAME: &'static str = "flat-cosine";
    const SUMMARY: &'static str = "1 - cos over all gradient tensors flattened into one vector";
    type Options = NoOptions;
    fn from_options(_: NoOptions) -> std::result::Result<Self, OptionError> {
        Ok(FlatCosine)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;
    use proptest::prelude::*;

    fn g(v: &[f64]) -> Vec<Tensor> {
        vec![Tensor::from_slice(&v[..6], (2, 3), &Device::Cpu).unwrap(), Tensor::from_slice(&v[6..], 2, &Device::Cpu).unwrap()]
    }

    fn d(x: &[f64], y: &[f64]) -> f64 {
        FlatCosine.distance(&g(x), &g(y)).unwrap().to_scalar::<f64>().unwrap()
    }

    proptest! {
        #[test]
        fn bounded_symmetric_scale_invariant(a in prop::collection::vec(-5f64..5.0, 8), b in prop::collection::vec(-5f64..5.0, 8), k in 0.01f64..100.0) {
            prop_assert!((-1e-12..=2.0 + 1e-12).contains(&d(&a, &b)));
            prop_assert!((d(&a, &b) - d(&b, &a)).abs() < 1e-9);
            let ka: Vec<f64> = a.iter().map(|x| x * k).collect();
            prop_assert!((d(&ka, &b) - d(&a, &b)).abs() < 1e-9);
            prop_assert!(d(&a, &ka).abs() < 1e-9);
            prop_assert!(d(&[0.0; 8], &b).is_finite());
        }
    }
}
