use super::{Layer, Mode};
use crate::params::ParamInit;
use candle_core::{Result, Tensor, Var};

/// 2-D convolution, square kernel, weight `(out, in, k, k)`.
pub struct Conv2d {
    weight: Var,
    bias: Option<Var>,
    padding: usize,
    stride: usize,
}

impl Conv2d {
    /// Stride 1, with bias (every architecture but ResNet).
    pub fn new(init: &mut ParamInit, name: &str, c_in: usize, c_out: usize, kernel: usize, padding: usize) -> Result<Self> {
        Self::build(init, name, (c_in, c_out, kernel), 1, padding, true)
    }

    /// Without bias, any stride (ResNet, whose convolutions feed a norm layer).
    pub fn without_bias(
        init: &mut ParamInit,
        name: &str,
        (c_in, c_out, kernel): (usize, usize, usize),
        stride: usize,
        padding: usize,
    ) -> Result<Self> {
        Self::build(init, name, (c_in, c_out, kernel), stride, padding, false)
    }

    fn build(
        init: &mut ParamInit,
        name: &str,
        (c_in, c_out, kernel): (usize, usize, usize),
        stride: usize,
        padding: usize,
        bias: bool,
    ) -> Result<Self> {
        let bound = 1.0 / ((c_in * kernel * kernel) as f64).sqrt();
        let weight = init.uniform(format!("{name}.weight"), (c_out, c_in, kernel, kernel), bound)?;
        let bias = if bias { Some(init.uniform(format!("{name}.bias"), c_out, bound)?) } else { None };
        Ok(Conv2d { weight, bias, padding, stride })
    }
}

impl Layer for Conv2d {
    fn forward(&self, x: &Tensor, _mode: Mode) -> Result<Tensor> {
        let y = x.conv2d(&self.weight, self.padding, self.stride, 1, 1)?;
        match &self.bias {
            Some(b) => y.broadcast_add(&b.reshape((1, (), 1, 1))?),
            None => Ok(y),
        }
    }
}
