use super::{group_row_sums, member_broadcast, member_matmul, Backward, Forward, Layer, Saved};
use crate::params::{ParamInit, ParamRef};
use candle_core::{Result, Tensor};

/// Fully connected layer, weight `(out, in)`.
pub struct Linear {
    weight: ParamRef,
    bias: ParamRef,
}

impl Linear {
    pub fn new(init: &mut ParamInit, name: &str, d_in: usize, d_out: usize) -> Result<Self> {
        let bound = 1.0 / (d_in as f64).sqrt();
        let weight = init.uniform(format!("{name}.weight"), (d_out, d_in), bound)?;
        let bias = init.uniform(format!("{name}.bias"), d_out, bound)?;
        Ok(Linear { weight, bias })
    }
}

impl Layer for Linear {
    fn forward(&self, x: &Tensor, ctx: &mut Forward) -> Result<Tensor> {
        ctx.save(Saved::Input(x.clone()));
        let (weight, members) = (ctx.param(&self.weight), ctx.members);
        gradmatch_core::flops::count_product(x.dim(0)?, x.dim(1)?, weight.dim(candle_core::D::Minus2)?);
        let y = match members {
            1 => x.matmul(&weight.t()?)?,
            _ => member_matmul(x, &weight.transpose(1, 2)?.contiguous()?, members)?,
        };
        member_broadcast(&y, &ctx.param(&self.bias), members, |y, b| y.broadcast_add(b))
    }

    fn backward(&self, grad: &Tensor, ctx: &mut Backward, need_input: bool) -> Result<Option<Tensor>> {
        let x = ctx.pop()?.input()?;
        let groups = ctx.groups;
        let (d_out, d_in) = (grad.dim(1)?, x.dim(1)?);
        gradmatch_core::flops::count_product(x.dim(0)?, d_in, d_out);
        let dw = grad.reshape((groups, (), d_out))?.transpose(1, 2)?.matmul(&x.reshape((groups, (), d_in))?)?;
        ctx.accumulate(&self.weight, dw)?;
        ctx.accumulate(&self.bias, group_row_sums(grad, groups)?)?;
        if !need_input {
            return Ok(None);
        }
        gradmatch_core::flops::count_product(x.dim(0)?, d_in, d_out);
        Ok(Some(member_matmul(grad, &ctx.param(&self.weight), ctx.members)?))
    }
}
