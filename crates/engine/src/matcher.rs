//! The engine's side of [`MatchContext`]: the real and synthetic gradients of one matching step, and
//! the step's gradient with respect to the synthetic images.
//!
//! The synthetic side is differentiated in two passes so that the second-order graph of only a few
//! classes exists at a time (candle keeps every intermediate of a graph, and its backward as much
//! again: over all 100 images of ipc 10 that was 2.5x PyTorch's memory). The level receives the
//! synthetic gradients g as constants (leaves); the backward of its loss L gives dL/dg; then each
//! pass of [`PassSizes::syn_classes_per_pass`] classes recomputes its gradients with their graph and
//! back-propagates `sum <dL/dg, g>` to its images, whose gradient is (dg/dx)ᵀ dL/dg: the one-graph
//! gradient up to float rounding (in f32 the leaves come from the fused kernels and the recompute
//! from candle's compositions, ~1e-5 apart). A mixed batch (one group) is recomputed in chunks of
//! as many images, each weighted by its share of the batch's mean loss.

use crate::config::{CondenseConfig, MethodRef};
use crate::device::DeviceData;
use crate::passes::PassSizes;
use crate::sampling::RealDraws;
use crate::seed::AugmentSeeds;
use candle_core::{Result, Tensor, Var};
use gradmatch_core::{ClassBatches, MatchContext};
use gradmatch_models::{one_hot, Mode, Network};
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

/// The parts of one matching step.
pub(crate) struct MatchStep<'a> {
    pub net: &'a Network,
    pub real: &'a DeviceData<'a>,
    /// One variable per class (its ipc stored images).
    pub syn: &'a [Var],
    pub cfg: &'a CondenseConfig,
    pub method: MethodRef<'a>,
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
}

/// What the level received for one synthetic batch: per parameter, a `(groups, *shape)` leaf.
struct Received {
    batch: SynBatch,
    leaves: Vec<Var>,
}

/// A received batch and its loss's gradient with respect to each received gradient (`None` where
/// the loss does not depend on it: a distance may skip biases).
struct Upstream {
    batch: SynBatch,
    dl_dg: Vec<Option<Tensor>>,
}

/// The step's [`MatchContext`].
struct Matcher<'s, 'a> {
    step: &'s MatchStep<'a>,
    mode: Mode,
    rng: &'s mut ChaCha8Rng,
    /// The sampler's batches for this step's network.
    batches: &'s mut dyn ClassBatches,
    received: Vec<Received>,
}

impl<'a> MatchStep<'a> {
    /// The decoded synthetic images of a class.
    fn per_class(&self) -> usize {
        self.method.images_per_class(self.cfg.ipc)
    }

    /// The matching loss and its gradient with respect to the synthetic images. Batch-norm networks
    /// first take their statistics from real images (train mode), then match with them frozen.
    pub fn run(&self, rng: &mut ChaCha8Rng, batches: &mut dyn ClassBatches) -> Result<Matched> {
        let mut mode = Mode::Train;
        if self.net.has_batch_norm() {
            set_batch_norm_statistics(self, rng)?;
            mode = Mode::Eval;
        }
        let mut matcher = Matcher { step: self, mode, rng, batches, received: Vec::new() };
        let (loss, upstream) = self.level_loss(&mut matcher)?;
        let mut image_grads: Vec<Option<Tensor>> = vec![None; self.syn.len()];
        for up in upstream.iter().filter(|up| up.dl_dg.iter().any(Option::is_some)) {
            match &up.batch {
                SynBatch::Classes { first, count } => {
                    let per_pass = self.passes.syn_classes_per_pass.max(1);
                    for offset in (0..*count).step_by(per_pass) {
                        let groups = per_pass.min(count - offset);
                        let grads = matcher.class_grads(first + offset, groups, true)?;
                        self.back_propagate(&pairing(&up.dl_dg, offset, groups, &grads, 1.0)?, &mut image_grads)?;
                    }
                }
                SynBatch::Mixed { order } => {
                    let (x, labels) = matcher.mixed_images(order, true)?;
                    for (start, len) in chunks(labels.len(), self.passes.syn_classes_per_pass * self.per_class()) {
                        let grads = matcher.grads(&x.narrow(0, start, len)?, &labels[start..start + len], 1)?;
                        let share = len as f64 / labels.len() as f64;
                        self.back_propagate(&pairing(&up.dl_dg, 0, 1, &grads, share)?, &mut image_grads)?;
                    }
                }
            }
        }
        Ok(Matched { loss, image_grads })
    }

