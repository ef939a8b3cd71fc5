//! One layer per file. Every layer is built from candle ops whose backward is itself differentiable.

mod act;
mod conv;
mod linear;
mod norm;
mod pool;
mod sequential;

pub use act::Act;
pub use conv::Conv2d;
pub use linear::Linear;
pub use norm::{BatchNorm2d, GroupNorm, LayerNorm};
pub use pool::Pool2d;
pub use sequential::{Flatten, Sequential};

use candle_core::{Result, Tensor};

/// Whether batch-norm layers use and update batch statistics (`Train`) or use their running
/// statistics (`Eval`, also the "frozen" mode of the matching step).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Train,
    Eval,
}

pub trait Layer: Send + Sync {
    fn forward(&self, x: &Tensor, mode: Mode) -> Result<Tensor>;
}
