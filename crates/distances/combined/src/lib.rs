//! The combined distance of Jiang et al. (the paper's "D", "improved" in its code): angle + magnitude.

use gradmatch_core::{plugin_without_options, Distance, Result, Tensor};
use gradmatch_distance_angle::Angle;
use gradmatch_distance_magnitude::Magnitude;

#[derive(Debug, Default, Clone, Copy)]
pub struct Combined;

impl Distance for Combined {
    fn distance(&self, real: &[Tensor], syn: &[Tensor]) -> Result<Tensor> {
        Angle.distance(real, syn)? + Magnitude.distance(real, syn)?
    }
}

plugin_without_options!(Combined, "combined", "angle + magnitude, per row (the paper's D)");

#[cfg(test)]
mod tests {
    use super::*;
    use gradmatch_testkit::{check_distance_laws, gradient_set, gradient_values, value, DistanceLaws};
    use proptest::prelude::*;

    #[test]
    fn laws() {
        check_distance_laws(&Combined, &DistanceLaws { symmetric: true, skips_vectors: true, ..DistanceLaws::UNIVERSAL });
    }

    proptest! {
        #[test]
        fn is_angle_plus_magnitude(a in gradient_values(), b in gradient_values()) {
            let (a, b) = (gradient_set(&a), gradient_set(&b));
            let sum = value(&Angle, &a, &b) + value(&Magnitude, &a, &b);
            prop_assert!((value(&Combined, &a, &b) - sum).abs() < 1e-12);
        }
    }
}