    /// The level's loss (detached) and its gradient with respect to what the level received. The
    /// level's graph, with the real gradients in it, is freed on return, before the image step.
    fn level_loss(&self, matcher: &mut Matcher) -> Result<(Tensor, Vec<Upstream>)> {
        let loss = self.method.level.matching_loss(matcher, self.method.distance)?;
        let grads = loss.backward()?;
        let upstream = matcher
            .received
            .drain(..)
            .map(|r| Upstream { dl_dg: r.leaves.iter().map(|v| grads.get(v.as_tensor()).cloned()).collect(), batch: r.batch })
            .collect();
        Ok((loss.detach(), upstream))
    }

    /// Adds `product`'s gradient with respect to each class's images to `image_grads`.
    fn back_propagate(&self, product: &Tensor, image_grads: &mut [Option<Tensor>]) -> Result<()> {
        let back = product.backward()?;
        for (sum, var) in image_grads.iter_mut().zip(self.syn) {
            if let Some(g) = back.get(var.as_tensor()) {
                *sum = Some(match sum.take() {
                    Some(s) => (s + g)?,
                    None => g.clone(),
                });
            }
        }
        Ok(())
    }
}

/// `weight * sum <dL/dg, g>` over the parameters, for `grads` of the received groups
/// `offset..offset + groups`.
fn pairing(dl_dg: &[Option<Tensor>], offset: usize, groups: usize, grads: &[Tensor], weight: f64) -> Result<Tensor> {
    let mut product: Option<Tensor> = None;
    for (d, g) in dl_dg.iter().zip(grads) {
        if let Some(d) = d {
            let term = (d.narrow(0, offset, groups)? * g)?.sum_all()?;
            product = Some(match product {
                Some(p) => (p + term)?,
                None => term,
            });
        }
    }
    let product = product.expect("the caller skips batches the loss does not depend on");
    if weight == 1.0 {
        Ok(product)
    } else {
        product.affine(weight, 0.0)
    }
}

