//! The engine's side of [`MatchContext`]: the real and synthetic gradients of one matching step, and
//! the step's gradient with respect to the synthetic images.
//!
//! The synthetic side is differentiated in two passes so that the second-order graph of only a few
//! classes exists at a time (candle keeps every intermediate of a graph, and its backward as much
//! again: over all 100 images of ipc 10 that was 2.5x PyTorch's memory). The level receives the
//! synthetic gradients g as constants (leaves); the backward of its loss L gives dL/dg; then each
//! pass of [`PassSizes::syn_classes_per_pass`] classes recomputes its gradients with their graph and
//! back-propagates `sum <dL/dg, g>` to its images, whose gradient is exactly (dg/dx)ᵀ dL/dg.

use crate::condense::{CondenseConfig, Method};
use crate::device::DeviceData;
use crate::passes::PassSizes;
use crate::seed::AugmentSeeds;
use candle_core::{Result, Tensor, Var};
use gradmatch_core::MatchContext;
use gradmatch_models::{one_hot, Mode, Network};
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

/// The parts of one matching step.
pub(crate) struct MatchStep<'a> {
    pub net: &'a Network,
    pub real: &'a DeviceData<'a>,
    /// One variable per class (ipc images each).
    pub syn: &'a [Var],
    pub cfg: &'a CondenseConfig,
    pub method: Method<'a>,
    pub passes: PassSizes,
    /// The augmentation seeds of this matching step (which also name its iteration and class count).
    pub seeds: AugmentSeeds,
}

/// The matching loss of a step (detached) and its gradient with respect to each class's images
/// (`None` for a class the level did not use).
pub(crate) struct Matched {
    pub loss: Tensor,
    pub image_grads: Vec<Option<Tensor>>,
}

/// Synthetic images whose gradients a level received.
#[derive(Debug, Clone)]
enum SynBatch {
    /// Classes `first..first + count`, one group each, every class augmented with its own seed.
    Classes { first: usize, count: usize },
    /// Images `order` of the class-major set in one group, augmented with the mixed seed.
    Mixed { order: Vec<u32> },
}

impl SynBatch {
    fn groups(&self) -> usize {
        match self {
            SynBatch::Classes { count, .. } => *count,
            SynBatch::Mixed { .. } => 1,
        }
    }

    /// The batch as passes of at most `per_pass` classes, each with its first group's offset. A
    /// mixed batch is one pass: its gradient is of the mean loss over all its images.
    fn passes(&self, per_pass: usize) -> Vec<(usize, SynBatch)> {
        match self {
            SynBatch::Classes { first, count } => (0..*count)
                .step_by(per_pass.max(1))
                .map(|offset| (offset, SynBatch::Classes { first: first + offset, count: per_pass.min(count - offset) }))
                .collect(),
            SynBatch::Mixed { .. } => vec![(0, self.clone())],
        }
    }
}

/// What the level received for one synthetic batch: per parameter, a `(groups, *shape)` leaf.
struct Received {
    batch: SynBatch,
    leaves: Vec<Var>,
}

/// The step's [`MatchContext`].
struct Matcher<'s, 'a> {
    step: &'s MatchStep<'a>,
    mode: Mode,
    rng: &'s mut ChaCha8Rng,
    received: Vec<Received>,
}

impl<'a> MatchStep<'a> {
    /// The matching loss and its gradient with respect to the synthetic images. Batch-norm networks
    /// first take their statistics from real images (train mode), then match with them frozen.
    pub fn run(&self, rng: &mut ChaCha8Rng) -> Result<Matched> {
        let mut mode = Mode::Train;
        if self.net.has_batch_norm() {
            set_batch_norm_statistics(self, rng)?;
            mode = Mode::Eval;
        }
        let mut matcher = Matcher { step: self, mode, rng, received: Vec::new() };
        let loss = self.method.level.matching_loss(&mut matcher, self.method.distance)?;
        let upstream = loss.backward()?;
        let mut image_grads: Vec<Option<Tensor>> = vec![None; self.syn.len()];
        for received in &matcher.received {
            // `None` where the loss does not depend on a gradient (a distance may skip biases).
            let dl_dg: Vec<Option<&Tensor>> = received.leaves.iter().map(|v| upstream.get(v.as_tensor())).collect();
            if dl_dg.iter().all(Option::is_none) {
                continue;
            }
            for (offset, pass) in received.batch.passes(self.passes.syn_classes_per_pass) {
                let grads = matcher.syn_grads(&pass, true)?;
                let mut product = Tensor::zeros((), loss.dtype(), loss.device())?;
                for (d, g) in dl_dg.iter().zip(&grads) {
                    if let Some(d) = d {
                        product = (product + (d.narrow(0, offset, pass.groups())? * g)?.sum_all()?)?;
                    }
                }
                let back = product.backward()?;
                for (sum, var) in image_grads.iter_mut().zip(self.syn) {
                    if let Some(g) = back.get(var.as_tensor()) {
                        *sum = Some(match sum.take() {
                            Some(s) => (s + g)?,
                            None => g.clone(),
                        });
                    }
                }
            }
        }
        Ok(Matched { loss: loss.detach(), image_grads })
    }
}

