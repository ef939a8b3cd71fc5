use gradmatch_core::{Distance, GradientLevel, MatchContext, OptionError, Plugin, Result, Tensor};

/// One mixed batch of all classes: L = C * D(g_real, g_syn), with `real_batch` random real images
/// and a shuffled batch of at most `syn_batch` synthetic ones.
#[derive(Debug, Clone, Copy, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InterClass {
    pub real_batch: usize,
    pub syn_batch: usize,
}

impl Default for InterClass {
    fn default() -> Self {
        InterClass { real_batch: 1024, syn_batch: 256 }
    }
}

impl GradientLevel for InterClass {
    fn matching_loss(&self, ctx: &mut dyn MatchContext, distance: &dyn Distance) -> Result<Tensor> {
        let classes = ctx.num_classes() as f64;
        let real = ctx.real_mixed_grads(self.real_batch)?;
        let syn = ctx.syn_mixed_grads(self.syn_batch)?;
        distance.distance(&real, &syn)? * classes
    }
}

impl Plugin for InterClass {
    const NAME: &'static str = "inter";
    const SUMMARY: &'static str = "one mixed batch of all classes, weighted by the class count";
    type Options = Self;
    fn from_options(o: Self) -> std::result::Result<Self, OptionError> {
        OptionError::at_least_one("real_batch", o.real_batch)?;
        OptionError::at_least_one("syn_batch", o.syn_batch)?;
        Ok(o)
    }
}
