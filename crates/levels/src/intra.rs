use gradmatch_core::{Distance, GradientLevel, MatchContext, Result, Tensor};

/// DC's level: each class on its own, L = sum_c D(g_real_c, g_syn_c).
#[derive(Debug, Default, Clone, Copy)]
pub struct IntraClass;

impl GradientLevel for IntraClass {
    fn matching_loss(&self, ctx: &mut dyn MatchContext, distance: &dyn Distance) -> Result<Tensor> {
        let mut total: Option<Tensor> = None;
        for c in 0..ctx.num_classes() {
            let d = distance.distance(&ctx.real_class_grads(c)?, &ctx.syn_class_grads(c)?)?;
            total = Some(match total {
                Some(t) => (t + d)?,
                None => d,
            });
        }
        total.ok_or_else(|| candle_core::Error::Msg("intra-class matching needs at least one class".into()))
    }
}
