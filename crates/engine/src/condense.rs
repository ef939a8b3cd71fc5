use crate::config::{CondenseConfig, CondenseOutcome, Init, IterationLog, MethodRef, RunContext, RunIdentity};
use crate::device::{set_tf32, DeviceData};
use crate::matcher::MatchStep;
use crate::optim::Sgd;
use crate::passes::PassSizes;
use crate::sampling::RealDraws;
use crate::seed::{derive_seed, stream, AugmentSeeds};
use crate::synset::SyntheticSet;
use candle_core::{DType, Result, Tensor, Var};
use gradmatch_core::host::{self, ReadMeter};
use gradmatch_core::{Augmentation, ClassBatches, InnerTrainer, Loops, StepContext};
use gradmatch_models::{cross_entropy, one_hot, Mode, Network};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

/// Learns a synthetic set by gradient matching, as REFERENCE.md describes.
pub fn condense(
    run: &RunContext,
    method: MethodRef,
    cfg: &CondenseConfig,
    on_iteration: &mut dyn FnMut(&IterationLog),
) -> Result<CondenseOutcome> {
    let mut state = Condensation::start_or_resume(run, method.reborrow(), cfg)?;
    let start = state.resumed_from;
    let mut log = Vec::new();
    let mut seconds = 0.0;
    for it in start..cfg.iterations {
        let entry = state.outer_iteration(it)?;
        seconds += entry.seconds;
        on_iteration(&entry);
        log.push(entry);
        // Before the checkpoint: a run resumed after it finds its prefixes saved.
        state.save_prefixes(it + 1)?;
        state.checkpoint_if_due(it + 1)?;
    }
    let ran = cfg.iterations.saturating_sub(start);
    Ok(CondenseOutcome {
        set: state.snapshot(cfg.iterations, None)?,
        log,
        resumed_from: start,
        seconds_per_iteration: if ran > 0 { seconds / ran as f64 } else { 0.0 },
    })
}

/// A condensation under way: what stays fixed during the run, and the synthetic images with their
/// optimiser.
struct Condensation<'a> {
    run: &'a RunContext<'a>,
    method: MethodRef<'a>,
    cfg: &'a CondenseConfig,
    real: DeviceData<'a>,
    classes: usize,
    passes: PassSizes,
    loops: Loops,
    /// Labels of the decoded synthetic images, class-major.
    labels: Vec<u32>,
    /// The labels one-hot, on the device: made once, used by every training between matches.
    targets: Tensor,
    /// Provenance written into every snapshot.
    metadata: HashMap<String, String>,
    /// One variable per class (its ipc stored images).
    syn: Vec<Var>,
    img_opt: Sgd,
    /// Iterations done in the checkpoint this run resumed from (0 for a fresh run).
    resumed_from: usize,
}

impl<'a> Condensation<'a> {
    /// Fresh images, or the images and momentum of the run's checkpoint when it exists.
    fn start_or_resume(run: &'a RunContext<'a>, method: MethodRef<'a>, cfg: &'a CondenseConfig) -> Result<Self> {
        let ds = run.dataset;
        let classes = ds.num_classes();
        cfg.check(ds.name).map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        let (class, size) = ds.train.smallest_class();
        let per_class = method.images_per_class(cfg.ipc);
        let drawn = match cfg.init {
            Init::Noise => 0,
            Init::Real => cfg.ipc,
            Init::Mix | Init::Sampler => per_class,
        };
        if drawn > size {
            candle_core::bail!(
                "[condense] `ipc` = {}: init = \"{}\" draws {drawn} real images per class, and class {class} of this copy of {} has {size}",
                cfg.ipc,
                cfg.init,
                ds.name
            )
        }
        let real = DeviceData::new(&ds.train, ds.shape(), run.dtype, run.device)?;
        let passes = PassSizes::plan(run, cfg, classes, per_class)?;
        set_tf32(cfg.tf32);
        let (syn, img_opt, resumed_from) = match run.checkpoint.filter(|p| p.exists()) {
            Some(path) => resume(path, cfg, classes, run)?,
            None => {
                let syn = initial_images(run, &real, cfg, method)?;
                let opt = Sgd::new(syn.clone(), cfg.lr_img, cfg.momentum_img, 0.0);
                (syn, opt, 0)
            }
        };
        let labels = class_labels(classes, per_class);
        let targets = one_hot(&labels, classes, run.dtype, run.device)?;
        let metadata = snapshot_metadata(run, cfg);
        Ok(Condensation {
            run,
            method,
            cfg,
            real,
            classes,
            passes,
            loops: cfg.loops(),
            labels,
            targets,
            metadata,
            syn,
            img_opt,
            resumed_from,
        })
    }

