use crate::device::DeviceData;
use crate::optim::Sgd;
use crate::seed::{derive_seed, stream};
use crate::synset::SyntheticSet;
use candle_core::{DType, Device, Result, Tensor, Var};
use gradmatch_core::{Distance, GradientLevel, InnerTrainer, Loops, MatchContext, StepContext, StepStrategy};
use gradmatch_data::Dataset;
use gradmatch_models::{cross_entropy, one_hot, Mode, ModelSpec, Network};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

/// How the synthetic set starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Init {
    /// N(0, 1) in normalised space (the reference's default).
    Noise,
    /// Random real images of each class.
    Real,
}

/// The hyper-parameters of one condensation run. `Default` holds the paper's values: the one place
/// they are written down; TOML experiment files override them field by field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CondenseConfig {
    pub ipc: usize,
    /// Outer iterations, each with a fresh random network.
    pub iterations: usize,
    pub init: Init,
    /// Image optimiser (SGD); the reference uses 0.01 for MLP.
    pub lr_img: f64,
    pub momentum_img: f64,
    /// Network optimiser between matching steps (SGD).
    pub lr_net: f64,
    pub momentum_net: f64,
    /// Real images per class per match.
    pub batch_real: usize,
    /// Batch size when training the network on the synthetic set.
    pub batch_train: usize,
    /// Real images per class that set batch-norm statistics before matching.
    pub bn_images_per_class: usize,
    /// Classes whose real batches go through the network in one pass (per-class gradients come out
    /// of the same pass): more is faster on a GPU and needs proportionally more memory. `None`: the
    /// device's default (1 on the CPU, every class on a GPU). Results do not depend on it beyond float rounding.
    pub classes_per_pass: Option<usize>,
    /// Matching steps per outer iteration / epochs between them; `None` = the loops table.
    pub outer_loop: Option<usize>,
    pub inner_epochs: Option<usize>,
    /// Write a checkpoint every this many iterations (and at the end).
    pub checkpoint_every: usize,
    pub seed: u64,
}

impl Default for CondenseConfig {
    fn default() -> Self {
        CondenseConfig {
            ipc: 1,
            iterations: 1000,
            init: Init::Noise,
            lr_img: 0.1,
            momentum_img: 0.5,
            lr_net: 0.01,
            momentum_net: 0.5,
            batch_real: 256,
            batch_train: 256,
            bn_images_per_class: 16,
            classes_per_pass: None,
            outer_loop: None,
            inner_epochs: None,
            checkpoint_every: 10,
            seed: 0,
        }
    }
}

impl CondenseConfig {
    pub fn loops(&self) -> Loops {
        let table = Loops::for_ipc(self.ipc);
        Loops { outer: self.outer_loop.unwrap_or(table.outer), inner: self.inner_epochs.unwrap_or(table.inner) }
    }
}

/// The three plug-ins of a method.
#[derive(Clone, Copy)]
pub struct Method<'a> {
    pub level: &'a dyn GradientLevel,
    pub distance: &'a dyn Distance,
    pub steps: &'a dyn StepStrategy,
}

/// One line of the per-iteration log.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IterationLog {
    pub iteration: usize,
    /// Matching loss per class per matching step (the reference's `loss_avg`).
    pub loss: f64,
    /// Epochs the step strategy ran after each matching step but the last.
    pub inner_epochs: Vec<usize>,
    pub seconds: f64,
}

pub struct CondenseOutcome {
    pub set: SyntheticSet,
    pub log: Vec<IterationLog>,
    /// Iterations already done in the checkpoint this run resumed from (0 for a fresh run).
    pub resumed_from: usize,
    /// Mean wall time of the iterations run in this process.
    pub seconds_per_iteration: f64,
}

/// What a condensation run needs besides its config.
pub struct RunContext<'a> {
    pub dataset: &'a Dataset,
    pub model: &'a ModelSpec,
    pub device: &'a Device,
    pub dtype: DType,
    /// Where to checkpoint (and resume from, when the file exists and belongs to the same run).
    pub checkpoint: Option<&'a Path>,
    /// Provenance written into every checkpoint (the full method config, ...).
    pub metadata: HashMap<String, String>,
}

