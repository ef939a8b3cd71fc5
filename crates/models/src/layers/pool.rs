use super::{Backward, Forward, Layer};
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

    /// `(n, ho, k, wo, k, c)` windows of the cropped input.
    fn windows(&self, x: &Tensor) -> Result<Tensor> {
        let k = self.kernel;
        let (n, h, w, c) = x.dims4()?;
        let (ho, wo) = (h / k, w / k);
        x.narrow(1, 0, ho * k)?.narrow(2, 0, wo * k)?.contiguous()?.reshape((n, ho, k, wo, k, c))
    }
}

impl Layer for Pool2d {
    fn forward(&self, x: &Tensor, ctx: &mut Forward) -> Result<Tensor> {
        if self.kind == PoolKind::None {
            return Ok(x.clone());
        }
        let windows = self.windows(x)?;
        let y = match self.kind {
            PoolKind::Max => windows.max_keepdim(4)?.max_keepdim(2)?,
            _ => windows.mean_keepdim(4)?.mean_keepdim(2)?,
        };
        // Max pooling routes the gradient through a mask of the window maxima (saved as a constant).
        let saved = match self.kind {
            PoolKind::Max => vec![windows.detach().broadcast_eq(&y.detach())?.to_dtype(x.dtype())?],
            _ => vec![],
        };
        ctx.save(saved, x.dims().to_vec());
        let d = windows.dims();
        y.reshape((d[0], d[1], d[3], d[5]))
    }

    fn backward(&self, grad: &Tensor, ctx: &mut Backward, _need_input: bool) -> Result<Option<Tensor>> {
        if self.kind == PoolKind::None {
            return Ok(Some(grad.clone()));
        }
        let saved = ctx.pop()?;
        let k = self.kernel;
        let (n, ho, wo, c) = grad.dims4()?;
        let (h, w) = (saved.dims[1], saved.dims[2]);
        let spread = grad.reshape((n, ho, 1, wo, 1, c))?.broadcast_as((n, ho, k, wo, k, c))?;
        let windows = match self.kind {
            PoolKind::Max => spread.mul(&saved.values[0])?,
            _ => (spread / (k * k) as f64)?,
        };
        let dx = windows.reshape((n, ho * k, wo * k, c))?;
        // Floor mode: the dropped row/column gets no gradient.
        Ok(Some(dx.pad_with_zeros(1, 0, h - ho * k)?.pad_with_zeros(2, 0, w - wo * k)?))
    }
}