/// `(start, len)` of consecutive chunks of at most `chunk` of `n` items.
fn chunks(n: usize, chunk: usize) -> impl Iterator<Item = (usize, usize)> {
    let chunk = chunk.max(1);
    (0..n).step_by(chunk).map(move |start| (start, chunk.min(n - start)))
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

    /// The sampler's real batch of class `class` for this step, checked to be of the class.
    fn draw(&mut self, class: usize) -> Result<Vec<usize>> {
        let step = self.step;
        let mut ctx = RealDraws {
            real: step.real,
            net: step.net,
            mode: self.mode,
            rng: &mut *self.rng,
            batch_size: step.cfg.batch_real,
            iteration: step.seeds.iteration,
            step: step.seeds.step,
            pass: step.passes.classes_per_pass * step.cfg.batch_real,
        };
        let batch = self.batches.batch(&mut ctx, class)?;
        let labels = &step.real.split.labels;
        if let Some(&wrong) = batch.iter().find(|&&i| labels.get(i).is_none_or(|&label| label as usize != class)) {
            candle_core::bail!("the sampler gave image {wrong} for class {class}'s batch, which is not an image of that class")
        }
        if batch.is_empty() {
            candle_core::bail!("the sampler gave an empty batch for class {class}")
        }
        Ok(batch)
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

    /// Class `c`'s decoded synthetic images, tracked (differentiable with respect to its stored
    /// images) or as constants.
    fn class_images(&self, c: usize, tracked: bool) -> Result<Tensor> {
        let t = self.step.syn[c].as_tensor();
        self.step.method.parameterisation.decode(&if tracked { t.clone() } else { t.detach() })
    }

    /// The gradients of classes `first..first + count`'s synthetic images in one pass, one group per
    /// class, with their graph when `tracked`.
    fn class_grads(&self, first: usize, count: usize, tracked: bool) -> Result<Vec<Tensor>> {
        let step = self.step;
        let classes = first..first + count;
        let x = classes
            .clone()
            .map(|c| step.method.augment.augment(&self.class_images(c, tracked)?, step.seeds.class(c)))
            .collect::<Result<Vec<_>>>()?;
        let labels: Vec<u32> = classes.flat_map(|c| std::iter::repeat_n(c as u32, step.per_class())).collect();
        self.grads(&Tensor::cat(&x, 0)?, &labels, count)
    }

    /// Images `order` of the class-major synthetic set, augmented as one batch with the mixed seed,
    /// and their labels.
    fn mixed_images(&self, order: &[u32], tracked: bool) -> Result<(Tensor, Vec<u32>)> {
        let step = self.step;
        let all = Tensor::cat(&(0..step.syn.len()).map(|c| self.class_images(c, tracked)).collect::<Result<Vec<_>>>()?, 0)?;
        let x = all.index_select(&Tensor::from_slice(order, order.len(), all.device())?, 0)?;
        let labels = order.iter().map(|&i| i / step.per_class() as u32).collect();
        Ok((step.method.augment.augment(&x, step.seeds.mixed())?, labels))
    }

    /// `(1, *shape)` gradients of the mean loss over the images `x` (one group), graph-free, in
    /// chunks of at most `chunk` images so that no pass outgrows what was planned.
    fn chunked_grads(&self, x: &Tensor, labels: &[u32], chunk: usize) -> Result<Vec<Tensor>> {
        let n = labels.len();
        let mut sum: Option<Vec<Tensor>> = None;
        for (start, len) in chunks(n, chunk) {
            let mut grads = self.grads(&x.narrow(0, start, len)?, &labels[start..start + len], 1)?;
            if len < n {
                grads = grads.iter().map(|g| g.affine(len as f64 / n as f64, 0.0)).collect::<Result<_>>()?;
            }
            sum = Some(match sum {
                Some(s) => s.iter().zip(&grads).map(|(a, b)| a + b).collect::<Result<_>>()?,
                None => grads,
            });
        }
        Ok(sum.expect("a mixed batch has at least one image"))
    }

    /// Hands the level the gradients of `batch` as constants, remembering them for the image step.
    fn receive(&mut self, batch: SynBatch, grads: Vec<Tensor>) -> Result<Vec<Vec<Tensor>>> {
        let leaves = grads.iter().map(Var::from_tensor).collect::<Result<Vec<_>>>()?;
        let groups = batch.groups();
        let given = split_groups(leaves.iter().map(|v| v.as_tensor().clone()).collect(), groups);
        self.received.push(Received { batch, leaves });
        given
    }

    /// At most `max` indices of the class-major synthetic set, shuffled.
    fn mixed_order(&mut self, max: usize) -> Result<Vec<u32>> {
        let mut order: Vec<u32> = (0..(self.step.seeds.classes * self.step.per_class()) as u32).collect();
        order.shuffle(self.rng);
        order.truncate(max);
        self.check_mixed(order.len(), "synthetic")?;
        Ok(order)
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
        let batches: Vec<Vec<usize>> = (0..classes).map(|c| self.draw(c)).collect::<Result<_>>()?;
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
        let classes = self.step.seeds.classes;
        let mut passes = Vec::new();
        for (first, count) in chunks(classes, self.step.passes.syn_classes_per_graph_free_pass) {
            passes.push(self.class_grads(first, count, false)?);
        }
        let grads = (0..passes[0].len())
            .map(|p| Tensor::cat(&passes.iter().map(|pass| &pass[p]).collect::<Vec<_>>(), 0))
            .collect::<Result<Vec<_>>>()?;
        self.receive(SynBatch::Classes { first: 0, count: classes }, grads)
    }

    fn real_mixed_grads(&mut self, n: usize) -> Result<Vec<Tensor>> {
        self.check_mixed(n, "real")?;
        let step = self.step;
        let idx = step.real.split.sample_any(n, self.rng);
        let x = step.method.augment.augment(&step.real.select(&idx)?, step.seeds.mixed())?;
        let real_pass = step.passes.classes_per_pass * step.cfg.batch_real;
        Ok(split_groups(self.chunked_grads(&x, &step.real.split.gather_labels(&idx), real_pass)?, 1)?.remove(0))
    }

    fn syn_mixed_grads(&mut self, max: usize) -> Result<Vec<Tensor>> {
        let order = self.mixed_order(max)?;
        let (x, labels) = self.mixed_images(&order, false)?;
        let grads = self.chunked_grads(&x, &labels, self.step.passes.syn_classes_per_graph_free_pass * self.step.per_class())?;
        Ok(self.receive(SynBatch::Mixed { order }, grads)?.remove(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::passes::PassSizes;
    use candle_core::{DType, Device};
    use gradmatch_data::{Dataset, DatasetName};
    use gradmatch_models::ModelSpec;
    use gradmatch_plugins::{OptionTable, Plugins};
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
            split_groups(self.0.class_grads(0, classes, true)?, classes)
        }
        fn real_mixed_grads(&mut self, n: usize) -> Result<Vec<Tensor>> {
            self.0.real_mixed_grads(n)
        }
        fn syn_mixed_grads(&mut self, max: usize) -> Result<Vec<Tensor>> {
            let order = self.0.mixed_order(max)?;
            let (x, labels) = self.0.mixed_images(&order, true)?;
            Ok(split_groups(self.0.grads(&x, &labels, 1)?, 1)?.remove(0))
        }
    }

    fn one_graph(step: &MatchStep, rng: &mut ChaCha8Rng, batches: &mut dyn ClassBatches) -> Result<Matched> {
        let mut ctx = OneGraph(Matcher { step, mode: Mode::Train, rng, batches, received: Vec::new() });
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
    /// image gradient, one class per pass or several (the mixed batches chunked alike), equals one
    /// backward through the whole graph.
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
        let (plugins, none) = (Plugins::builtin(), OptionTable::new());
        let (distance, steps) =
            (plugins.method.distance.build("combined", &none).unwrap(), plugins.method.steps.build("fixed", &none).unwrap());
        let pixels = plugins.method.parameterisation.build("pixels", &none).unwrap();
        let random = plugins.method.sampler.build("random", &none).unwrap();
        for augment in ["none", "dsa"] {
            let augment = plugins.method.augment.build(augment, &none).unwrap();
            for name in plugins.method.level.names() {
                let level = plugins.method.level.build(name, &none).unwrap();
                let method = MethodRef {
                    level: level.as_ref(),
                    distance: distance.as_ref(),
                    steps: steps.as_ref(),
                    augment: augment.as_ref(),
                    parameterisation: pixels.as_ref(),
                    sampler: random.as_ref(),
                };
                let seeds = AugmentSeeds { run_seed: 1, iteration: 1, step: 2, steps: 5, classes };
                let step = |per_pass| MatchStep {
                    net: &net,
                    real: &real,
                    syn: &syn,
                    cfg: &cfg,
                    method,
                    passes: PassSizes {
                        max_images: 1 << 20,
                        classes_per_pass: per_pass,
                        syn_classes_per_pass: per_pass,
                        syn_classes_per_graph_free_pass: per_pass,
                    },
                    seeds,
                };
                let rng = || ChaCha8Rng::seed_from_u64(7);
                let reference = one_graph(&step(10), &mut rng(), random.for_network().as_mut()).unwrap();
                let expected = flat(&reference);
                let scale = expected.iter().fold(0f64, |m, v| m.max(v.abs()));
                assert!(scale > 0.0, "{name}: a zero image gradient tests nothing");
                for per_pass in [1, 3, 10] {
                    let two = step(per_pass).run(&mut rng(), random.for_network().as_mut()).unwrap();
                    let loss = |m: &Matched| m.loss.to_scalar::<f64>().unwrap();
                    assert!((loss(&two) - loss(&reference)).abs() <= 1e-12 * loss(&reference).abs());
                    let gap = flat(&two).iter().zip(&expected).fold(0f64, |m, (a, b)| m.max((a - b).abs()));
                    assert!(gap <= 1e-10 * scale, "{name}, {per_pass} classes per pass: {gap} (scale {scale})");
                }
            }
        }
    }
}
