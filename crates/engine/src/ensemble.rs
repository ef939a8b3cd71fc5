//! Many evaluation networks trained as one ensemble ([`Network::ensemble`]): at ipc 1 a training
//! step of one network sees 10 images, so its GEMMs are tiny and the time goes to per-operation
//! overhead; K networks in one pass share that overhead. Each network keeps its own weights, seed,
//! batch order and augmentation seeds, exactly as [`evaluate`] draws them one network at a time.

use crate::device::available_bytes;
use crate::evaluate::{check_images, evaluate, report_reads, test_accuracy_of_members, EvalOutcome, EvalTask};
use crate::optim::Sgd;
use crate::recipe::{EvalConfig, Recipe};
use crate::seed::{derive_seed, stream};
use candle_core::{DType, Device, Result, Tensor};
use gradmatch_core::host::{self, ReadMeter, RoundReads};
use gradmatch_models::{one_hot, Footprint, Mode, Network};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::time::Instant;

/// What the training passes of one ensemble may hold on the CPU: twice one PyTorch evaluation's
/// whole process, less what the test pass and the data take.
const CPU_ENSEMBLE_BYTES: usize = 2 << 30;

/// The share of free GPU memory an ensemble's training pass may take.
const GPU_HEADROOM: f64 = 0.8;

/// The most networks one ensemble holds: DC's protocol trains 20 per set.
pub const MAX_NETWORKS_AT_ONCE: usize = 20;

/// How many networks of the task's model train as one on its device: `cfg.networks_at_once` when
/// given, else as many training batches as the memory budget holds (at least one); one for
/// batch-norm networks, whose statistics are per network.
pub fn networks_at_once(task: &EvalTask, cfg: &EvalConfig) -> Result<usize> {
    if task.spec.has_batch_norm() {
        return Ok(1);
    }
    if let Some(n) = cfg.networks_at_once {
        return Ok(n.max(1));
    }
    let device = task.images.device();
    let footprint = Footprint::measure(task.spec, task.test.shape, task.num_classes, device)?;
    let budget = match device {
        Device::Cpu => CPU_ENSEMBLE_BYTES,
        _ => (GPU_HEADROOM * available_bytes(device)? as f64) as usize,
    };
    let per_network = footprint.untracked_bytes(cfg.batch_size.min(task.labels.len()), 1, task.images.dtype()).max(1);
    Ok((budget / per_network).clamp(1, MAX_NETWORKS_AT_ONCE))
}

/// Trains and tests every task under `recipe`, `at_once` networks per ensemble, in order: one
/// outcome per task, a network that diverges reported as such without stopping the others.
/// Neighbouring tasks share an ensemble when they share the model, the test set, the augmentation
/// and the number of images.
pub fn evaluate_all(tasks: &[EvalTask], cfg: &EvalConfig, recipe: &Recipe, at_once: usize) -> Vec<Result<EvalOutcome>> {
    let mut outcomes = Vec::with_capacity(tasks.len());
    let mut rest = tasks;
    while !rest.is_empty() {
        let k = rest.iter().take(at_once.max(1)).take_while(|t| can_share(&rest[0], t)).count();
        let (together, later) = rest.split_at(k);
        outcomes.extend(evaluate_group(together, cfg, recipe));
        rest = later;
    }
    outcomes
}

/// Whether `b` can train in `a`'s ensemble.
fn can_share(a: &EvalTask, b: &EvalTask) -> bool {
    a.spec == b.spec
        && std::ptr::eq(a.test, b.test)
        && std::ptr::addr_eq(a.augment, b.augment)
        && a.num_classes == b.num_classes
        && a.labels.len() == b.labels.len()
}

