use crate::layers::{Act, Flatten, Linear, Sequential};
use crate::params::ParamInit;
use crate::spec::Act as Kind;
use candle_core::Result;

/// MLP: flatten -> 128 -> relu -> 128 -> relu -> classes.
pub fn mlp(init: &mut ParamInit, input: (usize, usize, usize), classes: usize) -> Result<Sequential> {
    let mut seq = Sequential::default();
    seq.push(Flatten);
    seq.push(Linear::new(init, "fc_1", input.0 * input.1 * input.2, 128)?);
    seq.push(Act(Kind::Relu));
    seq.push(Linear::new(init, "fc_2", 128, 128)?);
    seq.push(Act(Kind::Relu));
    seq.push(Linear::new(init, "fc_3", 128, classes)?);
    Ok(seq)
}