/// Batch-norm networks: statistics from `bn_images_per_class` real images of each class (train
/// mode), then frozen for the matching step.
fn set_batch_norm_statistics(step: &MatchStep, rng: &mut ChaCha8Rng) -> Result<()> {
    let (real, classes) = (step.real, step.seeds.classes);
    let idx: Vec<usize> = (0..classes).flat_map(|c| real.split.sample_class(c, step.cfg.bn_images_per_class, rng)).collect();
    step.net.forward(&real.select(&idx)?, Mode::Train)?;
    Ok(())
}

impl Matcher<'_, '_> {
    /// Per-group gradients of the real images `x`, rows `idx` of the training split (`groups` equal,
    /// contiguous groups), no graph.
    fn real_grads(&self, x: &Tensor, idx: &[usize], groups: usize) -> Result<Vec<Vec<Tensor>>> {
        split_groups(self.grads(x, &self.step.real.split.gather_labels(idx), groups)?, groups)
    }

    /// The real images of class `class`'s batch `idx`, augmented with the class's seed.
    fn real_class_batch(&self, class: usize, idx: &[usize]) -> Result<Tensor> {
        self.step.method.augment.augment(&self.step.real.select(idx)?, self.step.seeds.class(class))
    }

    /// `(groups, *shape)` gradients of images `x` (`groups` equal, contiguous groups): differentiable
    /// when `x` is tracked, graph-free otherwise.
    fn grads(&self, x: &Tensor, labels: &[u32], groups: usize) -> Result<Vec<Tensor>> {
        let t = one_hot(labels, self.step.seeds.classes, x.dtype(), x.device())?;
        Ok(self.step.net.loss_and_grads(x, &t, self.mode, groups)?.1)
    }

    /// Class `c`'s synthetic images, tracked or as constants.
    fn class_images(&self, c: usize, tracked: bool) -> Tensor {
        let t = self.step.syn[c].as_tensor();
        if tracked {
            t.clone()
        } else {
            t.detach()
        }
    }

    /// The gradients of a synthetic batch in one pass, with their graph when `tracked`.
    fn syn_grads(&self, batch: &SynBatch, tracked: bool) -> Result<Vec<Tensor>> {
        let (step, ipc) = (self.step, self.step.cfg.ipc);
        match batch {
            SynBatch::Classes { first, count } => {
                let classes = *first..first + count;
                let x = classes
                    .clone()
                    .map(|c| step.method.augment.augment(&self.class_images(c, tracked), step.seeds.class(c)))
                    .collect::<Result<Vec<_>>>()?;
                let labels: Vec<u32> = classes.flat_map(|c| std::iter::repeat_n(c as u32, ipc)).collect();
                self.grads(&Tensor::cat(&x, 0)?, &labels, *count)
            }
            SynBatch::Mixed { order } => {
                let all = Tensor::cat(&(0..step.syn.len()).map(|c| self.class_images(c, tracked)).collect::<Vec<_>>(), 0)?;
                let labels: Vec<u32> = order.iter().map(|&i| i / ipc as u32).collect();
                let x = all.index_select(&Tensor::from_slice(order, order.len(), all.device())?, 0)?;
                self.grads(&step.method.augment.augment(&x, step.seeds.mixed())?, &labels, 1)
            }
        }
    }

    /// Hands the level the gradients of `batch` as constants, remembering them for the image step.
    fn receive(&mut self, batch: SynBatch, grads: Vec<Tensor>) -> Result<Vec<Vec<Tensor>>> {
        let leaves = grads.iter().map(Var::from_tensor).collect::<Result<Vec<_>>>()?;
        let groups = batch.groups();
        let given = split_groups(leaves.iter().map(|v| v.as_tensor().clone()).collect(), groups);
        self.received.push(Received { batch, leaves });
        given
    }

