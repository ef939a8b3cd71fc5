use super::{Layer, Mode};
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
    fn forward(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        self.0.iter().try_fold(x.clone(), |x, layer| layer.forward(&x, mode))
    }
}

/// `(n, ...)` -> `(n, features)`.
pub struct Flatten;

impl Layer for Flatten {
    fn forward(&self, x: &Tensor, _mode: Mode) -> Result<Tensor> {
        x.flatten_from(1)
    }
}
