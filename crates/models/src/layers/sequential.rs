use super::{Backward, Forward, Layer, Saved};
use candle_core::{Result, Tensor};

/// Layers applied in order.
#[derive(Default)]
pub struct Sequential(pub(crate) Vec<Box<dyn Layer>>);

impl Sequential {
    pub fn push(&mut self, layer: impl Layer + 'static) {
        self.0.push(Box::new(layer));
    }
}

impl Layer for Sequential {
    fn forward(&self, x: &Tensor, ctx: &mut Forward) -> Result<Tensor> {
        self.0.iter().try_fold(x.clone(), |x, layer| layer.forward(&x, ctx))
    }

    fn backward(&self, grad: &Tensor, ctx: &mut Backward, need_input: bool) -> Result<Option<Tensor>> {
        let mut grad = Some(grad.clone());
        for (i, layer) in self.0.iter().enumerate().rev() {
            let g = grad.take().expect("inner layers need their input gradient");
            grad = layer.backward(&g, ctx, need_input || i > 0)?;
        }
        Ok(grad)
    }
}

/// Channels-last `(n, h, w, c)` -> `(n, c * h * w)` in PyTorch's (c, h, w) order, so that the next
/// linear layer's weight has PyTorch's layout; already flat inputs pass through.
pub struct Flatten;

impl Layer for Flatten {
    fn forward(&self, x: &Tensor, ctx: &mut Forward) -> Result<Tensor> {
        ctx.save(Saved::Shape(x.dims().to_vec()));
        match x.rank() {
            4 => x.permute((0, 3, 1, 2))?.flatten_from(1),
            _ => x.flatten_from(1),
        }
    }

    fn backward(&self, grad: &Tensor, ctx: &mut Backward, _need_input: bool) -> Result<Option<Tensor>> {
        let dims = ctx.pop()?.shape()?;
        let dx = match dims[..] {
            [n, h, w, c] => grad.reshape((n, c, h, w))?.permute((0, 2, 3, 1))?.contiguous()?,
            _ => grad.reshape(dims)?,
        };
        Ok(Some(dx))
    }
}