    /// Outer iteration `it`: a fresh network, then matching steps with the network trained on the
    /// synthetic set between them.
    fn outer_iteration(&mut self, it: usize) -> Result<IterationLog> {
        let (run, cfg) = (self.run, self.cfg);
        let started = Instant::now();
        let mut rng = ChaCha8Rng::seed_from_u64(derive_seed(cfg.seed, stream::ITERATION, it as u64));
        let net_seed = derive_seed(cfg.seed, stream::NETWORK, it as u64);
        let net = Network::new(run.model, run.dataset.shape(), self.classes, net_seed, run.dtype, run.device)?;
        let mut net_opt = Sgd::new(net.vars(), cfg.lr_net, cfg.momentum_net, 0.0);
        let mut batches = self.method.sampler.for_network();
        let mut losses = Vec::with_capacity(self.loops.outer);
        let mut inner = Vec::new();
        let (mut all_reads, mut matching_reads) = (ReadMeter::start(), 0);
        for ol in 0..self.loops.outer {
            let seeds = AugmentSeeds { run_seed: cfg.seed, iteration: it, step: ol, steps: self.loops.outer, classes: self.classes };
            let mut step_reads = ReadMeter::start();
            losses.push(self.matching_step(&net, seeds, &mut rng, batches.as_mut())?);
            matching_reads += step_reads.lap();
            if ol + 1 == self.loops.outer {
                break;
            }
            inner.push(self.train_between_matches(&net, &mut net_opt, seeds, &mut rng)?);
        }
        let loss_sum = read_losses(&losses, it)?;
        if host::reporting() {
            eprintln!("host reads, outer iteration {it}: {} ({matching_reads} in its matching steps)", all_reads.lap());
        }
        Ok(IterationLog {
            iteration: it,
            loss: loss_sum / (self.classes * self.loops.outer) as f64,
            inner_epochs: inner,
            seconds: started.elapsed().as_secs_f64(),
        })
    }

    /// The matching step of `seeds` (its iteration and step): one step of the image optimiser on the
    /// matching loss, whose value it returns, detached and still on the device: reading it here
    /// would make the host wait for the GPU before launching the backward.
    fn matching_step(
        &mut self,
        net: &Network,
        seeds: AugmentSeeds,
        rng: &mut ChaCha8Rng,
        batches: &mut dyn ClassBatches,
    ) -> Result<Tensor> {
        let step =
            MatchStep { net, real: &self.real, syn: &self.syn, cfg: self.cfg, method: self.method.reborrow(), passes: self.passes, seeds };
        let matched = step.run(rng, batches)?;
        self.img_opt.step(&matched.image_grads)?;
        Ok(matched.loss)
    }

