use crate::intra::sum_of_class_distances;
use gradmatch_core::{Distance, GradientLevel, MatchContext, OptionError, Plugin, Result, Tensor};

/// The paper's "M": L = sum_c D(g_real_c, g_syn_c) + w * D(mean_c g_real_c, mean_c g_syn_c).
/// Each class's gradients are computed once and serve both terms. `inter_weight` defaults to the
/// number of classes.
#[derive(Debug, Default, Clone, Copy, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MultiLevel {
    pub inter_weight: Option<f64>,
}

/// Element-wise mean over classes of per-class gradient lists.
fn mean_over_classes(per_class: &[Vec<Tensor>]) -> Result<Vec<Tensor>> {
    let n = per_class.len() as f64;
    (0..per_class[0].len())
        .map(|p| {
            let stacked = Tensor::stack(&per_class.iter().map(|g| &g[p]).collect::<Vec<_>>(), 0)?;
            stacked.sum(0)? / n
        })
        .collect()
}

impl GradientLevel for MultiLevel {
    fn matching_loss(&self, ctx: &mut dyn MatchContext, distance: &dyn Distance) -> Result<Tensor> {
        let classes = ctx.num_classes();
        if classes == 0 {
            gradmatch_core::candle_core::bail!("multi-level matching needs at least one class")
        }
        let (real, syn) = (ctx.real_class_grads()?, ctx.syn_class_grads()?);
        let intra = sum_of_class_distances(&real, &syn, distance)?;
        let weight = self.inter_weight.unwrap_or(classes as f64);
        let inter = distance.distance(&mean_over_classes(&real)?, &mean_over_classes(&syn)?)?;
        intra + (inter * weight)?
    }
}

impl Plugin for MultiLevel {
    const NAME: &'static str = "multi-level";
    const SUMMARY: &'static str = "intra + inter_weight * D(mean_c g_syn_c, mean_c g_real_c) (the paper's M)";
    type Options = Self;
    fn from_options(o: Self) -> std::result::Result<Self, OptionError> {
        Ok(MultiLevel { inter_weight: o.inter_weight.map(|w| OptionError::non_negative("inter_weight", w)).transpose()? })
    }
}
