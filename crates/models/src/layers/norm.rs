use super::{fused, group_row_sums, member_broadcast, sample_sums, Backward, Forward, Layer, Mode, Saved};
use crate::params::{ParamInit, ParamRef};
use candle_core::{Result, Tensor};
use std::sync::Mutex;

const EPS: f64 = 1e-5;

/// The input gradient of `xhat = (x - mean) * rstd` with statistics over the normalised set:
/// `rstd * (g - mean(g) - xhat * mean(g * xhat))`, given those two means.
fn standardise_backward(g: &Tensor, xhat: &Tensor, rstd: &Tensor, mean_g: &Tensor, mean_gx: &Tensor) -> Result<Tensor> {
    g.broadcast_sub(mean_g)?.sub(&xhat.broadcast_mul(mean_gx)?)?.broadcast_mul(rstd)
}

/// Per-sample standardisation of `x (n, h, w, c)` over the pixels and the channels of each of
/// `groups` channel groups (no parameters): instance norm is `groups == c`, layer norm `groups == 1`.
pub struct Standardise {
    pub groups: usize,
}

impl Standardise {
    /// Per-sample sums `(n, 1, c)` of `t (n, m, c)` turned into the mean of each channel's group.
    fn group_mean(&self, sums: &Tensor, m: usize) -> Result<Tensor> {
        let (n, _, c) = sums.dims3()?;
        if self.groups == c {
            return sums / m as f64;
        }
        let per_group = c / self.groups;
        let grouped = sums.reshape((n, self.groups, per_group))?.sum_keepdim(2)?;
        grouped.broadcast_as((n, self.groups, per_group))?.reshape((n, 1, c))? / (m * per_group) as f64
    }
}

impl Layer for Standardise {
    fn forward(&self, x: &Tensor, ctx: &mut Forward) -> Result<Tensor> {
        let (n, h, w, c) = x.dims4()?;
        let x3 = x.reshape((n, h * w, c))?;
        let (xhat, rstd) = if self.groups == c && fused::eligible(x) {
            let stats = fused::instance_stats(&x3)?;
            (fused::normalise(&x3, &stats)?, stats.narrow(1, 1, 1)?)
        } else {
            let centred = x3.broadcast_sub(&self.group_mean(&sample_sums(&x3)?, h * w)?)?;
            let var = self.group_mean(&sample_sums(&centred.sqr()?)?, h * w)?;
            let rstd = (var + EPS)?.sqrt()?.recip()?;
            (centred.broadcast_mul(&rstd)?, rstd)
        };
        ctx.save(Saved::Normalised { xhat: xhat.clone(), rstd });
        xhat.reshape((n, h, w, c))
    }

    fn backward(&self, grad: &Tensor, ctx: &mut Backward, _need_input: bool) -> Result<Option<Tensor>> {
        let (xhat, rstd) = ctx.pop()?.normalised()?;
        let (n, m, c) = xhat.dims3()?;
        let g = grad.reshape((n, m, c))?;
        if self.groups == c && fused::eligible(&g) && fused::eligible(&xhat) {
            return Ok(Some(fused::instance_norm_backward(&g, &xhat, &rstd)?.reshape(grad.shape())?));
        }
        let mean_g = self.group_mean(&sample_sums(&g)?, m)?;
        let mean_gx = self.group_mean(&sample_sums(&(&g * &xhat)?)?, m)?;
        let dx = standardise_backward(&g, &xhat, &rstd, &mean_g, &mean_gx)?;
        Ok(Some(dx.reshape(grad.shape())?))
    }
}

/// `x * weight + bias` with one weight and bias per channel (the last axis).
pub struct ChannelAffine {
    pub(super) weight: ParamRef,
    pub(super) bias: ParamRef,
}

impl ChannelAffine {
    pub fn new(init: &mut ParamInit, name: &str, channels: usize) -> Result<Self> {
        let weight = init.constant(format!("{name}.weight"), channels, 1.0)?;
        let bias = init.constant(format!("{name}.bias"), channels, 0.0)?;
        Ok(ChannelAffine { weight, bias })
    }
}

