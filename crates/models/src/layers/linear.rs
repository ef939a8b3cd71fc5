use super::{Layer, Mode};
use crate::params::ParamInit;
use candle_core::{Result, Tensor, Var};

/// Fully connected layer, weight `(out, in)`.
pub struct Linear {
    weight: Var,
    bias: Var,
}

impl Linear {
    pub fn new(init: &mut ParamInit, name: &str, d_in: usize, d_out: usize) -> Result<Self> {
        let bound = 1.0 / (d_in as f64).sqrt();
        let weight = init.uniform(format!("{name}.weight"), (d_out, d_in), bound)?;
        let bias = init.uniform(format!("{name}.bias"), d_out, bound)?;
        Ok(Linear { weight, bias })
    }
}

impl Layer for Linear {
    fn forward(&self, x: &Tensor, _mode: Mode) -> Result<Tensor> {
        x.matmul(&self.weight.t()?)?.broadcast_add(&self.bias)
    }
}
