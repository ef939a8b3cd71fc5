use crate::kmeans::KMeans;
use gradmatch_core::{ClassBatches, OptionError, Plugin, Result, SampleContext, Sampler};

/// DREAM's representative matching (Liu et al., ICCV 2023): per class, the features of the class's
/// real images under the current network are clustered into `batch_real` clusters by k-means, and
/// the image nearest each centre makes the class's batch until the next clustering, `interval`
/// matching steps later on the same network, or on the next network (DC's loop draws one every outer
/// iteration). Initialisation takes the images nearest `ipc` (x decoded images per stored one) centres.
#[derive(Debug, Clone, Copy, PartialEq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Dream {
    /// Real images of the class embedded and clustered per clustering (a uniform draw of that
    /// many, and at least as many as there are centres); `None`: all of them, as DREAM does. What a
    /// clustering costs grows with it.
    pub images: Option<usize>,
    /// Matching steps between clusterings on one network (DREAM's `--interval`).
    pub interval: usize,
    /// Most centre updates of one k-means.
    pub kmeans_iterations: usize,
}

impl Default for Dream {
    fn default() -> Self {
        // fast_pytorch_kmeans's `max_iter`, which DREAM keeps.
        Dream { images: None, interval: 10, kmeans_iterations: 100 }
    }
}

impl Dream {
    /// The images of `class` nearest the centres of `n` clusters of its (drawn) images' features.
    fn representatives(&self, ctx: &mut dyn SampleContext, class: usize, n: usize) -> Result<Vec<usize>> {
        let pool = match self.images {
            Some(images) if images.max(n) < ctx.class_indices(class).len() => ctx.uniform(class, images.max(n)),
            _ => ctx.class_indices(class).to_vec(),
        };
        if n >= pool.len() {
            return Ok(pool);
        }
        let features = ctx.features(&pool)?;
        let clustering = KMeans { clusters: n, max_iterations: self.kmeans_iterations }.fit(&features, ctx.rng())?;
        Ok(clustering.nearest_rows(&features)?.into_iter().map(|row| pool[row as usize]).collect())
    }
}

impl Sampler for Dream {
    fn for_network(&self) -> Box<dyn ClassBatches + '_> {
        Box::new(Representatives { dream: self, chosen: Vec::new() })
    }

    fn initial(&self, ctx: &mut dyn SampleContext, class: usize, n: usize) -> Result<Vec<usize>> {
        self.representatives(ctx, class, n)
    }
}

/// The batches of one network: per class, the step it was last clustered at and its batch.
struct Representatives<'a> {
    dream: &'a Dream,
    chosen: Vec<Option<(usize, Vec<usize>)>>,
}

impl ClassBatches for Representatives<'_> {
    fn batch(&mut self, ctx: &mut dyn SampleContext, class: usize) -> Result<Vec<usize>> {
        if self.chosen.len() <= class {
            self.chosen.resize(class + 1, None);
        }
        let step = ctx.step();
        match &self.chosen[class] {
            Some((at, batch)) if step < at + self.dream.interval => Ok(batch.clone()),
            _ => {
                let size = ctx.batch_size();
                let batch = self.dream.representatives(ctx, class, size)?;
                self.chosen[class] = Some((step, batch.clone()));
                Ok(batch)
            }
        }
    }
}

impl Plugin for Dream {
    const NAME: &'static str = "dream";
    const SUMMARY: &'static str =
        "the images nearest k-means centres of the network's features, re-clustered every `interval` steps (DREAM)";
    type Options = Self;
    fn from_options(o: Self) -> std::result::Result<Self, OptionError> {
        OptionError::at_least_one("interval", o.interval)?;
        OptionError::at_least_one("kmeans_iterations", o.kmeans_iterations)?;
        if let Some(images) = o.images {
            OptionError::at_least_one("images", images)?;
        }
        Ok(o)
    }
}
