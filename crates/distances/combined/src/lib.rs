//! The combined distance of Jiang et al. (the paper's "D", "improved" in its code): angle + magnitude.

use gradmatch_core::{Distance, NoOptions, OptionError, Plugin, Result, Tensor};
use gradmatch_distance_angle::Angle;
use gradmatch_distance_magnitude::Magnitude;

#[derive(Debug, Default, Clone, Copy)]
pub struct Combined;

impl Distance for Combined {
    fn distance(&self, real: &[Tensor], syn: &[Tensor]) -> Result<Tensor> {
        Angle.distance(real, syn)? + Magnitude.distance(real, syn)?
    }
}

impl Plugin for Combined {
    const NAME: &'static str = "combined";
    const SUMMARY: &'static str = "angle + magnitude, per row (the paper's D)";
    type Options = NoOptions;
    fn from_options(_: NoOptions) -> std::result::Result<Self, OptionError> {
        Ok(Combined)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;
    use proptest::prelude::*;

    fn g(v: &[f64]) -> Vec<Tensor> {
        vec![Tensor::from_slice(&v[..16], (2, 2, 2, 2), &Device::Cpu).unwrap(), Tensor::from_slice(&v[16..], 2, &Device::Cpu).unwrap()]
    }

    proptest! {
        #[test]
        fn is_angle_plus_magnitude_and_zero_on_identical(a in prop::collection::vec(-5f64..5.0, 18), b in prop::collection::vec(-5f64..5.0, 18)) {
            let value = |d: &dyn Distance, x: &[Tensor], y: &[Tensor]| d.distance(x, y).unwrap().to_scalar::<f64>().unwrap();
            let sum = value(&Angle, &g(&a), &g(&b)) + value(&Magnitude, &g(&a), &g(&b));
            prop_assert!((value(&Combined, &g(&a), &g(&b)) - sum).abs() < 1e-12);
            prop_assert!(value(&Combined, &g(&a), &g(&a)).abs() < 1e-9);
        }
    }
}
