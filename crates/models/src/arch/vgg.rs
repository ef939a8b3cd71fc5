use super::push_norm;
use crate::layers::{Act, Conv2d, Flatten, Linear, Pool2d, Sequential};
use crate::params::ParamInit;
use crate::spec::{Act as Kind, NormKind, PoolKind};
use candle_core::Result;

/// VGG11 configuration: channels, `0` = 2x2 max-pool.
const VGG11: [usize; 13] = [64, 0, 128, 0, 256, 256, 0, 512, 512, 0, 512, 512, 0];

/// VGG11 as the DC code: conv 3x3 -> norm -> relu blocks, 1-channel input padded by 3 (28 -> 32),
/// one linear layer on the 512 x 1 x 1 features.
pub fn vgg11(init: &mut ParamInit, norm: NormKind, input: (usize, usize, usize), classes: usize) -> Result<Sequential> {
    let (mut c, h, _) = input;
    let mut side = h;
    let mut seq = Sequential::default();
    for (i, &v) in VGG11.iter().enumerate() {
        if v == 0 {
            seq.push(Pool2d { kind: PoolKind::Max, kernel: 2 });
            side /= 2;
            continue;
        }
        let padding = if i == 0 && c == 1 { 3 } else { 1 };
        seq.push(Conv2d::new(init, &format!("features.{i}.conv"), c, v, 3, padding)?);
        side += 2 * padding - 2;
        c = v;
        push_norm(&mut seq, init, &format!("features.{i}.norm"), norm, (c, side, side))?;
        seq.push(Act(Kind::Relu));
    }
    seq.push(Flatten);
    seq.push(Linear::new(init, "classifier", c * side * side, classes)?);
    Ok(seq)
}
