use crate::{InterClass, IntraClass};
use gradmatch_core::{Distance, GradientLevel, MatchContext, OptionError, Plugin, Result, Tensor};

/// Intra-class on even outer iterations, inter-class on odd ones.
#[derive(Debug, Default, Clone, Copy, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Interleaved {
    /// The odd iterations' level: `inter = { real_batch = 512 }`.
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

impl Plugin for Interleaved {
    const NAME: &'static str = "interleaved";
    const SUMMARY: &'static str = "intra on even iterations, inter on odd ones";
    type Options = Self;
    fn from_options(o: Self) -> std::result::Result<Self, OptionError> {
        Ok(Interleaved { inter: InterClass::from_options(o.inter)? })
    }
}
