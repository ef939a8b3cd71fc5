//! One architecture per file; each builds a [`Sequential`](crate::layers::Sequential) or its own
//! [`Layer`](crate::layers::Layer) from the shared layers.

mod alexnet;
mod convnet;
mod lenet;
mod mlp;
mod resnet;
mod vgg;

pub use alexnet::alexnet;
pub use convnet::convnet;
pub use lenet::lenet;
pub use mlp::mlp;
pub use resnet::resnet18;
pub use vgg::vgg11;

use crate::layers::{BatchNorm2d, ChannelAffine, ElementAffine, Layer, Sequential, Standardise};
use crate::params::ParamInit;
use crate::spec::NormKind;
use candle_core::Result;

/// Appends the normalisation layer of `kind` for a feature map of `shape` (C, H, W).
pub(crate) fn push_norm(
    seq: &mut Sequential,
    init: &mut ParamInit,
    name: &str,
    kind: NormKind,
    shape: (usize, usize, usize),
) -> Result<()> {
    if let Some(norm) = norm_layer(init, name, kind, shape)? {
        seq.0.push(norm);
    }
    Ok(())
}

pub(crate) fn norm_layer(init: &mut ParamInit, name: &str, kind: NormKind, shape: (usize, usize, usize)) -> Result<Option<Box<dyn Layer>>> {
    let c = shape.0;
    let standardised =
        |groups: usize, affine: Box<dyn Layer>| -> Box<dyn Layer> { Box::new(Sequential(vec![Box::new(Standardise { groups }), affine])) };
    Ok(match kind {
        NormKind::None => None,
        NormKind::Instance => Some(standardised(c, Box::new(ChannelAffine::new(init, name, c)?))),
        NormKind::Group => Some(standardised(4, Box::new(ChannelAffine::new(init, name, c)?))),
        NormKind::Layer => Some(standardised(1, Box::new(ElementAffine::new(init, name, shape)?))),
        NormKind::Batch => Some(Box::new(BatchNorm2d::new(init, name, c)?)),
    })
}