/// Learns a synthetic set by gradient matching, as REFERENCE.md describes.
pub fn condense(
    run: &RunContext,
    method: Method,
    cfg: &CondenseConfig,
    on_iteration: &mut dyn FnMut(&IterationLog),
) -> Result<CondenseOutcome> {
    let ds = run.dataset;
    let (classes, shape) = (ds.num_classes(), ds.shape());
    let real = DeviceData::new(&ds.train, shape, run.dtype, run.device)?;
    let loops = cfg.loops();
    let fingerprint = serde_json::to_string(&(cfg, run.model.to_string(), &run.metadata)).expect("config serialises");

    let (syn, mut img_opt, start) = match run.checkpoint.filter(|p| p.exists()) {
        Some(path) => resume(path, &fingerprint, cfg, classes, run)?,
        None => {
            let syn = initial_images(&real, cfg, classes, run.dtype, run.device)?;
            let opt = Sgd::new(syn.clone(), cfg.lr_img, cfg.momentum_img, 0.0);
            (syn, opt, 0)
        }
    };
    let labels: Vec<u32> = (0..classes as u32).flat_map(|c| std::iter::repeat_n(c, cfg.ipc)).collect();
    let mut metadata = run.metadata.clone();
    metadata.insert("dataset".into(), ds.name.to_string());
    metadata.insert("mean".into(), serde_json::to_string(ds.mean()).expect("floats"));
    metadata.insert("std".into(), serde_json::to_string(ds.std()).expect("floats"));
    metadata.insert("ipc".into(), cfg.ipc.to_string());
    metadata.insert("seed".into(), cfg.seed.to_string());
    metadata.insert("model".into(), run.model.to_string());
    metadata.insert("condense_config".into(), serde_json::to_string(cfg).expect("config serialises"));
    metadata.insert("fingerprint".into(), fingerprint);

    let snapshot = |syn: &[Var], done: usize, momentum: Option<Vec<Tensor>>| -> Result<SyntheticSet> {
        let images = Tensor::cat(&syn.iter().map(|v| v.as_tensor().detach()).collect::<Vec<_>>(), 0)?;
        let mut metadata = metadata.clone();
        metadata.insert("iterations".into(), done.to_string());
        let mut set = SyntheticSet { images, labels: labels.clone(), metadata, momentum: None };
        if let Some(m) = momentum {
            set.metadata.insert("checkpoint".into(), "1".into());
            set.momentum = Some(Tensor::cat(&m, 0)?);
        }
        Ok(set)
    };

    let mut log = Vec::new();
    let mut seconds = 0.0;
    for it in start..cfg.iterations {
        let started = Instant::now();
        let mut rng = ChaCha8Rng::seed_from_u64(derive_seed(cfg.seed, stream::ITERATION, it as u64));
        let net = Network::new(run.model, shape, classes, derive_seed(cfg.seed, stream::NETWORK, it as u64), run.dtype, run.device)?;
        let mut net_opt = Sgd::new(net.vars(), cfg.lr_net, cfg.momentum_net, 0.0);
        let mut loss_sum = 0.0;
        let mut inner = Vec::new();
        for ol in 0..loops.outer {
            let matcher = Matcher::new(&net, &real, &syn, cfg, classes, it, &mut rng);
            let loss = matcher.loss(&method)?;
            let value = loss.to_dtype(DType::F64)?.to_scalar::<f64>()?;
            if !value.is_finite() {
                candle_core::bail!("matching loss is {value} at iteration {it}, matching step {ol}: lower lr_img or check the distance")
            }
            loss_sum += value;
            let grads = loss.backward()?;
            img_opt.step(&syn.iter().map(|v| grads.get(v.as_tensor()).cloned()).collect::<Vec<_>>())?;
            if ol + 1 == loops.outer {
                break;
            }
            let step_ctx = StepContext { outer_step: ol, outer_loop: loops.outer, inner_epochs: loops.inner };
            let images = Tensor::cat(&syn.iter().map(|v| v.as_tensor().detach()).collect::<Vec<_>>(), 0)?;
            let mut trainer = NetTrainer {
                net: &net,
                opt: &mut net_opt,
                images,
                labels: &labels,
                targets: one_hot(&labels, classes, run.dtype, run.device)?,
                batch: cfg.batch_train,
                real: &real,
                validation: None,
                classes,
                rng: &mut rng,
            };
            inner.push(method.steps.train(&step_ctx, &mut trainer)?);
        }
        let entry = IterationLog {
            iteration: it,
            loss: loss_sum / (classes * loops.outer) as f64,
            inner_epochs: inner,
            seconds: started.elapsed().as_secs_f64(),
        };
        seconds += entry.seconds;
        on_iteration(&entry);
        log.push(entry);
        let done = it + 1;
        if let Some(path) = run.checkpoint {
            if done % cfg.checkpoint_every.max(1) == 0 || done == cfg.iterations {
                snapshot(&syn, done, Some(img_opt.buffers()?))?.save(path)?;
            }
        }
    }
    let ran = cfg.iterations.saturating_sub(start);
    Ok(CondenseOutcome {
        set: snapshot(&syn, cfg.iterations, None)?,
        log,
        resumed_from: start,
        seconds_per_iteration: if ran > 0 { seconds / ran as f64 } else { 0.0 },
    })
}

