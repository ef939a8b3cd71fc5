use super::{fused, Act, Backward, ChannelAffine, Conv2d, Forward, Layer, Pool2d, Saved, Standardise};
use crate::params::ParamInit;
use crate::spec::{Act as Kind, PoolKind};
use candle_core::{Result, Tensor};

/// The tail of a ConvNet block: instance norm, its per-channel affine, ReLU and average pooling.
/// On graph-free CPU tensors its forward is two passes over the feature map (the statistics, then
/// everything else) and its backward two, where the four layers take a pass or more each; elsewhere
/// (CUDA, the synthetic side's graph) it is the four layers in turn. Both forwards save the four
/// layers' tape entries, so that either backward can follow either forward.
pub struct NormReluPool {
    norm: Standardise,
    affine: ChannelAffine,
    act: Act,
    pool: Pool2d,
}

impl NormReluPool {
    /// Instance norm over `channels` (its affine's parameters named `name`), k x k average pooling.
    pub fn new(init: &mut ParamInit, name: &str, channels: usize, kernel: usize) -> Result<Self> {
        Ok(NormReluPool {
            norm: Standardise { groups: channels },
            affine: ChannelAffine::new(init, name, channels)?,
            act: Act(Kind::Relu),
            pool: Pool2d { kind: PoolKind::Avg, kernel },
        })
    }

    fn layers(&self) -> [&dyn Layer; 4] {
        [&self.norm, &self.affine, &self.act, &self.pool]
    }

    /// After a fused forward of input dims `dims`: the entries of Standardise, ChannelAffine, Act and
    /// Pool2d, in their order, from the statistics `(n, 2, c)` and the recorded `(xhat, y)`.
    fn save_fused(&self, ctx: &mut Forward, dims: &[usize], stats: &Tensor, saved: Option<(Tensor, Tensor)>) -> Result<()> {
        if let Some((xhat, y)) = saved {
            let (n, c) = (dims[0], dims[3]);
            ctx.save(Saved::Normalised { xhat: xhat.reshape((n, (), c))?, rstd: stats.narrow(1, 1, 1)? });
            ctx.save(Saved::Input(xhat));
            ctx.save(Saved::Output(y));
            ctx.save(Saved::Pooled { dims: dims.to_vec(), masks: vec![] });
        }
        Ok(())
    }
}

/// A block of the paper's ConvNet: a convolution and the tail above. On graph-free CPU tensors a
/// convolution with a short patch (the first block on one-channel images) or by Winograd (the 3 x 3
/// ones after it) and the tail run as one kernel, the convolution's map never written out;
/// elsewhere the two layers run in turn. Either
/// way the tape holds both layers' entries, so the backward is theirs in turn.
pub struct ConvBlock {
    pub conv: Conv2d,
    pub tail: NormReluPool,
}

impl ConvBlock {
    /// The block as one fused kernel when the convolution takes one (a short patch, or Winograd's
    /// 3 x 3), its tape entries saved; `None`, nothing done, when it does not.
    fn fused_forward(&self, x: &Tensor, ctx: &mut Forward) -> Result<Option<Tensor>> {
        let affine = (ctx.param(&self.tail.affine.weight), ctx.param(&self.tail.affine.bias));
        let (pool, record) = (self.tail.pool.kernel, ctx.tape.is_some());
        let out = if let Some((weight, bias)) = self.conv.short_patch_operands(x, ctx)? {
            fused::short_conv_norm_relu_pool(x, (&weight, &bias), self.conv.geometry(), (&affine.0, &affine.1), pool, record)?
        } else if let Some((weight, bias, padding)) = self.conv.winograd_operands(x, ctx)? {
            fused::winograd_norm_relu_pool(x, (&weight, &bias), padding, (&affine.0, &affine.1), pool, record)?
        } else {
            return Ok(None);
        };
        // The convolution's map, whose dims the tape needs, exists only when recorded (as xhat).
        let dims = out.saved.as_ref().map(|(xhat, _)| xhat.dims().to_vec()).unwrap_or_default();
        self.tail.save_fused(ctx, &dims, &out.stats, out.saved)?;
        Ok(Some(out.pooled))
    }
}

impl Layer for ConvBlock {
    fn forward(&self, x: &Tensor, ctx: &mut Forward) -> Result<Tensor> {
        match self.fused_forward(x, ctx)? {
            Some(pooled) => Ok(pooled),
            None => {
                let z = self.conv.forward(x, ctx)?;
                self.tail.forward(&z, ctx)
            }
        }
    }

    fn backward(&self, grad: &Tensor, ctx: &mut Backward, need_input: bool) -> Result<Option<Tensor>> {
        let g = self.tail.backward(grad, ctx, true)?.expect("the tail returns its input gradient");
        self.conv.backward(&g, ctx, need_input)
    }
}

impl Layer for NormReluPool {
    fn forward(&self, x: &Tensor, ctx: &mut Forward) -> Result<Tensor> {
        if !fused::eligible(x) || ctx.autodiff {
            return self.layers().iter().try_fold(x.clone(), |x, layer| layer.forward(&x, ctx));
        }
        let (n, h, w, c) = x.dims4()?;
        let stats = fused::instance_stats(&x.reshape((n, h * w, c))?)?;
        let (weight, bias) = (ctx.param(&self.affine.weight), ctx.param(&self.affine.bias));
        let out = fused::norm_relu_pool(x, &stats, (&weight, &bias), self.pool.kernel, ctx.tape.is_some())?;
        ctx.observe(x);
        self.save_fused(ctx, x.dims(), &stats, out.saved)?;
        Ok(out.pooled)
    }

    fn backward(&self, grad: &Tensor, ctx: &mut Backward, _need_input: bool) -> Result<Option<Tensor>> {
        // From the top of the tape: the pool's entry, the ReLU's (y), the affine's, the norm's (xhat, rstd).
        let fast = fused::eligible(grad)
            && matches!(ctx.peek(1)?, Saved::Output(y) if fused::eligible(y))
            && matches!(ctx.peek(3)?, Saved::Normalised { xhat, .. } if fused::eligible(xhat));
        if !fast {
            let mut grad = grad.clone();
            for layer in self.layers().iter().rev() {
                grad = layer.backward(&grad, ctx, true)?.expect("inner layers return their input gradient");
            }
            return Ok(Some(grad));
        }
        ctx.pop()?.pooled()?;
        let y = ctx.pop()?.output()?;
        let xhat = ctx.pop()?.input()?;
        let (_, rstd) = ctx.pop()?.normalised()?;
        let weight = ctx.param(&self.affine.weight);
        let grads = fused::norm_relu_pool_backward(grad, (&y, &xhat, &rstd), &weight, self.pool.kernel, ctx.groups)?;
        ctx.accumulate(&self.affine.weight, grads.weight)?;
        ctx.accumulate(&self.affine.bias, grads.bias)?;
        Ok(Some(grads.input))
    }
}