    /// Trains the network on the (detached) synthetic images after the matching step of `seeds` for
    /// as many epochs as the step strategy decides, and returns them.
    fn train_between_matches(&self, net: &Network, net_opt: &mut Sgd, seeds: AugmentSeeds, rng: &mut ChaCha8Rng) -> Result<usize> {
        let step_ctx = StepContext { outer_step: seeds.step, outer_loop: self.loops.outer, inner_epochs: self.loops.inner };
        let mut trainer = NetTrainer {
            net,
            opt: net_opt,
            images: self.images()?,
            labels: &self.labels,
            targets: self.targets.clone(),
            batch: self.cfg.batch_train,
            augment: self.method.augment,
            seeds,
            batches_done: 0,
            real: &self.real,
            validation: None,
            classes: self.classes,
            rng,
        };
        self.method.steps.train(&step_ctx, &mut trainer)
    }

    /// Every decoded synthetic image, detached, class-major.
    fn images(&self) -> Result<Tensor> {
        let decode = |v: &Var| self.method.parameterisation.decode(&v.as_tensor().detach());
        Tensor::cat(&self.syn.iter().map(decode).collect::<Result<Vec<_>>>()?, 0)
    }

    /// Every stored synthetic image, detached, class-major.
    fn stored(&self) -> Result<Tensor> {
        Tensor::cat(&self.syn.iter().map(|v| v.as_tensor().detach()).collect::<Vec<_>>(), 0)
    }

    /// The stored set after `done` iterations; a checkpoint when it carries the image optimiser's
    /// `momentum`.
    fn snapshot(&self, done: usize, momentum: Option<Vec<Tensor>>) -> Result<SyntheticSet> {
        let mut metadata = self.metadata.clone();
        metadata.insert("iterations".into(), done.to_string());
        let labels = class_labels(self.classes, self.cfg.ipc);
        let mut set = SyntheticSet { images: self.stored()?, labels, metadata, momentum: None };
        if let Some(m) = momentum {
            set.metadata.insert("checkpoint".into(), "1".into());
            set.momentum = Some(Tensor::cat(&m, 0)?);
        }
        Ok(set)
    }

    /// Saves the set of every prefix run that ends after `done` iterations, with that run's identity.
    fn save_prefixes(&self, done: usize) -> Result<()> {
        for prefix in self.run.prefixes.iter().filter(|p| p.iterations == done) {
            let mut set = self.snapshot(done, None)?;
            set.metadata.insert(RunIdentity::KEY.into(), prefix.identity.key.clone());
            set.metadata.insert(RunIdentity::PROVENANCE.into(), prefix.identity.provenance.clone());
            set.save(&prefix.path)?;
        }
        Ok(())
    }

    /// Writes the checkpoint after `done` iterations every `checkpoint_every` of them and at the end.
    fn checkpoint_if_due(&self, done: usize) -> Result<()> {
        let Some(path) = self.run.checkpoint else { return Ok(()) };
        if done.is_multiple_of(self.cfg.checkpoint_every.max(1)) || done == self.cfg.iterations {
            self.snapshot(done, Some(self.img_opt.buffers()?))?.save(path)?;
        }
        Ok(())
    }
}

/// The sum of one outer iteration's matching losses, read from the device once; an error naming the
/// first matching step whose loss is not finite (nothing of this iteration is checkpointed then).
fn read_losses(losses: &[Tensor], iteration: usize) -> Result<f64> {
    let values = host::vec1::<f64>(&Tensor::stack(losses, 0)?.to_dtype(DType::F64)?)?;
    if let Some((step, value)) = values.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        candle_core::bail!("matching loss is {value} at iteration {iteration}, matching step {step}: lower lr_img or check the distance")
    }
    Ok(values.iter().sum())
}

/// The metadata of every snapshot: the run's identity, and for readers the dataset with its
/// normalisation, the model, ipc and seed.
fn snapshot_metadata(run: &RunContext, cfg: &CondenseConfig) -> HashMap<String, String> {
    let ds = run.dataset;
    let mut metadata = HashMap::new();
    metadata.insert(RunIdentity::KEY.into(), run.identity.key.clone());
    metadata.insert(RunIdentity::PROVENANCE.into(), run.identity.provenance.clone());
    metadata.insert("dataset".into(), ds.name.to_string());
    metadata.insert("mean".into(), serde_json::to_string(ds.mean()).expect("floats"));
    metadata.insert("std".into(), serde_json::to_string(ds.std()).expect("floats"));
    metadata.insert("ipc".into(), cfg.ipc.to_string());
    metadata.insert("seed".into(), cfg.seed.to_string());
    metadata.insert("model".into(), run.model.to_string());
    metadata
}

