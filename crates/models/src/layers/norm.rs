use super::{Layer, Mode};
use crate::params::ParamInit;
use candle_core::{Result, Tensor, Var};
use std::sync::Mutex;

const EPS: f64 = 1e-5;

/// Normalises over the last dimension of `x` viewed as `(n, groups, rest)`.
fn standardise(x: &Tensor, groups: usize) -> Result<Tensor> {
    let dims = x.dims().to_vec();
    let x = x.reshape((dims[0], groups, ()))?;
    let centred = x.broadcast_sub(&x.mean_keepdim(2)?)?;
    let var = centred.sqr()?.mean_keepdim(2)?;
    centred.broadcast_div(&(var + EPS)?.sqrt()?)?.reshape(dims)
}

/// GroupNorm with a per-channel affine; `groups == channels` is the reference's "instancenorm".
pub struct GroupNorm {
    groups: usize,
    weight: Var,
    bias: Var,
}

impl GroupNorm {
    pub fn new(init: &mut ParamInit, name: &str, groups: usize, channels: usize) -> Result<Self> {
        let weight = init.constant(format!("{name}.weight"), channels, 1.0)?;
        let bias = init.constant(format!("{name}.bias"), channels, 0.0)?;
        Ok(GroupNorm { groups, weight, bias })
    }
}

impl Layer for GroupNorm {
    fn forward(&self, x: &Tensor, _mode: Mode) -> Result<Tensor> {
        standardise(x, self.groups)?.broadcast_mul(&self.weight.reshape((1, (), 1, 1))?)?.broadcast_add(&self.bias.reshape((
            1,
            (),
            1,
            1,
        ))?)
    }
}

/// LayerNorm over (C, H, W) with an element-wise affine of shape (C, H, W), as the reference.
pub struct LayerNorm {
    weight: Var,
    bias: Var,
}

impl LayerNorm {
    pub fn new(init: &mut ParamInit, name: &str, shape: (usize, usize, usize)) -> Result<Self> {
        let weight = init.constant(format!("{name}.weight"), shape, 1.0)?;
        let bias = init.constant(format!("{name}.bias"), shape, 0.0)?;
        Ok(LayerNorm { weight, bias })
    }
}

impl Layer for LayerNorm {
    fn forward(&self, x: &Tensor, _mode: Mode) -> Result<Tensor> {
        standardise(x, 1)?.broadcast_mul(&self.weight)?.broadcast_add(&self.bias)
    }
}

/// BatchNorm2d (momentum 0.1, eps 1e-5). `Train` normalises with batch statistics and updates the
/// running ones (unbiased variance, as PyTorch); `Eval` normalises with the running statistics.
pub struct BatchNorm2d {
    weight: Var,
    bias: Var,
    running: Mutex<(Tensor, Tensor)>,
}

impl BatchNorm2d {
    pub fn new(init: &mut ParamInit, name: &str, channels: usize) -> Result<Self> {
        let weight = init.constant(format!("{name}.weight"), channels, 1.0)?;
        let bias = init.constant(format!("{name}.bias"), channels, 0.0)?;
        let mean = Tensor::zeros(channels, init.dtype(), init.device())?;
        let var = Tensor::ones(channels, init.dtype(), init.device())?;
        Ok(BatchNorm2d { weight, bias, running: Mutex::new((mean, var)) })
    }

    /// The running (mean, variance), for tests and inspection.
    pub fn running_stats(&self) -> (Tensor, Tensor) {
        self.running.lock().expect("batch-norm statistics lock").clone()
    }
}

impl Layer for BatchNorm2d {
    fn forward(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        let (n, _c, h, w) = x.dims4()?;
        let (mean, var) = match mode {
            Mode::Train => {
                let mean = x.mean_keepdim((0, 2, 3))?;
                let var = x.broadcast_sub(&mean)?.sqr()?.mean_keepdim((0, 2, 3))?;
                let count = (n * h * w) as f64;
                let unbiased = (var.detach().flatten_all()? * (count / (count - 1.0).max(1.0)))?;
                let mut running = self.running.lock().expect("batch-norm statistics lock");
                running.0 = ((&running.0 * 0.9)? + (mean.detach().flatten_all()? * 0.1)?)?;
                running.1 = ((&running.1 * 0.9)? + (unbiased * 0.1)?)?;
                (mean, var)
            }
            Mode::Eval => {
                let running = self.running.lock().expect("batch-norm statistics lock");
                (running.0.reshape((1, (), 1, 1))?, running.1.reshape((1, (), 1, 1))?)
            }
        };
        x.broadcast_sub(&mean)?
            .broadcast_div(&(var + EPS)?.sqrt()?)?
            .broadcast_mul(&self.weight.reshape((1, (), 1, 1))?)?
            .broadcast_add(&self.bias.reshape((1, (), 1, 1))?)
    }
}
