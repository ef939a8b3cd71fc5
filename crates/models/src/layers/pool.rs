use super::{Layer, Mode};
use crate::spec::PoolKind;
use candle_core::{Result, Tensor};

/// k x k pooling with stride k, PyTorch's floor mode (a trailing odd row/column is dropped).
///
/// Written as crop + reshape + mean/max instead of candle's `avg_pool2d`/`max_pool2d`: candle's
/// avg-pool gradient is silently wrong when a side is odd (7 -> 3) and its second-order backward fails;
/// the reshape form is exact and differentiable to any order.
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
}

impl Layer for Pool2d {
    fn forward(&self, x: &Tensor, _mode: Mode) -> Result<Tensor> {
        if self.kind == PoolKind::None {
            return Ok(x.clone());
        }
        let k = self.kernel;
        let (n, c, h, w) = x.dims4()?;
        let (ho, wo) = (h / k, w / k);
        // Floor mode: drop a trailing odd row/column before the reshape.
        let cropped = x.narrow(2, 0, ho * k)?.narrow(3, 0, wo * k)?.contiguous()?;
        let windows = cropped.reshape((n, c, ho, k, wo, k))?;
        match self.kind {
            PoolKind::Max => windows.max(5)?.max(3),
            _ => windows.mean(5)?.mean(3),
        }
    }
}
