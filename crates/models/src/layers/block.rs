use super::{fused, Act, Backward, ChannelAffine, Forward, Layer, Pool2d, Saved, Standardise};
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
        if let Some((xhat, y)) = out.saved {
            // The entries of Standardise, ChannelAffine, Act and Pool2d, in their order.
            ctx.save(Saved::Normalised { xhat: xhat.reshape((n, h * w, c))?, rstd: stats.narrow(1, 1, 1)? });
            ctx.save(Saved::Input(xhat));
            ctx.save(Saved::Output(y));
            ctx.save(Saved::Pooled { dims: x.dims().to_vec(), masks: vec![] });
        }
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