/// The first matching step of outer iteration `iteration` of [`condense`] (its network, its real
/// batches) at the synthetic `images` given (classes x ipc images, class-major): the matching loss and
/// its gradient with respect to the images. Made for comparing devices and for profiling a step.
pub fn matching_gradient(
    run: &RunContext,
    method: Method,
    cfg: &CondenseConfig,
    images: &Tensor,
    iteration: usize,
) -> Result<(f64, Tensor)> {
    let ds = run.dataset;
    let (classes, shape) = (ds.num_classes(), ds.shape());
    let real = DeviceData::new(&ds.train, shape, run.dtype, run.device)?;
    let images = images.to_device(run.device)?.to_dtype(run.dtype)?;
    let syn = (0..classes).map(|c| Var::from_tensor(&images.narrow(0, c * cfg.ipc, cfg.ipc)?.contiguous()?)).collect::<Result<Vec<_>>>()?;
    let mut rng = ChaCha8Rng::seed_from_u64(derive_seed(cfg.seed, stream::ITERATION, iteration as u64));
    let net = Network::new(run.model, shape, classes, derive_seed(cfg.seed, stream::NETWORK, iteration as u64), run.dtype, run.device)?;
    let loss = Matcher::new(&net, &real, &syn, cfg, classes, iteration, &mut rng).loss(&method)?;
    let grads = loss.backward()?;
    let per_class = syn.iter().map(|v| grads.get(v.as_tensor()).cloned().map_or_else(|| v.zeros_like(), Ok)).collect::<Result<Vec<_>>>()?;
    Ok((loss.to_dtype(DType::F64)?.to_scalar::<f64>()?, Tensor::cat(&per_class, 0)?))
}

/// The initial synthetic images of `cfg` (noise or real), classes x ipc, class-major.
pub fn initial_set(run: &RunContext, cfg: &CondenseConfig) -> Result<Tensor> {
    let ds = run.dataset;
    let real = DeviceData::new(&ds.train, ds.shape(), run.dtype, run.device)?;
    let syn = initial_images(&real, cfg, ds.num_classes(), run.dtype, run.device)?;
    Tensor::cat(&syn.iter().map(|v| v.as_tensor().clone()).collect::<Vec<_>>(), 0)
}

fn initial_images(real: &DeviceData, cfg: &CondenseConfig, classes: usize, dtype: DType, device: &Device) -> Result<Vec<Var>> {
    let mut rng = ChaCha8Rng::seed_from_u64(derive_seed(cfg.seed, stream::INIT, 0));
    let (c, h, w) = real.shape;
    (0..classes)
        .map(|class| {
            let t = match cfg.init {
                Init::Real => real.select(&real.split.sample_class(class, cfg.ipc, &mut rng))?,
                Init::Noise => {
                    let v: Vec<f32> = (0..cfg.ipc * c * h * w).map(|_| StandardNormal.sample(&mut rng)).collect();
                    Tensor::from_vec(v, (cfg.ipc, c, h, w), device)?.to_dtype(dtype)?
                }
            };
            Var::from_tensor(&t)
        })
        .collect()
}