    /// At most `max` synthetic images of all classes, shuffled.
    fn mixed_batch(&mut self, max: usize) -> Result<SynBatch> {
        let mut order: Vec<u32> = (0..(self.step.seeds.classes * self.step.cfg.ipc) as u32).collect();
        order.shuffle(self.rng);
        order.truncate(max);
        self.check_mixed(order.len(), "synthetic")?;
        Ok(SynBatch::Mixed { order })
    }

    /// Refuses a one-group pass (a mixed batch) larger than a pass may hold.
    fn check_mixed(&self, images: usize, side: &str) -> Result<()> {
        let max = self.step.passes.max_images;
        if images > max {
            candle_core::bail!(
                "a mixed {side} batch of {images} images is more than one pass may hold ({max}): lower the level's batch option \
                 or raise max_images_per_pass"
            )
        }
        Ok(())
    }
}

/// `(groups, *shape)` gradients -> one list of `shape` gradients per group.
fn split_groups(grads: Vec<Tensor>, groups: usize) -> Result<Vec<Vec<Tensor>>> {
    (0..groups).map(|g| grads.iter().map(|t| t.get(g)).collect()).collect()
}

impl MatchContext for Matcher<'_, '_> {
    fn num_classes(&self) -> usize {
        self.step.seeds.classes
    }

    fn iteration(&self) -> usize {
        self.step.seeds.iteration
    }

    fn real_class_grads(&mut self) -> Result<Vec<Vec<Tensor>>> {
        let (step, classes) = (self.step, self.step.seeds.classes);
        // Drawn in class order whatever the chunking: the same seed gives the same batches.
        let batches: Vec<Vec<usize>> = (0..classes).map(|c| step.real.split.sample_class(c, step.cfg.batch_real, self.rng)).collect();
        let mut grads = Vec::with_capacity(classes);
        let per_pass = step.passes.classes_per_pass;
        for (first, chunk) in (0..).step_by(per_pass).zip(batches.chunks(per_pass)) {
            // Each class's batch gets its own seed, the one its synthetic images get.
            let x = chunk.iter().enumerate().map(|(k, idx)| self.real_class_batch(first + k, idx)).collect::<Result<Vec<_>>>()?;
            grads.extend(self.real_grads(&Tensor::cat(&x, 0)?, &chunk.concat(), chunk.len())?);
        }
        Ok(grads)
    }

    fn syn_class_grads(&mut self) -> Result<Vec<Vec<Tensor>>> {
        let all = SynBatch::Classes { first: 0, count: self.step.seeds.classes };
        // Graph-free, so one pass may hold as many classes as the index range allows.
        let per_pass = (self.step.passes.max_images / self.step.cfg.ipc).max(1);
        let mut passes = Vec::new();
        for (_, pass) in all.passes(per_pass) {
            passes.push(self.syn_grads(&pass, false)?);
        }
        let grads = (0..passes[0].len())
            .map(|p| Tensor::cat(&passes.iter().map(|pass| &pass[p]).collect::<Vec<_>>(), 0))
            .collect::<Result<Vec<_>>>()?;
        self.receive(all, grads)
    }

    fn real_mixed_grads(&mut self, n: usize) -> Result<Vec<Tensor>> {
        self.check_mixed(n, "real")?;
        let idx = self.step.real.split.sample_any(n, self.rng);
        let x = self.step.method.augment.augment(&self.step.real.select(&idx)?, self.step.seeds.mixed())?;
        Ok(self.real_grads(&x, &idx, 1)?.remove(0))
    }

