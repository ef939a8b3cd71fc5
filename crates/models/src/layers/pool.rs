use super::{fused, Backward, Forward, Layer, Saved};
use crate::spec::PoolKind;
use candle_core::{Result, Tensor};

/// k x k pooling with stride k on `(n, h, w, c)`, PyTorch's floor mode (a trailing odd row/column
/// is dropped). Written as crop + reshape + mean/max: exact for odd sides, differentiable to any order.
pub struct Pool2d {
    pub kind: PoolKind,
    pub kernel: usize,
}

impl Pool2d {
    pub fn output_side(&self, side: usize) -> usize {
        match self.kind {
            PoolKind::None => side,
            _ => side / self.kernel,
        }
    }

    /// The window entries at each of the k x k offsets, `(n, ho, wo, c)` strided views of the input.
    /// Pooling combines them element-wise: reductions over inner axes are slow in candle.
    fn offsets(&self, x: &Tensor) -> Result<Vec<Tensor>> {
        let k = self.kernel;
        let (n, h, w, c) = x.dims4()?;
        let (ho, wo) = (h / k, w / k);
        let windows = x.narrow(1, 0, ho * k)?.narrow(2, 0, wo * k)?.reshape((n, ho, k, wo, k * c))?;
        let mut offsets = Vec::with_capacity(k * k);
        for i in 0..k {
            for j in 0..k {
                offsets.push(windows.narrow(2, i, 1)?.squeeze(2)?.narrow(3, j * c, c)?);
            }
        }
        Ok(offsets)
    }
}

impl Layer for Pool2d {
    fn forward(&self, x: &Tensor, ctx: &mut Forward) -> Result<Tensor> {
        if self.kind == PoolKind::None {
            return Ok(x.clone());
        }
        let offsets = self.offsets(x)?;
        let combine = |a: Tensor, b: &Tensor| match self.kind {
            PoolKind::Max => a.maximum(b),
            _ => a + b,
        };
        let first = offsets[0].contiguous()?;
        let y = offsets[1..].iter().try_fold(first, combine)?;
        let y = match self.kind {
            PoolKind::Max => y,
            _ => (y / offsets.len() as f64)?,
        };
        // Max pooling routes the gradient through masks of the window maxima (constants); like
        // candle's `max`, tied entries all receive it.
        let masks = match self.kind {
            PoolKind::Max => {
                let y = y.detach();
                offsets.iter().map(|o| o.detach().eq(&y)?.to_dtype(x.dtype())).collect::<Result<Vec<_>>>()?
            }
            _ => vec![],
        };
        ctx.save(Saved::Pooled { dims: x.dims().to_vec(), masks });
        Ok(y)
    }

    fn backward(&self, grad: &Tensor, ctx: &mut Backward, _need_input: bool) -> Result<Option<Tensor>> {
        if self.kind == PoolKind::None {
            return Ok(Some(grad.clone()));
        }
        let (dims, masks) = ctx.pop()?.pooled()?;
        let k = self.kernel;
        if self.kind == PoolKind::Avg && fused::eligible(grad) {
            let d = &dims;
            return Ok(Some(fused::avg_pool_backward(grad, k, (d[0], d[1], d[2], d[3]))?));
        }
        let (n, ho, wo, c) = grad.dims4()?;
        let (h, w) = (dims[1], dims[2]);
        let windows = match self.kind {
            PoolKind::Max => {
                let parts = masks.iter().map(|mask| grad * mask).collect::<Result<Vec<_>>>()?;
                // (k*k) x (n, ho, wo, c) in offset order -> (n, ho, k, wo, k, c)
                Tensor::stack(&parts, 3)?.reshape((n, ho, wo, k, k, c))?.permute((0, 1, 3, 2, 4, 5))?
            }
            _ => (grad.reshape((n, ho, 1, wo, 1, c))?.broadcast_as((n, ho, k, wo, k, c))? / (k * k) as f64)?,
        };
        let dx = windows.reshape((n, ho * k, wo * k, c))?;
        // Floor mode: the dropped row/column gets no gradient.
        Ok(Some(dx.pad_with_zeros(1, 0, h - ho * k)?.pad_with_zeros(2, 0, w - wo * k)?))
    }
}
