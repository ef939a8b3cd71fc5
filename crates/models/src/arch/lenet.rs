use crate::layers::{Act, Conv2d, Flatten, Linear, Pool2d, Sequential};
use crate::params::ParamInit;
use crate::spec::{Act as Kind, PoolKind};
use candle_core::Result;

/// LeNet: conv5(6) -> relu -> maxpool -> conv5(16) -> relu -> maxpool -> 120 -> 84 -> classes.
/// A 1-channel input is padded by 2 (28 -> 32), as the reference.
pub fn lenet(init: &mut ParamInit, input: (usize, usize, usize), classes: usize) -> Result<Sequential> {
    let (c, h, _) = input;
    let padding = if c == 1 { 2 } else { 0 };
    let side = ((h + 2 * padding - 4) / 2 - 4) / 2;
    let mut seq = Sequential::default();
    seq.push(Conv2d::new(init, "features.0", c, 6, 5, padding)?);
    seq.push(Act(Kind::Relu));
    seq.push(Pool2d { kind: PoolKind::Max, kernel: 2 });
    seq.push(Conv2d::new(init, "features.3", 6, 16, 5, 0)?);
    seq.push(Act(Kind::Relu));
    seq.push(Pool2d { kind: PoolKind::Max, kernel: 2 });
    seq.push(Flatten);
    seq.push(Linear::new(init, "fc_1", 16 * side * side, 120)?);
    seq.push(Act(Kind::Relu));
    seq.push(Linear::new(init, "fc_2", 120, 84)?);
    seq.push(Act(Kind::Relu));
    seq.push(Linear::new(init, "fc_3", 84, classes)?);
    Ok(seq)
}