    fn syn_mixed_grads(&mut self, max: usize) -> Result<Vec<Tensor>> {
        let batch = self.mixed_batch(max)?;
        let grads = self.syn_grads(&batch, false)?;
        Ok(self.receive(batch, grads)?.remove(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::passes::PassSizes;
    use candle_core::{DType, Device};
    use gradmatch_data::{Dataset, DatasetName};
    use gradmatch_models::ModelSpec;
    use gradmatch_plugins::{Params, Plugins};
    use rand::SeedableRng;
    use std::path::Path;

    /// The context as it was before the two passes: the level gets the synthetic gradients with
    /// their graph, and one backward of its loss reaches the images.
    struct OneGraph<'s, 'a>(Matcher<'s, 'a>);

    impl MatchContext for OneGraph<'_, '_> {
        fn num_classes(&self) -> usize {
            self.0.num_classes()
        }
        fn iteration(&self) -> usize {
            self.0.iteration()
        }
        fn real_class_grads(&mut self) -> Result<Vec<Vec<Tensor>>> {
            self.0.real_class_grads()
        }
        fn syn_class_grads(&mut self) -> Result<Vec<Vec<Tensor>>> {
            let classes = self.num_classes();
            split_groups(self.0.syn_grads(&SynBatch::Classes { first: 0, count: classes }, true)?, classes)
        }
        fn real_mixed_grads(&mut self, n: usize) -> Result<Vec<Tensor>> {
            self.0.real_mixed_grads(n)
        }
        fn syn_mixed_grads(&mut self, max: usize) -> Result<Vec<Tensor>> {
            let batch = self.0.mixed_batch(max)?;
            Ok(split_groups(self.0.syn_grads(&batch, true)?, 1)?.remove(0))
        }
    }

    fn one_graph(step: &MatchStep, rng: &mut ChaCha8Rng) -> Result<Matched> {
        let mut ctx = OneGraph(Matcher { step, mode: Mode::Train, rng, received: Vec::new() });
        let loss = step.method.level.matching_loss(&mut ctx, step.method.distance)?;
        let grads = loss.backward()?;
        Ok(Matched { loss: loss.detach(), image_grads: step.syn.iter().map(|v| grads.get(v.as_tensor()).cloned()).collect() })
    }

    fn mnist() -> Dataset {
        gradmatch_data::load(DatasetName::Mnist, &Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data")).unwrap()
    }

    fn flat(m: &Matched) -> Vec<f64> {
        m.image_grads.iter().flat_map(|g| g.as_ref().unwrap().flatten_all().unwrap().to_vec1::<f64>().unwrap()).collect()
    }

    /// Every level, with and without DSA, on real MNIST and a small ConvNet in f64: the two-pass
    /// image gradient, one class per pass or several, equals one backward through the whole graph.
    #[test]
    fn two_passes_equal_one_graph() {
        let ds = mnist();
        let (classes, ipc) = (10, 2);
        let model = ModelSpec { width: 8, ..ModelSpec::CONVNET };
        let real = DeviceData::new(&ds.train, ds.shape(), DType::F64, &Device::Cpu).unwrap();
        let net = Network::new(&model, ds.shape(), classes, 3, DType::F64, &Device::Cpu).unwrap();
        let (c, h, w) = ds.shape();
        let syn: Vec<Var> = (0..classes).map(|_| Var::randn(0f64, 1.0, (ipc, c, h, w), &Device::Cpu).unwrap()).collect();
        let cfg = CondenseConfig { ipc, batch_real: 8, ..Default::default() };
        let (plugins, none) = (Plugins::builtin(), Params::new());
        let (distance, steps) = (plugins.distances.build("combined", &none).unwrap(), plugins.steps.build("fixed", &none).unwrap());
        for augment in ["none", "dsa"] {
            let augment = plugins.augmentations.build(augment, &none).unwrap();
            for name in plugins.levels.names() {
                let level = plugins.levels.build(name, &none).unwrap();
                let method =
                    Method { level: level.as_ref(), distance: distance.as_ref(), steps: steps.as_ref(), augment: augment.as_ref() };
                let seeds = AugmentSeeds { run_seed: 1, iteration: 1, step: 2, steps: 5, classes };
                let step = |syn_classes_per_pass| MatchStep {
                    net: &net,
                    real: &real,
                    syn: &syn,
                    cfg: &cfg,
                    method,
                    passes: PassSizes { max_images: 1 << 20, classes_per_pass: 10, syn_classes_per_pass },
                    seeds,
                };
                let rng = || ChaCha8Rng::seed_from_u64(7);
                let reference = one_graph(&step(10), &mut rng()).unwrap();
                let expected = flat(&reference);
                let scale = expected.iter().fold(0f64, |m, v| m.max(v.abs()));
                assert!(scale > 0.0, "{name}: a zero image gradient tests nothing");
                for per_pass in [1, 3, 10] {
                    let two = step(per_pass).run(&mut rng()).unwrap();
                    let loss = |m: &Matched| m.loss.to_scalar::<f64>().unwrap();
                    assert!((loss(&two) - loss(&reference)).abs() <= 1e-12 * loss(&reference).abs());
                    let gap = flat(&two).iter().zip(&expected).fold(0f64, |m, (a, b)| m.max((a - b).abs()));
                    assert!(gap <= 1e-10 * scale, "{name}, {per_pass} classes per pass: {gap} (scale {scale})");
                }
            }
        }
    }
}
