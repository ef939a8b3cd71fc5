use super::norm_layer;
use crate::layers::{Conv2d, Layer, Linear, Mode, Pool2d};
use crate::params::ParamInit;
use crate::spec::{NormKind, PoolKind};
use candle_core::{Result, Tensor};

/// Applies an optional layer (norm layers are absent for `NormKind::None`).
fn apply(layer: &Option<Box<dyn Layer>>, x: Tensor, mode: Mode) -> Result<Tensor> {
    match layer {
        Some(l) => l.forward(&x, mode),
        None => Ok(x),
    }
}

/// A residual block: conv3x3 -> norm -> relu -> conv3x3 -> norm, plus a shortcut, then relu.
/// Downsampling is by stride 2 or, in the average-pool variant, by 2x2 average pooling.
struct BasicBlock {
    conv1: Conv2d,
    norm1: Option<Box<dyn Layer>>,
    conv2: Conv2d,
    norm2: Option<Box<dyn Layer>>,
    shortcut: Option<(Conv2d, Option<Box<dyn Layer>>)>,
    downsample_pool: Option<Pool2d>,
}

impl BasicBlock {
    fn new(init: &mut ParamInit, name: &str, norm: NormKind, c_in: usize, c_out: usize, stride: usize, avg_pool: bool) -> Result<Self> {
        let conv_stride = if avg_pool { 1 } else { stride };
        let conv1 = Conv2d::without_bias(init, &format!("{name}.conv1"), (c_in, c_out, 3), conv_stride, 1)?;
        let norm1 = norm_layer(init, &format!("{name}.bn1"), norm, (c_out, 1, 1))?;
        let conv2 = Conv2d::without_bias(init, &format!("{name}.conv2"), (c_out, c_out, 3), 1, 1)?;
        let norm2 = norm_layer(init, &format!("{name}.bn2"), norm, (c_out, 1, 1))?;
        let shortcut = if stride != 1 || c_in != c_out {
            let conv = Conv2d::without_bias(init, &format!("{name}.shortcut.conv"), (c_in, c_out, 1), conv_stride, 0)?;
            Some((conv, norm_layer(init, &format!("{name}.shortcut.bn"), norm, (c_out, 1, 1))?))
        } else {
            None
        };
        let downsample_pool = (avg_pool && stride != 1).then_some(Pool2d { kind: PoolKind::Avg, kernel: 2 });
        Ok(BasicBlock { conv1, norm1, conv2, norm2, shortcut, downsample_pool })
    }
}

impl Layer for BasicBlock {
    fn forward(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        let mut out = apply(&self.norm1, self.conv1.forward(x, mode)?, mode)?.relu()?;
        if let Some(pool) = &self.downsample_pool {
            out = pool.forward(&out, mode)?;
        }
        let out = apply(&self.norm2, self.conv2.forward(&out, mode)?, mode)?;
        let identity = match &self.shortcut {
            Some((conv, norm)) => {
                let mut s = conv.forward(x, mode)?;
                if let Some(pool) = &self.downsample_pool {
                    s = pool.forward(&s, mode)?;
                }
                apply(norm, s, mode)?
            }
            None => x.clone(),
        };
        (out + identity)?.relu()
    }
}

/// ResNet18 as the DC code: a 3x3 stem (64), four stages of two blocks (64, 128, 256, 512; stride 1,
/// 2, 2, 2), then global 4x4 average pooling and a linear layer. The "AP" variant downsamples by
/// average pooling (28 -> 14 -> 7 -> 3 on MNIST, floor mode) and classifies the flattened map.
pub struct ResNet18 {
    stem: Conv2d,
    stem_norm: Option<Box<dyn Layer>>,
    blocks: Vec<BasicBlock>,
    head_pool: Option<Pool2d>,
    classifier: Linear,
}

pub fn resnet18(init: &mut ParamInit, norm: NormKind, avg_pool: bool, input: (usize, usize, usize), classes: usize) -> Result<ResNet18> {
    let (c_in, h, _) = input;
    let stem = Conv2d::without_bias(init, "conv1", (c_in, 64, 3), 1, 1)?;
    let stem_norm = norm_layer(init, "bn1", norm, (64, 1, 1))?;
    let mut blocks = Vec::new();
    let (mut c, mut side) = (64, h);
    for (stage, (c_out, stride)) in [(64, 1), (128, 2), (256, 2), (512, 2)].into_iter().enumerate() {
        for b in 0..2 {
            let s = if b == 0 { stride } else { 1 };
            blocks.push(BasicBlock::new(init, &format!("layer{}.{b}", stage + 1), norm, c, c_out, s, avg_pool)?);
            c = c_out;
            if s == 2 {
                side = if avg_pool { side / 2 } else { (side - 1) / 2 + 1 };
            }
        }
    }
    let head_pool = (!avg_pool).then_some(Pool2d { kind: PoolKind::Avg, kernel: side });
    let features = if avg_pool { c * side * side } else { c };
    let classifier = Linear::new(init, "classifier", features, classes)?;
    Ok(ResNet18 { stem, stem_norm, blocks, head_pool, classifier })
}

impl Layer for ResNet18 {
    fn forward(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        let mut out = apply(&self.stem_norm, self.stem.forward(x, mode)?, mode)?.relu()?;
        for block in &self.blocks {
            out = block.forward(&out, mode)?;
        }
        if let Some(pool) = &self.head_pool {
            out = pool.forward(&out, mode)?;
        }
        self.classifier.forward(&out.flatten_from(1)?, mode)
    }
}