/// The outcomes of `tasks` (equal set sizes): a set that is refused is refused alone, the others
/// train as one ensemble.
fn evaluate_group(tasks: &[EvalTask], cfg: &EvalConfig, recipe: &Recipe) -> Vec<Result<EvalOutcome>> {
    let checked: Vec<Result<()>> = tasks.iter().map(|t| check_images(t.images, t.labels)).collect();
    let valid: Vec<EvalTask> = tasks.iter().zip(&checked).filter(|(_, c)| c.is_ok()).map(|(t, _)| *t).collect();
    let mut trained = match evaluate_together(&valid, cfg, recipe) {
        Ok(done) => done,
        // What fails before any network trains fails for each of them.
        Err(e) => valid.iter().map(|_| Err(candle_core::Error::Msg(e.to_string()))).collect(),
    }
    .into_iter();
    checked.into_iter().map(|c| c.and_then(|()| trained.next().expect("an outcome per valid task"))).collect()
}

/// One ensemble of `tasks` (equal set sizes), or one network at a time where an ensemble cannot be.
fn evaluate_together(tasks: &[EvalTask], cfg: &EvalConfig, recipe: &Recipe) -> Result<Vec<Result<EvalOutcome>>> {
    if tasks.len() <= 1 || tasks[0].spec.has_batch_norm() {
        return Ok(tasks.iter().map(|t| evaluate(t, cfg, recipe)).collect());
    }
    cfg.check().map_err(|e| candle_core::Error::Msg(e.to_string()))?;
    let mut training = Training::new(tasks, cfg, recipe)?;
    let started = Instant::now();
    training.run()?;
    let train_seconds = started.elapsed().as_secs_f64() / tasks.len() as f64;
    let (started, mut reads) = (Instant::now(), ReadMeter::start());
    let accuracies = test_accuracy_of_members(&training.net, tasks[0].test, cfg.test_limit)?;
    let test_seconds = started.elapsed().as_secs_f64() / tasks.len() as f64;
    report_reads(tasks.len(), &training.host_reads, reads.lap());
    let losses = training.last_losses()?;
    Ok(training
        .diverged
        .into_iter()
        .zip(accuracies.into_iter().zip(losses))
        .map(|(diverged, (accuracy, final_train_loss))| match diverged {
            Some(message) => Err(candle_core::Error::Msg(message)),
            None => Ok(EvalOutcome { accuracy, final_train_loss, train_seconds, test_seconds }),
        })
        .collect())
}

/// The state of an ensemble's training.
struct Training<'t, 'a> {
    tasks: &'t [EvalTask<'a>],
    cfg: &'t EvalConfig,
    recipe: &'t Recipe,
    net: Network,
    opt: Sgd,
    /// Per network: its batch-order stream and one-hot targets.
    rngs: Vec<ChaCha8Rng>,
    targets: Vec<Tensor>,
    /// `(networks)` losses of the last step.
    last: Option<Tensor>,
    /// Per network, why it stopped counting (its training loss stopped being finite).
    diverged: Vec<Option<String>>,
    /// Reads into host memory, per epoch.
    host_reads: RoundReads,
}

