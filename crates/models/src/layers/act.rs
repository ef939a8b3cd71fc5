use super::{Layer, Mode};
use crate::spec::Act as Kind;
use candle_core::{Result, Tensor};

/// Activation layer. Sigmoid and leaky ReLU are composed from basic ops so that their backward is
/// differentiable again (candle's fused sigmoid is not).
pub struct Act(pub Kind);

impl Layer for Act {
    fn forward(&self, x: &Tensor, _mode: Mode) -> Result<Tensor> {
        match self.0 {
            Kind::Relu => x.relu(),
            Kind::Sigmoid => (x.neg()?.exp()? + 1.0)?.recip(),
            Kind::LeakyRelu => x.relu()? - (x.neg()?.relu()? * 0.01)?,
        }
    }
}
