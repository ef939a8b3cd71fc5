//! Sum of squared differences over all gradient tensors (1-D ones included), as peers use.

use gradmatch_core::{Distance, NoOptions, OptionError, Plugin, Result, Tensor};

#[derive(Debug, Default, Clone, Copy)]
pub struct Mse;

impl Distance for Mse {
    fn distance(&self, real: &[Tensor], syn: &[Tensor]) -> Result<Tensor> {
        let (a, b) = (flatten_all(real)?, flatten_all(syn)?);
        (a - b)?.sqr()?.sum_all()
    }
}

impl Plugin for Mse {
    const NAME: &'static str = "mse";
    const SUMMARY: &'static str = "sum of squared differences over all gradient tensors";
    type Options = NoOptions;
    fn from_options(_: NoOptions) -> std::result::Result<Self, OptionError> {
        Ok(Mse)
    }
}

/// Every tensor flattened and concatenated, in order.
pub fn flatten_all(tensors: &[Tensor]) -> Result<Tensor> {
    Tensor::cat(&tensors.iter().map(|t| t.flatten_all()).collect::<Result<Vec<_>>>()?, 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;
    use proptest::prelude::*;

    fn g(v: &[f64]) -> Vec<Tensor> {
        vec![Tensor::from_slice(&v[..6], (2, 3), &Device::Cpu).unwrap(), Tensor::from_slice(&v[6..], 2, &Device::Cpu).unwrap()]
    }

    #[test]
    fn counts_one_dimensional_tensors_too() {
        let a = g(&[0.0; 8]);
        let mut v = [0.0; 8];
        v[7] = 3.0;
        assert_eq!(Mse.distance(&a, &g(&v)).unwrap().to_scalar::<f64>().unwrap(), 9.0);
    }

    proptest! {
        #[test]
        fn nonnegative_symmetric_zero_on_identical(a in prop::collection::vec(-5f64..5.0, 8), b in prop::collection::vec(-5f64..5.0, 8)) {
            let d = |x: &[f64], y: &[f64]| Mse.distance(&g(x), &g(y)).unwrap().to_scalar::<f64>().unwrap();
            prop_assert!(d(&a, &b) >= 0.0);
            prop_assert!((d(&a, &b) - d(&b, &a)).abs() < 1e-12);
            prop_assert_eq!(d(&a, &a), 0.0);
        }
    }
}