fn resume(path: &Path, fingerprint: &str, cfg: &CondenseConfig, classes: usize, run: &RunContext) -> Result<(Vec<Var>, Sgd, usize)> {
    let set = SyntheticSet::load(path, run.device)?;
    if set.metadata.get("fingerprint").map(String::as_str) != Some(fingerprint) {
        candle_core::bail!(
            "{}: this checkpoint belongs to a different configuration; delete it or choose another output folder",
            path.display()
        )
    }
    let done: usize = set.metadata.get("iterations").and_then(|v| v.parse().ok()).unwrap_or(0);
    let momentum =
        set.momentum.clone().ok_or_else(|| candle_core::Error::Msg(format!("{}: not a checkpoint (no momentum)", path.display())))?;
    let images = set.images.to_dtype(run.dtype)?;
    let syn = (0..classes).map(|c| Var::from_tensor(&images.narrow(0, c * cfg.ipc, cfg.ipc)?.contiguous()?)).collect::<Result<Vec<_>>>()?;
    let mut opt = Sgd::new(syn.clone(), cfg.lr_img, cfg.momentum_img, 0.0);
    let momentum = momentum.to_dtype(run.dtype)?;
    opt.set_buffers((0..classes).map(|c| momentum.narrow(0, c * cfg.ipc, cfg.ipc)?.contiguous()).collect::<Result<Vec<_>>>()?);
    Ok((syn, opt, done))
}

/// Batch-norm networks: statistics from `per_class` real images of each class (train mode), then
/// frozen for the matching step.
fn set_batch_norm_statistics(net: &Network, real: &DeviceData, per_class: usize, classes: usize, rng: &mut ChaCha8Rng) -> Result<()> {
    let idx: Vec<usize> = (0..classes).flat_map(|c| real.split.sample_class(c, per_class, rng)).collect();
    net.forward(&real.select(&idx)?, Mode::Train)?;
    Ok(())
}

/// The engine's side of [`MatchContext`].
struct Matcher<'a> {
    net: &'a Network,
    mode: Mode,
    real: &'a DeviceData<'a>,
    syn: &'a [Var],
    cfg: &'a CondenseConfig,
    classes: usize,
    iteration: usize,
    rng: &'a mut ChaCha8Rng,
}

impl<'a> Matcher<'a> {
    fn new(
        net: &'a Network,
        real: &'a DeviceData<'a>,
        syn: &'a [Var],
        cfg: &'a CondenseConfig,
        classes: usize,
        iteration: usize,
        rng: &'a mut ChaCha8Rng,
    ) -> Self {
        Matcher { net, mode: Mode::Train, real, syn, cfg, classes, iteration, rng }
    }

    /// The matching loss of one step. Batch-norm networks first take their statistics from real
    /// images (train mode), then match with them frozen.
    fn loss(mut self, method: &Method) -> Result<Tensor> {
        if self.net.has_batch_norm() {
            set_batch_norm_statistics(self.net, self.real, self.cfg.bn_images_per_class, self.classes, self.rng)?;
            self.mode = Mode::Eval;
        }
        method.level.matching_loss(&mut self, method.distance)
    }

    /// Per-group gradients of the real images `idx` (`groups` equal, contiguous groups), no graph.
    fn real_grads(&self, idx: &[usize], groups: usize) -> Result<Vec<Vec<Tensor>>> {
        self.grads(&self.real.select(idx)?, &self.real.split.gather_labels(idx), groups)
    }

    /// Per-group gradients of images `x` (`groups` equal, contiguous groups): differentiable when `x`
    /// is tracked (the synthetic images), graph-free otherwise.
    fn grads(&self, x: &Tensor, labels: &[u32], groups: usize) -> Result<Vec<Vec<Tensor>>> {
        let t = one_hot(labels, self.classes, x.dtype(), x.device())?;
        split_groups(self.net.loss_and_grads(x, &t, self.mode, groups)?.1, groups)
    }

    /// Every synthetic image, class-major.
    fn syn_images(&self) -> Result<Tensor> {
        Tensor::cat(&self.syn.iter().map(|v| v.as_tensor()).collect::<Vec<_>>(), 0)
    }

