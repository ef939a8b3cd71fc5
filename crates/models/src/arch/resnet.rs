use super::norm_layer;
use crate::layers::{Act, Backward, Conv2d, Flatten, Forward, Layer, Linear, Pool2d, Sequential};
use crate::params::ParamInit;
use crate::spec::{Act as Kind, NormKind, PoolKind};
use candle_core::{Result, Tensor};

/// A residual block: conv3x3 -> norm -> relu -> conv3x3 -> norm, plus a shortcut, then relu.
/// Downsampling is by stride 2 or, in the average-pool variant, by 2x2 average pooling.
struct BasicBlock {
    main: Sequential,
    /// `None`: the identity.
    shortcut: Option<Sequential>,
    out: Act,
}

impl BasicBlock {
    fn new(init: &mut ParamInit, name: &str, norm: NormKind, c_in: usize, c_out: usize, stride: usize, avg_pool: bool) -> Result<Self> {
        let conv_stride = if avg_pool { 1 } else { stride };
        let downsample_pool = || (avg_pool && stride != 1).then_some(Pool2d { kind: PoolKind::Avg, kernel: 2 });
        let mut main = Sequential::default();
        main.push(Conv2d::without_bias(init, &format!("{name}.conv1"), (c_in, c_out, 3), conv_stride, 1)?);
        main.0.extend(norm_layer(init, &format!("{name}.bn1"), norm, (c_out, 1, 1))?);
        main.push(Act(Kind::Relu));
        main.0.extend(downsample_pool().map(|p| Box::new(p) as Box<dyn Layer>));
        main.push(Conv2d::without_bias(init, &format!("{name}.conv2"), (c_out, c_out, 3), 1, 1)?);
        main.0.extend(norm_layer(init, &format!("{name}.bn2"), norm, (c_out, 1, 1))?);
        let shortcut = if stride != 1 || c_in != c_out {
            let mut s = Sequential::default();
            s.push(Conv2d::without_bias(init, &format!("{name}.shortcut.conv"), (c_in, c_out, 1), conv_stride, 0)?);
            s.0.extend(downsample_pool().map(|p| Box::new(p) as Box<dyn Layer>));
            s.0.extend(norm_layer(init, &format!("{name}.shortcut.bn"), norm, (c_out, 1, 1))?);
            Some(s)
        } else {
            None
        };
        Ok(BasicBlock { main, shortcut, out: Act(Kind::Relu) })
    }
}

impl Layer for BasicBlock {
    fn forward(&self, x: &Tensor, ctx: &mut Forward) -> Result<Tensor> {
        let main = self.main.forward(x, ctx)?;
        let identity = match &self.shortcut {
            Some(s) => s.forward(x, ctx)?,
            None => x.clone(),
        };
        self.out.forward(&(main + identity)?, ctx)
    }

    /// The exact reverse of `forward`: the tape pops the output relu, the shortcut, then the main path.
    fn backward(&self, grad: &Tensor, ctx: &mut Backward, need_input: bool) -> Result<Option<Tensor>> {
        let g = self.out.backward(grad, ctx, true)?.expect("relu returns its input gradient");
        let identity = match &self.shortcut {
            Some(s) => s.backward(&g, ctx, need_input)?,
            None => Some(g.clone()),
        };
        let main = self.main.backward(&g, ctx, need_input)?;
        match (main, identity) {
            (Some(m), Some(i)) => Ok(Some((m + i)?)),
            _ => Ok(None),
        }
    }
}

/// ResNet18 as the DC code: a 3x3 stem (64), four stages of two blocks (64, 128, 256, 512; stride 1,
/// 2, 2, 2), then global 4x4 average pooling and a linear layer. The "AP" variant downsamples by
/// average pooling (28 -> 14 -> 7 -> 3 on MNIST, floor mode) and classifies the flattened map.
pub fn resnet18(init: &mut ParamInit, norm: NormKind, avg_pool: bool, input: (usize, usize, usize), classes: usize) -> Result<Sequential> {
    let (c_in, h, _) = input;
    let mut seq = Sequential::default();
    seq.push(Conv2d::without_bias(init, "conv1", (c_in, 64, 3), 1, 1)?);
    seq.0.extend(norm_layer(init, "bn1", norm, (64, 1, 1))?);
    seq.push(Act(Kind::Relu));
    let (mut c, mut side) = (64, h);
    for (stage, (c_out, stride)) in [(64, 1), (128, 2), (256, 2), (512, 2)].into_iter().enumerate() {
        for b in 0..2 {
            let s = if b == 0 { stride } else { 1 };
            seq.push(BasicBlock::new(init, &format!("layer{}.{b}", stage + 1), norm, c, c_out, s, avg_pool)?);
            c = c_out;
            if s == 2 {
                side = if avg_pool { side / 2 } else { (side - 1) / 2 + 1 };
            }
        }
    }
    if !avg_pool {
        seq.push(Pool2d { kind: PoolKind::Avg, kernel: side });
    }
    let features = if avg_pool { c * side * side } else { c };
    seq.push(Flatten);
    seq.push(Linear::new(init, "classifier", features, classes)?);
    Ok(seq)
}
