//! The slow, obviously-right path that the explicit backward is tested against: candle's own autodiff
//! through the forward pass, to second order with `CANDLE_GRAD_DO_NOT_DETACH`. Test support only
//! (cargo feature `reference`); nothing in the engine uses it.

use crate::{cross_entropy, Mode, Network};
use candle_core::{Device, Result, Tensor, Var};

const VAR: &str = "CANDLE_GRAD_DO_NOT_DETACH";

/// Turns candle's second-order gradients on and proves on a probe that they flow on this thread.
/// Candle reads the variable once per thread, at its first backward pass: call this first.
///
/// Probe: y = sum((w*x)^2), g = dy/dw = 2 w x^2, L = sum(g), dL/dx = 4 w x.
pub fn enable_second_order() -> Result<()> {
    // Edition 2021: `set_var` is safe; tests call this before any backward pass on their thread.
    std::env::set_var(VAR, "1");
    let dev = Device::Cpu;
    let x = Var::new(&[1.5f64, -2.0], &dev)?;
    let w = Var::new(&[0.5f64, 3.0], &dev)?;
    let y = w.as_tensor().mul(x.as_tensor())?.sqr()?.sum_all()?;
    let g = y.backward()?.remove(w.as_tensor()).expect("probe: w takes part in y");
    let expected = [4.0 * 0.5 * 1.5, 4.0 * 3.0 * -2.0];
    let got = match g.sum_all()?.backward()?.remove(x.as_tensor()) {
        Some(t) => gradmatch_core::host::vec1::<f64>(&t)?,
        None => vec![0.0; 2],
    };
    if got.iter().zip(&expected).any(|(a, b)| (a - b).abs() > 1e-9) {
        candle_core::bail!("second-order gradients do not flow on this thread (got {got:?}, expected {expected:?}): call enable_second_order() before any backward pass")
    }
    Ok(())
}

/// Parameter gradients of the mean cross-entropy by candle's autodiff (differentiable with respect
/// to `images` after [`enable_second_order`]).
pub fn autodiff_param_grads(net: &Network, images: &Tensor, targets: &Tensor, mode: Mode) -> Result<Vec<Tensor>> {
    let loss = cross_entropy(&net.forward_autodiff(images, mode)?, targets)?;
    let mut grads = loss.backward()?;
    net.params()
        .iter()
        .map(|p| match grads.remove(p.var.as_tensor()) {
            Some(g) => Ok(g),
            None => p.var.zeros_like(),
        })
        .collect()
}
