use gradmatch_core::{plugin_without_options, Result, SelectContext, Selection};

/// Uniform draws of distinct images of the class: the Random baseline's.
#[derive(Debug, Default, Clone, Copy)]
pub struct Random;

impl Selection for Random {
    fn select(&self, ctx: &mut dyn SelectContext, class: usize, n: usize) -> Result<Vec<usize>> {
        super::class_of(ctx, class, n)?;
        Ok(ctx.uniform(class, n))
    }
}

plugin_without_options!(Random, "random", "uniform draws of the class's images (DC's Random baseline)");
