//! Sum of squared differences over all gradient tensors (1-D ones included), as peers use.

use gradmatch_core::{flatten_into_one, plugin_without_options, Distance, Result, Tensor};

#[derive(Debug, Default, Clone, Copy)]
pub struct Mse;

impl Distance for Mse {
    fn distance(&self, real: &[Tensor], syn: &[Tensor]) -> Result<Tensor> {
        let (a, b) = (flatten_into_one(real)?, flatten_into_one(syn)?);
        (a - b)?.sqr()?.sum_all()
    }
}

plugin_without_options!(Mse, "mse", "sum of squared differences over all gradient tensors");

#[cfg(test)]
mod tests {
    use super::*;
    use gradmatch_testkit::{check_distance_laws, gradient_set, value, DistanceLaws};

    #[test]
    fn counts_one_dimensional_tensors_too() {
        let mut v = [0.0; 39];
        v[38] = 3.0; // the last bias entry
        assert_eq!(value(&Mse, &gradient_set(&[0.0; 39]), &gradient_set(&v)), 9.0);
    }

    #[test]
    fn laws() {
        check_distance_laws(&Mse, &DistanceLaws { symmetric: true, ..DistanceLaws::UNIVERSAL });
    }
}
