use crate::{InterClass, IntraClass};
use gradmatch_core::{Distance, GradientLevel, MatchContext, Result, Tensor};

/// Intra-class on even outer iterations, inter-class on odd ones.
#[derive(Debug, Default, Clone, Copy)]
pub struct Interleaved {
    pub inter: InterClass,
}

impl GradientLevel for Interleaved {
    fn matching_loss(&self, ctx: &mut dyn MatchContext, distance: &dyn Distance) -> Result<Tensor> {
        if ctx.iteration().is_multiple_of(2) {
            IntraClass.matching_loss(ctx, distance)
        } else {
            self.inter.matching_loss(ctx, distance)
        }
    }
}
