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
    use gradmatch_testkit::{check_distance, gradient_set, value, DistanceLaws};

    #[test]
    fn counts_one_dimensional_tensors_too() {
        let mut v = [0.0; 39];
        v[38] = 3.0; // the last bias entry
        assert_eq!(value(&Mse, &gradient_set(&[0.0; 39]), &gradient_set(&v)), 9.0);
    }

    #[test]
    fn laws() {
        check_distance(&Mse, &DistanceLaws { symmetric: true, ..DistanceLaws::UNIVERSAL });
    }
}