    fn classes_per_pass(&self) -> usize {
        let default = if self.real.images.device().is_cpu() { 1 } else { self.classes };
        self.cfg.classes_per_pass.unwrap_or(default).clamp(1, self.classes)
    }
}

/// `(groups, *shape)` gradients -> one list of `shape` gradients per group.
fn split_groups(grads: Vec<Tensor>, groups: usize) -> Result<Vec<Vec<Tensor>>> {
    (0..groups).map(|g| grads.iter().map(|t| t.get(g)).collect()).collect()
}

impl MatchContext for Matcher<'_> {
    fn num_classes(&self) -> usize {
        self.classes
    }

    fn iteration(&self) -> usize {
        self.iteration
    }

    fn real_class_grads(&mut self) -> Result<Vec<Vec<Tensor>>> {
        // Drawn in class order whatever the chunking: the same seed gives the same batches.
        let batches: Vec<Vec<usize>> = (0..self.classes).map(|c| self.real.split.sample_class(c, self.cfg.batch_real, self.rng)).collect();
        let mut grads = Vec::with_capacity(self.classes);
        for chunk in batches.chunks(self.classes_per_pass()) {
            grads.extend(self.real_grads(&chunk.concat(), chunk.len())?);
        }
        Ok(grads)
    }

    fn syn_class_grads(&mut self) -> Result<Vec<Vec<Tensor>>> {
        let labels: Vec<u32> = (0..self.classes as u32).flat_map(|c| std::iter::repeat_n(c, self.cfg.ipc)).collect();
        self.grads(&self.syn_images()?, &labels, self.classes)
    }

    fn real_mixed_grads(&mut self, n: usize) -> Result<Vec<Tensor>> {
        let idx = self.real.split.sample_any(n, self.rng);
        Ok(self.real_grads(&idx, 1)?.remove(0))
    }

    fn syn_mixed_grads(&mut self, max: usize) -> Result<Vec<Tensor>> {
        let all = self.syn_images()?;
        let mut order: Vec<u32> = (0..all.dim(0)? as u32).collect();
        order.shuffle(self.rng);
        order.truncate(max);
        let labels: Vec<u32> = order.iter().map(|&i| i / self.cfg.ipc as u32).collect();
        let x = all.index_select(&Tensor::from_slice(&order, order.len(), all.device())?, 0)?;
        Ok(self.grads(&x, &labels, 1)?.remove(0))
    }
}

/// The engine's side of [`InnerTrainer`]: SGD on the (detached) synthetic set.
struct NetTrainer<'a> {
    net: &'a Network,
    opt: &'a mut Sgd,
    images: Tensor,
    labels: &'a [u32],
    targets: Tensor,
    batch: usize,
    real: &'a DeviceData<'a>,
    validation: Option<(Tensor, Tensor)>,
    classes: usize,
    rng: &'a mut ChaCha8Rng,
}

impl InnerTrainer for NetTrainer<'_> {
    fn train_epoch(&mut self) -> Result<()> {
        let mut order: Vec<u32> = (0..self.labels.len() as u32).collect();
        order.shuffle(self.rng);
        for chunk in order.chunks(self.batch) {
            let idx = Tensor::from_slice(chunk, chunk.len(), self.images.device())?;
            let x = self.images.index_select(&idx, 0)?;
            let (_, grads) = self.net.loss_and_grads(&x, &self.targets.index_select(&idx, 0)?, Mode::Train, 1)?;
            self.opt.step_all(&grads)?;
        }
        Ok(())
    }

    fn validation_loss(&mut self) -> Result<f64> {
        if self.validation.is_none() {
            let idx = self.real.split.sample_any(256, self.rng);
            let x = self.real.select(&idx)?;
            let t = one_hot(&self.real.split.gather_labels(&idx), self.classes, x.dtype(), x.device())?;
            self.validation = Some((x, t));
        }
        let (x, t) = self.validation.as_ref().expect("set above");
        cross_entropy(&self.net.forward(x, Mode::Eval)?, t)?.to_dtype(DType::F64)?.to_scalar::<f64>()
    }
}
