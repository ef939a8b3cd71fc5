use candle_core::{Result, Tensor};
use gradmatch_models::{cross_entropy, Mode, Network};

/// Gradient of the mean cross-entropy of `net` on `(images, one-hot targets)` with respect to every
/// parameter, in parameter order. With second-order autodiff on (see `gradmatch_core::second_order`)
/// the result stays differentiable with respect to `images`.
pub fn param_grads(net: &Network, images: &Tensor, targets: &Tensor, mode: Mode) -> Result<Vec<Tensor>> {
    let loss = cross_entropy(&net.forward(images, mode)?, targets)?;
    let mut grads = loss.backward()?;
    net.params()
        .iter()
        .map(|p| match grads.remove(p.var.as_tensor()) {
            Some(g) => Ok(g),
            None => p.var.zeros_like(),
        })
        .collect()
}