/// Labels of `ipc` images per class, class-major.
fn class_labels(classes: usize, ipc: usize) -> Vec<u32> {
    (0..classes as u32).flat_map(|c| std::iter::repeat_n(c, ipc)).collect()
}

/// `images` (classes x ipc, class-major) as one contiguous tensor per class.
fn per_class(images: &Tensor, classes: usize, ipc: usize) -> Result<Vec<Tensor>> {
    (0..classes).map(|c| images.narrow(0, c * ipc, ipc)?.contiguous()).collect()
}

/// `images` (classes x ipc, class-major) as one variable per class.
fn per_class_vars(images: &Tensor, classes: usize, ipc: usize) -> Result<Vec<Var>> {
    per_class(images, classes, ipc)?.iter().map(Var::from_tensor).collect()
}

/// The first matching step of outer iteration `iteration` of [`condense`] (its network, its real
/// batches) at the synthetic `images` given (classes x ipc images, class-major): the matching loss and
/// its gradient with respect to the images. Made for comparing devices and for profiling a step.
pub fn matching_gradient(
    run: &RunContext,
    method: MethodRef,
    cfg: &CondenseConfig,
    images: &Tensor,
    iteration: usize,
) -> Result<(f64, Tensor)> {
    let ds = run.dataset;
    let (classes, shape) = (ds.num_classes(), ds.shape());
    let real = DeviceData::new(&ds.train, shape, run.dtype, run.device)?;
    let passes = PassSizes::plan(run, cfg, classes, method.images_per_class(cfg.ipc))?;
    set_tf32(cfg.tf32);
    let images = images.to_device(run.device)?.to_dtype(run.dtype)?;
    let syn = per_class_vars(&images, classes, cfg.ipc)?;
    let mut rng = ChaCha8Rng::seed_from_u64(derive_seed(cfg.seed, stream::ITERATION, iteration as u64));
    let net = Network::new(run.model, shape, classes, derive_seed(cfg.seed, stream::NETWORK, iteration as u64), run.dtype, run.device)?;
    let seeds = AugmentSeeds { run_seed: cfg.seed, iteration, step: 0, steps: cfg.loops().outer, classes };
    let matched = MatchStep { net: &net, real: &real, syn: &syn, cfg, method: method.reborrow(), passes, seeds }
        .run(&mut rng, method.sampler.for_network().as_mut())?;
    let class_grads =
        matched.image_grads.into_iter().zip(&syn).map(|(g, v)| g.map_or_else(|| v.zeros_like(), Ok)).collect::<Result<Vec<_>>>()?;
    Ok((host::scalar_f64(&matched.loss)?, Tensor::cat(&class_grads, 0)?))
}

/// The initial stored synthetic images of `cfg` (noise, real, mixed or the sampler's), classes x
/// ipc, class-major.
pub fn initial_set(run: &RunContext, cfg: &CondenseConfig, method: MethodRef) -> Result<Tensor> {
    let ds = run.dataset;
    let real = DeviceData::new(&ds.train, ds.shape(), run.dtype, run.device)?;
    let syn = initial_images(run, &real, cfg, method)?;
    Tensor::cat(&syn.iter().map(|v| v.as_tensor().clone()).collect::<Vec<_>>(), 0)
}

