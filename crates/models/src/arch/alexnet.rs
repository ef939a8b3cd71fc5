use super::push_norm;
use crate::layers::{Act, Conv2d, Flatten, Linear, Pool2d, Sequential};
use crate::params::ParamInit;
use crate::spec::{Act as Kind, NormKind, PoolKind};
use candle_core::Result;

/// AlexNet as the DC code: five convolutions (128, 192, 256, 192, 192), max-pooling after the 1st,
/// 2nd and 5th, optional norm after each convolution, one linear layer. 1-channel input padded by 4.
pub fn alexnet(init: &mut ParamInit, norm: NormKind, input: (usize, usize, usize), classes: usize) -> Result<Sequential> {
    let (c_in, h, _) = input;
    let first_padding = if c_in == 1 { 4 } else { 2 };
    let mut side = h + 2 * first_padding - 4;
    let layers: [(usize, usize, usize, bool); 5] =
        [(128, 5, first_padding, true), (192, 5, 2, true), (256, 3, 1, false), (192, 3, 1, false), (192, 3, 1, true)];
    let mut seq = Sequential::default();
    let mut c = c_in;
    for (i, (c_out, kernel, padding, pool_after)) in layers.into_iter().enumerate() {
        seq.push(Conv2d::new(init, &format!("features.{i}.conv"), c, c_out, kernel, padding)?);
        c = c_out;
        push_norm(&mut seq, init, &format!("features.{i}.norm"), norm, (c, side, side))?;
        seq.push(Act(Kind::Relu));
        if pool_after {
            seq.push(Pool2d { kind: PoolKind::Max, kernel: 2 });
            side /= 2;
        }
    }
    seq.push(Flatten);
    seq.push(Linear::new(init, "fc", c * side * side, classes)?);
    Ok(seq)
}
