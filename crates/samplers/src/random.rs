use gradmatch_core::{plugin_without_options, ClassBatches, Result, SampleContext, Sampler};

/// Uniform draws of distinct images of the class, fresh at every matching step (DC's).
#[derive(Debug, Default, Clone, Copy)]
pub struct Random;

impl Sampler for Random {
    fn for_network(&self) -> Box<dyn ClassBatches + '_> {
        Box::new(Random)
    }

    fn initial(&self, ctx: &mut dyn SampleContext, class: usize, n: usize) -> Result<Vec<usize>> {
        Ok(ctx.uniform(class, n))
    }
}

impl ClassBatches for Random {
    fn batch(&mut self, ctx: &mut dyn SampleContext, class: usize) -> Result<Vec<usize>> {
        let n = ctx.batch_size();
        Ok(ctx.uniform(class, n))
    }
}

plugin_without_options!(Random, "random", "uniform draws of the class's images at every match (DC)");