impl Layer for ChannelAffine {
    fn forward(&self, x: &Tensor, ctx: &mut Forward) -> Result<Tensor> {
        ctx.save(Saved::Input(x.clone()));
        let (w, b, members) = (ctx.param(&self.weight), ctx.param(&self.bias), ctx.members);
        if fused::eligible(x) && !ctx.autodiff && members == 1 {
            return fused::scale_shift(x, &w, &b);
        }
        let y = member_broadcast(x, &w, members, |x, w| x.broadcast_mul(w))?;
        member_broadcast(&y, &b, members, |y, b| y.broadcast_add(b))
    }

    fn backward(&self, grad: &Tensor, ctx: &mut Backward, _need_input: bool) -> Result<Option<Tensor>> {
        let x = ctx.pop()?.input()?;
        let c = x.dim(candle_core::D::Minus1)?;
        let (w, members) = (ctx.param(&self.weight), ctx.members);
        if fused::eligible(grad) && fused::eligible(&x) && members == 1 {
            let sums = fused::affine_grads(grad, &x, ctx.groups)?;
            ctx.accumulate(&self.weight, sums.narrow(1, 0, 1)?.squeeze(1)?)?;
            ctx.accumulate(&self.bias, sums.narrow(1, 1, 1)?.squeeze(1)?)?;
            // The input gradient g * w is a scale-shift with no shift.
            return Ok(Some(fused::scale_shift(grad, &w, &w.zeros_like()?)?));
        }
        let rows = |t: &Tensor| t.reshape(((), c));
        ctx.accumulate(&self.weight, group_row_sums(&rows(&(grad * &x)?)?, ctx.groups)?)?;
        ctx.accumulate(&self.bias, group_row_sums(&rows(grad)?, ctx.groups)?)?;
        Ok(Some(member_broadcast(grad, &w, members, |g, w| g.broadcast_mul(w))?))
    }
}

/// `x * weight + bias` element-wise, weight and bias `(C, H, W)` as PyTorch's LayerNorm.
pub struct ElementAffine {
    weight: ParamRef,
    bias: ParamRef,
}

impl ElementAffine {
    pub fn new(init: &mut ParamInit, name: &str, shape: (usize, usize, usize)) -> Result<Self> {
        let weight = init.constant(format!("{name}.weight"), shape, 1.0)?;
        let bias = init.constant(format!("{name}.bias"), shape, 0.0)?;
        Ok(ElementAffine { weight, bias })
    }

    /// The `(C, H, W)` parameter in channels-last order (`(members, H, W, C)` for an ensemble's).
    fn channels_last(t: &Tensor, members: usize) -> Result<Tensor> {
        match members {
            1 => t.permute((1, 2, 0)),
            _ => t.permute((0, 2, 3, 1))?.contiguous(),
        }
    }
}

impl Layer for ElementAffine {
    fn forward(&self, x: &Tensor, ctx: &mut Forward) -> Result<Tensor> {
        ctx.save(Saved::Input(x.clone()));
        let members = ctx.members;
        let w = Self::channels_last(&ctx.param(&self.weight), members)?;
        let b = Self::channels_last(&ctx.param(&self.bias), members)?;
        let y = member_broadcast(x, &w, members, |x, w| x.broadcast_mul(w))?;
        member_broadcast(&y, &b, members, |y, b| y.broadcast_add(b))
    }

    fn backward(&self, grad: &Tensor, ctx: &mut Backward, _need_input: bool) -> Result<Option<Tensor>> {
        let x = ctx.pop()?.input()?;
        let (_, h, w, c) = x.dims4()?;
        let groups = ctx.groups;
        let per_group = |t: &Tensor| -> Result<Tensor> {
            group_row_sums(&t.reshape(((), h * w * c))?, groups)?.reshape((groups, h, w, c))?.permute((0, 3, 1, 2))?.contiguous()
        };
        ctx.accumulate(&self.weight, per_group(&(grad * &x)?)?)?;
        ctx.accumulate(&self.bias, per_group(grad)?)?;
        let w = Self::channels_last(&ctx.param(&self.weight), ctx.members)?;
        Ok(Some(member_broadcast(grad, &w, ctx.members, |g, w| g.broadcast_mul(w))?))
    }
}

