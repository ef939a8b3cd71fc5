//! Finite-difference checks shared by the gradient tests (f64, central differences).
#![allow(clippy::disallowed_methods)] // reads values to check them
#![allow(dead_code)]

use candle_core::{DType, Device, Result, Tensor, Var};
use gradmatch_models::reference::{autodiff_param_grads, enable_second_order};
use gradmatch_models::{cross_entropy, one_hot, Mode, ModelSpec, Network};
use rand::{Rng, SeedableRng};

pub const EPS: f64 = 1e-5;

pub fn rng(seed: u64) -> rand::rngs::StdRng {
    rand::rngs::StdRng::seed_from_u64(seed)
}

pub fn random_tensor(shape: &[usize], seed: u64) -> Result<Tensor> {
    let mut r = rng(seed);
    let n: usize = shape.iter().product();
    let v: Vec<f64> = (0..n).map(|_| r.random_range(-1.0..1.0)).collect();
    Tensor::from_vec(v, shape, &Device::Cpu)
}

pub struct Problem {
    pub net: Network,
    pub x: Var,
    pub targets: Tensor,
    pub mode: Mode,
}

impl Problem {
    pub fn new(spec: &ModelSpec, input: (usize, usize, usize), batch: usize, mode: Mode) -> Result<Problem> {
        enable_second_order()?;
        let net = Network::new(spec, input, 3, 7, DType::F64, &Device::Cpu)?;
        let x = Var::from_tensor(&random_tensor(&[batch, input.0, input.1, input.2], 11)?)?;
        let labels: Vec<u32> = (0..batch as u32).map(|i| i % 3).collect();
        let targets = one_hot(&labels, 3, DType::F64, &Device::Cpu)?;
        Ok(Problem { net, x, targets, mode })
    }

    /// The loss by candle's autodiff (the reference path).
    pub fn loss(&self) -> Result<Tensor> {
        cross_entropy(&self.net.forward_autodiff(self.x.as_tensor(), self.mode)?, &self.targets)
    }

    /// Parameter gradients by candle's autodiff, differentiable w.r.t. x (second order).
    pub fn param_grads(&self) -> Result<Vec<Tensor>> {
        autodiff_param_grads(&self.net, self.x.as_tensor(), &self.targets, self.mode)
    }

    /// Parameter gradients by the layers' explicit backward, differentiable w.r.t. x (first order).
    pub fn explicit_grads(&self) -> Result<Vec<Tensor>> {
        self.net.param_grads(self.x.as_tensor(), &self.targets, self.mode)
    }

    /// phi(x) = sum_p <g_p(x), r_p>: a fixed linear functional of the parameter gradient, `explicit`
    /// or by autodiff.
    pub fn phi(&self, directions: &[Tensor], explicit: bool) -> Result<Tensor> {
        let grads = if explicit { self.explicit_grads()? } else { self.param_grads()? };
        let mut total = Tensor::zeros((), DType::F64, &Device::Cpu)?;
        for (g, r) in grads.iter().zip(directions) {
            total = (total + (g * r)?.sum_all()?)?;
        }
        Ok(total)
    }

    pub fn directions(&self) -> Result<Vec<Tensor>> {
        self.net.params().iter().enumerate().map(|(i, p)| random_tensor(p.var.dims(), 100 + i as u64)).collect()
    }
}

/// Central difference of `f` along coordinate `index` of `var`, or `None` when the coordinate sits on a
/// kink (a ReLU or max-pool switch within `EPS`): there the gradient itself jumps, so no difference
/// quotient approximates it and the coordinate says nothing about the analytic result.
pub fn central_difference(var: &Var, index: usize, f: &dyn Fn() -> Result<f64>) -> Result<Option<f64>> {
    let original = var.as_tensor().flatten_all()?.to_vec1::<f64>()?;
    let shape = var.dims().to_vec();
    let at = |delta: f64| -> Result<f64> {
        let mut v = original.clone();
        v[index] += delta;
        var.set(&Tensor::from_vec(v, shape.as_slice(), &Device::Cpu)?)?;
        f()
    };
    let plus = at(EPS)?;
    let minus = at(-EPS)?;
    let centre = at(0.0)?;
    let (forward, backward) = ((plus - centre) / EPS, (centre - minus) / EPS);
    // Smooth functions give one-sided quotients that differ by O(EPS * f''); a kink by O(1).
    let smooth = (forward - backward).abs() <= 1e-3 * (1.0 + forward.abs().max(backward.abs()));
    Ok(smooth.then_some((plus - minus) / (2.0 * EPS)))
}

/// Largest relative error between `analytic` and finite differences at `samples` random coordinates.
pub fn max_relative_error(var: &Var, analytic: &Tensor, samples: usize, seed: u64, f: &dyn Fn() -> Result<f64>) -> Result<f64> {
    let analytic = analytic.flatten_all()?.to_vec1::<f64>()?;
    // Floor: a gradient that is exactly zero analytically (a conv bias before instance norm) leaves
    // only finite-difference noise (~1e-11), which must not count as an error.
    let scale = analytic.iter().fold(0f64, |m, v| m.max(v.abs())).max(1e-4);
    let mut r = rng(seed);
    let mut worst = 0f64;
    let (mut checked, mut kinks) = (0, 0);
    while checked < samples {
        let i = r.random_range(0..analytic.len());
        let Some(numeric) = central_difference(var, i, f)? else {
            kinks += 1;
            // A few kinks are expected in ReLU networks; many would mean the check tests nothing.
            assert!(kinks <= samples, "{kinks} of {} sampled coordinates sit on kinks", checked + kinks);
            continue;
        };
        checked += 1;
        // Relative to the gradient's scale: coordinates near zero would make a pointwise ratio meaningless.
        worst = worst.max((numeric - analytic[i]).abs() / scale);
    }
    Ok(worst)
}

/// Largest difference between two tensors relative to the larger of their largest entries.
pub fn relative_difference(a: &Tensor, b: &Tensor) -> Result<f64> {
    assert_eq!(a.dims(), b.dims(), "shapes differ");
    let a = a.flatten_all()?.to_vec1::<f64>()?;
    let b = b.flatten_all()?.to_vec1::<f64>()?;
    // Floor: a gradient that is exactly zero analytically (a conv bias before a norm) leaves rounding noise.
    let scale = a.iter().chain(&b).fold(0f64, |m, v| m.max(v.abs())).max(1e-4);
    Ok(a.iter().zip(&b).fold(0f64, |m, (x, y)| m.max((x - y).abs())) / scale)
}
