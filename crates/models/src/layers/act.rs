use super::{fused, Backward, Forward, Layer, Saved};
use crate::spec::Act as Kind;
use candle_core::{Result, Tensor};

/// Activation layer. Sigmoid is composed from basic ops so that its backward is differentiable again
/// (candle's fused sigmoid is not).
pub struct Act(pub Kind);

const LEAK: f64 = 0.01;

impl Layer for Act {
    fn forward(&self, x: &Tensor, ctx: &mut Forward) -> Result<Tensor> {
        let y = match self.0 {
            Kind::Relu => x.relu()?,
            Kind::Sigmoid => (x.neg()?.exp()? + 1.0)?.recip()?,
            Kind::LeakyRelu => (x.relu()? - (x.neg()?.relu()? * LEAK)?)?,
        };
        ctx.save(Saved::Output(y.clone()));
        Ok(y)
    }

    fn backward(&self, grad: &Tensor, ctx: &mut Backward, _need_input: bool) -> Result<Option<Tensor>> {
        let y = ctx.pop()?.output()?;
        // The ReLU slopes are piecewise constant: a mask taken from the detached output, as the
        // derivative of ReLU's backward is zero almost everywhere. `sign` then `relu` is 1 where
        // y > 0, else 0, exactly `y > 0`, with no scalar to upload to a GPU as `gt(0.0)` would.
        let positive = || -> Result<Tensor> { y.detach().sign()?.relu() };
        let dx = match self.0 {
            Kind::Relu if fused::eligible(grad) && fused::eligible(&y) => fused::relu_backward(grad, &y)?,
            Kind::Relu => (grad * positive()?)?,
            Kind::Sigmoid => (grad * (&y * y.affine(-1.0, 1.0)?)?)?,
            Kind::LeakyRelu => (grad * positive()?.affine(1.0 - LEAK, LEAK)?)?,
        };
        Ok(Some(dx))
    }
}