impl<'t, 'a> Training<'t, 'a> {
    fn new(tasks: &'t [EvalTask<'a>], cfg: &'t EvalConfig, recipe: &'t Recipe) -> Result<Self> {
        let first = &tasks[0];
        let (dtype, device) = (first.images.dtype(), first.images.device());
        let seeds: Vec<u64> = tasks.iter().map(|t| derive_seed(t.seed, stream::NETWORK, 0)).collect();
        let net = Network::ensemble(first.spec, first.test.shape, first.num_classes, &seeds, dtype, device)?;
        let opt = Sgd::new(net.vars(), recipe.lr, cfg.momentum, cfg.weight_decay);
        let rngs = tasks.iter().map(|t| ChaCha8Rng::seed_from_u64(derive_seed(t.seed, stream::EVALUATION, 0))).collect();
        let targets = tasks.iter().map(|t| one_hot(t.labels, t.num_classes, dtype, device)).collect::<Result<_>>()?;
        let diverged = vec![None; tasks.len()];
        Ok(Training { tasks, cfg, recipe, net, opt, rngs, targets, last: None, diverged, host_reads: RoundReads::default() })
    }

    /// Every epoch of the recipe, each network's batches in its own order.
    fn run(&mut self) -> Result<()> {
        let phases = self.recipe.schedule.phases(self.recipe.epochs);
        let n = self.tasks[0].labels.len();
        let mut orders: Vec<Vec<u32>> = vec![(0..n as u32).collect(); self.tasks.len()];
        let (mut batches, mut reads) = (0u64, ReadMeter::start());
        for epoch in 0..phases.total {
            phases.before_epoch(epoch, &mut self.opt);
            for (order, rng) in orders.iter_mut().zip(&mut self.rngs) {
                order.shuffle(rng);
            }
            // One upload of every network's order per epoch; each batch's indices are views of it.
            let on_device = Tensor::from_vec(orders.concat(), (orders.len(), n), self.tasks[0].images.device())?;
            for start in (0..n).step_by(self.cfg.batch_size) {
                let len = self.cfg.batch_size.min(n - start);
                let chunks = (0..orders.len()).map(|k| on_device.get(k)?.narrow(0, start, len)).collect::<Result<Vec<_>>>()?;
                self.step(&chunks, batches)?;
                batches += 1;
            }
            // One host sync per check, as a single network's evaluation.
            if epoch % 25 == 0 || epoch + 1 == phases.total {
                self.check(epoch)?;
            }
            self.host_reads.add(reads.lap());
        }
        Ok(())
    }

    /// One SGD step of every network on its batch, the images `chunks[k]` of its set (the
    /// `batch`-th of its run).
    fn step(&mut self, chunks: &[Tensor], batch: u64) -> Result<()> {
        let mut images = Vec::with_capacity(chunks.len());
        let mut targets = Vec::with_capacity(chunks.len());
        let mut seeds = Vec::with_capacity(chunks.len());
        for ((task, idx), t) in self.tasks.iter().zip(chunks).zip(&self.targets) {
            seeds.push(derive_seed(task.seed, stream::EVAL_AUGMENT, batch));
            images.push(task.images.index_select(idx, 0)?);
            targets.push(t.index_select(idx, 0)?);
        }
        // One augmentation for every network's batch (the tasks share it: see `can_share`).
        let images = self.tasks[0].augment.augment_groups(&Tensor::cat(&images, 0)?, &seeds)?.detach();
        let (images, targets) = self.mix(images, Tensor::cat(&targets, 0)?, batch)?;
        let (losses, grads) = self.net.member_losses_and_grads(&images, &targets, Mode::Train)?;
        self.opt.step_all(&grads)?;
        self.last = Some(losses);
        Ok(())
    }

    /// Each network's block of the batch mixed by the recipe's CutMix with its own draws, as it
    /// would be alone.
    fn mix(&self, images: Tensor, targets: Tensor, batch: u64) -> Result<(Tensor, Tensor)> {
        if self.recipe.cutmix.is_none() {
            return Ok((images, targets));
        }
        let per = images.dim(0)? / self.tasks.len();
        let mut blocks = (Vec::with_capacity(self.tasks.len()), Vec::with_capacity(self.tasks.len()));
        for (k, task) in self.tasks.iter().enumerate() {
            let (x, t) = self.recipe.mix(images.narrow(0, k * per, per)?, targets.narrow(0, k * per, per)?, task.seed, batch)?;
            blocks.0.push(x);
            blocks.1.push(t);
        }
        Ok((Tensor::cat(&blocks.0, 0)?, Tensor::cat(&blocks.1, 0)?))
    }

    /// Marks the networks whose last loss is not finite, with the message their own evaluation gives.
    fn check(&mut self, epoch: usize) -> Result<()> {
        for (k, loss) in self.last_losses()?.into_iter().enumerate() {
            if !loss.is_finite() && self.diverged[k].is_none() {
                self.diverged[k] = Some(format!(
                    "evaluation of {}: training loss is {loss} at epoch {epoch} (lr {}); the set or the learning rate diverges",
                    self.tasks[k].spec, self.opt.lr
                ));
            }
        }
        Ok(())
    }

    fn last_losses(&self) -> Result<Vec<f64>> {
        match &self.last {
            Some(l) => host::vec1::<f64>(&l.to_dtype(DType::F64)?),
            None => Ok(vec![0.0; self.tasks.len()]),
        }
    }
}
