use gradmatch_core::{plugin_without_options, Distance, GradientLevel, MatchContext, Result, Tensor};

/// DC's level: each class on its own, L = sum_c D(g_real_c, g_syn_c).
#[derive(Debug, Default, Clone, Copy)]
pub struct IntraClass;

impl GradientLevel for IntraClass {
    fn matching_loss(&self, ctx: &mut dyn MatchContext, distance: &dyn Distance) -> Result<Tensor> {
        let (real, syn) = (ctx.real_class_grads()?, ctx.syn_class_grads()?);
        sum_of_class_distances(&real, &syn, distance)
    }
}

plugin_without_options!(IntraClass, "intra", "per class: sum_c D(g_syn_c, g_real_c) (DC)");

/// `sum_c D(real_c, syn_c)`.
pub(crate) fn sum_of_class_distances(real: &[Vec<Tensor>], syn: &[Vec<Tensor>], distance: &dyn Distance) -> Result<Tensor> {
    let mut total: Option<Tensor> = None;
    for (r, s) in real.iter().zip(syn) {
        let d = distance.distance(r, s)?;
        total = Some(match total {
            Some(t) => (t + d)?,
            None => d,
        });
    }
    total.ok_or_else(|| gradmatch_core::candle_core::Error::Msg("matching needs at least one class".into()))
}