fn initial_images(run: &RunContext, real: &DeviceData, cfg: &CondenseConfig, method: MethodRef) -> Result<Vec<Var>> {
    let mut rng = ChaCha8Rng::seed_from_u64(derive_seed(cfg.seed, stream::INIT, 0));
    let (c, h, w) = real.shape;
    let per_class = method.images_per_class(cfg.ipc);
    // The sampler sees the real images through the network the first outer iteration draws.
    let net = match cfg.init {
        Init::Sampler => Some(first_network(run, cfg)?),
        _ => None,
    };
    (0..run.dataset.num_classes())
        .map(|class| {
            let t = match cfg.init {
                Init::Real => real.select(&real.split.sample_class(class, cfg.ipc, &mut rng))?,
                Init::Mix => method.parameterisation.encode(&real.select(&real.split.sample_class(class, per_class, &mut rng))?)?,
                Init::Sampler => {
                    let mut ctx = RealDraws {
                        real,
                        net: net.as_ref().expect("drawn above for this init"),
                        mode: Mode::Eval,
                        rng: &mut rng,
                        batch_size: cfg.batch_real,
                        iteration: 0,
                        step: 0,
                        pass: cfg.batch_real,
                    };
                    let chosen = method.sampler.initial(&mut ctx, class, per_class)?;
                    method.parameterisation.encode(&real.select(&chosen)?)?
                }
                Init::Noise => {
                    let v: Vec<f32> = (0..cfg.ipc * c * h * w).map(|_| StandardNormal.sample(&mut rng)).collect();
                    Tensor::from_vec(v, (cfg.ipc, c, h, w), run.device)?.to_dtype(run.dtype)?
                }
            };
            Var::from_tensor(&t)
        })
        .collect()
}

/// The network of outer iteration 0.
fn first_network(run: &RunContext, cfg: &CondenseConfig) -> Result<Network> {
    let ds = run.dataset;
    Network::new(run.model, ds.shape(), ds.num_classes(), derive_seed(cfg.seed, stream::NETWORK, 0), run.dtype, run.device)
}

fn resume(path: &Path, cfg: &CondenseConfig, classes: usize, run: &RunContext) -> Result<(Vec<Var>, Sgd, usize)> {
    let set = SyntheticSet::load(path, run.device)?;
    if set.metadata.get(RunIdentity::KEY) != Some(&run.identity.key) {
        candle_core::bail!(
            "{}: this checkpoint belongs to a different configuration; delete it or choose another output folder",
            path.display()
        )
    }
    let done: usize = set.metadata.get("iterations").and_then(|v| v.parse().ok()).unwrap_or(0);
    let momentum =
        set.momentum.clone().ok_or_else(|| candle_core::Error::Msg(format!("{}: not a checkpoint (no momentum)", path.display())))?;
    let images = set.images.to_dtype(run.dtype)?;
    let syn = per_class_vars(&images, classes, cfg.ipc)?;
    let mut opt = Sgd::new(syn.clone(), cfg.lr_img, cfg.momentum_img, 0.0);
    opt.set_buffers(per_class(&momentum.to_dtype(run.dtype)?, classes, cfg.ipc)?);
    Ok((syn, opt, done))
}

/// The engine's side of [`InnerTrainer`]: SGD on the (detached) synthetic set.
struct NetTrainer<'a> {
    net: &'a Network,
    opt: &'a mut Sgd,
    images: Tensor,
    labels: &'a [u32],
    targets: Tensor,
    batch: usize,
    augment: &'a dyn Augmentation,
    /// The matching step this training follows: its seeds give each batch's augmentation.
    seeds: AugmentSeeds,
    /// Batches trained so far in this phase, over every epoch.
    batches_done: usize,
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
            // DSA trains the network on augmented batches too, parameters per image as its reference
            // does outside a match; `none` leaves them as they are.
            let x = self.augment.augment_each(&self.images.index_select(&idx, 0)?, self.seeds.training_batch(self.batches_done))?;
            self.batches_done += 1;
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
        host::scalar_f64(&cross_entropy(&self.net.forward(x, Mode::Eval)?, t)?)
    }
}