/// BatchNorm2d (momentum 0.1, eps 1e-5). `Train` normalises with batch statistics and updates the
/// running ones (unbiased variance, as PyTorch); `Eval` normalises with the running statistics.
pub struct BatchNorm2d {
    affine: ChannelAffine,
    running: Mutex<(Tensor, Tensor)>,
}

impl BatchNorm2d {
    pub fn new(init: &mut ParamInit, name: &str, channels: usize) -> Result<Self> {
        let affine = ChannelAffine::new(init, name, channels)?;
        let mean = Tensor::zeros(channels, init.dtype(), init.device())?;
        let var = Tensor::ones(channels, init.dtype(), init.device())?;
        Ok(BatchNorm2d { affine, running: Mutex::new((mean, var)) })
    }

    /// The running (mean, variance), for tests and inspection.
    pub fn running_stats(&self) -> (Tensor, Tensor) {
        self.running.lock().expect("batch-norm statistics lock").clone()
    }

    /// `(x - mean) * rstd` over rows `(N, c)`, with the statistics of the mode.
    fn standardise(&self, rows: &Tensor, mode: Mode) -> Result<(Tensor, Tensor)> {
        match mode {
            Mode::Train => {
                let count = rows.dim(0)? as f64;
                let mean = (group_row_sums(rows, 1)? / count)?;
                let centred = rows.broadcast_sub(&mean)?;
                let var = (group_row_sums(&centred.sqr()?, 1)? / count)?;
                let unbiased = (var.detach().squeeze(0)? * (count / (count - 1.0).max(1.0)))?;
                let mut running = self.running.lock().expect("batch-norm statistics lock");
                running.0 = ((&running.0 * 0.9)? + (mean.detach().squeeze(0)? * 0.1)?)?;
                running.1 = ((&running.1 * 0.9)? + (unbiased * 0.1)?)?;
                let rstd = (var + EPS)?.sqrt()?.recip()?;
                Ok((centred.broadcast_mul(&rstd)?, rstd))
            }
            Mode::Eval => {
                let (mean, var) = self.running_stats();
                let rstd = (var + EPS)?.sqrt()?.recip()?.unsqueeze(0)?;
                Ok((rows.broadcast_sub(&mean.unsqueeze(0)?)?.broadcast_mul(&rstd)?, rstd))
            }
        }
    }
}

impl Layer for BatchNorm2d {
    fn forward(&self, x: &Tensor, ctx: &mut Forward) -> Result<Tensor> {
        if ctx.members > 1 {
            candle_core::bail!("batch norm keeps statistics per network: an ensemble of batch-norm networks cannot share a pass")
        }
        let c = x.dim(3)?;
        let (xhat, rstd) = self.standardise(&x.reshape(((), c))?, ctx.mode)?;
        ctx.save(Saved::Normalised { xhat: xhat.clone(), rstd });
        self.affine.forward(&xhat.reshape(x.shape())?, ctx)
    }

    fn backward(&self, grad: &Tensor, ctx: &mut Backward, need_input: bool) -> Result<Option<Tensor>> {
        let g = self.affine.backward(grad, ctx, need_input)?.expect("affine returns its input gradient");
        let (xhat, rstd) = ctx.pop()?.normalised()?;
        let c = xhat.dim(1)?;
        let g = g.reshape(((), c))?;
        let dx = match ctx.mode {
            Mode::Eval => g.broadcast_mul(&rstd)?,
            Mode::Train => {
                if ctx.groups != 1 {
                    candle_core::bail!(
                        "batch norm in train mode couples the samples: per-group gradients need frozen statistics (Mode::Eval)"
                    )
                }
                let count = g.dim(0)? as f64;
                let mean_g = (group_row_sums(&g, 1)? / count)?;
                let mean_gx = (group_row_sums(&(&g * &xhat)?, 1)? / count)?;
                standardise_backward(&g, &xhat, &rstd, &mean_g, &mean_gx)?
            }
        };
        Ok(Some(dx.reshape(grad.shape())?))
    }
}
