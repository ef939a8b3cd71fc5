use super::push_norm;
use crate::layers::{self, Conv2d, ConvBlock, Flatten, Linear, NormReluPool, Pool2d, Sequential};
use crate::params::ParamInit;
use crate::spec::{Act, ModelSpec, NormKind, PoolKind};
use candle_core::Result;

/// ConvNet: `depth` x [conv 3x3 -> norm -> act -> pool 2x2], flatten, linear. A 1-channel input is
/// padded by 3 in the first convolution (28x28 -> 32x32), so every pooled side stays even.
pub fn convnet(init: &mut ParamInit, spec: &ModelSpec, input: (usize, usize, usize), classes: usize) -> Result<Sequential> {
    let (mut c, mut h, mut w) = input;
    let mut seq = Sequential::default();
    for d in 0..spec.depth {
        let padding = if d == 0 && input.0 == 1 { 3 } else { 1 };
        let conv = Conv2d::new(init, &format!("features.{d}.conv"), c, spec.width, 3, padding)?;
        (c, h, w) = (spec.width, h + 2 * padding - 2, w + 2 * padding - 2);
        let pool = Pool2d { kind: spec.pool, kernel: 2 };
        let (pooled_h, pooled_w) = (pool.output_side(h), pool.output_side(w));
        let norm = format!("features.{d}.norm");
        if (spec.norm, spec.act, spec.pool) == (NormKind::Instance, Act::Relu, PoolKind::Avg) {
            // The paper's ConvNet: its blocks have fused CPU paths.
            seq.push(ConvBlock { conv, tail: NormReluPool::new(init, &norm, c, pool.kernel)? });
        } else {
            seq.push(conv);
            push_norm(&mut seq, init, &norm, spec.norm, (c, h, w))?;
            seq.push(layers::Act(spec.act));
            seq.push(pool);
        }
        (h, w) = (pooled_h, pooled_w);
    }
    seq.push(Flatten);
    seq.push(Linear::new(init, "classifier", c * h * w, classes)?);
    Ok(seq)
}
