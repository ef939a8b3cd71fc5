//! The steps that commands and ablation grids share: condense an experiment into a folder (checkpoint,
//! `log.jsonl`, set, PNG) and evaluate an image set with the protocol, its networks seeded the same
//! way everywhere.

use crate::experiment::{EvalAugmentations, Resolved};
use crate::global::Global;
use crate::jsonl::{complete_lines, open_for_append};
use crate::migrate;
use crate::provenance::Provenance;
use crate::stats::{Estimate, Over};
use anyhow::{Context, Result};
use candle_core::{DType, Device, Tensor};
use gradmatch_core::Augmentation;
use gradmatch_data::Dataset;
use gradmatch_engine::{
    condense, derive_seed, evaluate_all, networks_at_once, stream, CondenseOutcome, DeviceData, EvalConfig, EvalOutcome, EvalTask,
    IterationLog, Prefix, SyntheticSet,
};
use gradmatch_engine::{PassSizes, PassTarget, Recipe, RunContext};
use gradmatch_models::ModelSpec;
use rand::SeedableRng;
use serde::Serialize;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// A finished condensation in its folder.
pub struct CondensedFolder {
    pub outcome: CondenseOutcome,
    /// Every iteration's log entry from the start, across resumes (from `log.jsonl`).
    pub log: Vec<IterationLog>,
    /// The stored set (`outcome.set`), as `synthetic.safetensors`.
    pub set_path: PathBuf,
    /// The set as networks see it: the stored set decoded by the parameterisation.
    pub decoded: SyntheticSet,
    /// `synthetic-decoded.safetensors`, a plain set of the decoded images (for other tools' evaluators),
    /// written when the parameterisation is not plain pixels.
    pub decoded_path: Option<PathBuf>,
}

/// What a condensation needs: the resolved experiment, its dataset and where it runs, and the
/// shorter runs whose sets it saves on its way ([`finish_prefix`] completes their folders).
pub struct CondenseJob<'a> {
    pub resolved: &'a Resolved,
    pub dataset: &'a Dataset,
    pub device: &'a Device,
    pub prefixes: &'a [Prefix],
}

/// The passes a condensation of `resolved` would make on `device`, checked against its free memory
/// now: called before any folder is made, so that a run refused by its memory plan leaves nothing.
pub fn predict_passes(resolved: &Resolved, device: &Device) -> Result<PassSizes> {
    let e = &resolved.experiment;
    let target = PassTarget {
        model: &e.model,
        shape: e.dataset.shape(),
        classes: e.dataset.num_classes(),
        syn_per_class: resolved.method().images_per_class(e.condense.ipc),
        dtype: DType::F32,
        device,
    };
    Ok(PassSizes::predict(&target, &e.condense)?)
}

/// Condenses into `out`: resumes from `out/checkpoint.safetensors` when present, appends each
/// iteration to `out/log.jsonl`, and saves `synthetic.safetensors` and `synthetic.png` there.
pub fn condense_into(out: &Path, job: &CondenseJob, on_iteration: &mut dyn FnMut(&IterationLog)) -> Result<CondensedFolder> {
    let CondenseJob { resolved, dataset: ds, device, prefixes } = *job;
    let exp = &resolved.experiment;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let checkpoint = out.join(migrate::CHECKPOINT);
    let identity = Provenance::of(exp).condensation().identity();
    migrate::checkpoint(&checkpoint)?;
    let run = RunContext { dataset: ds, model: &exp.model, device, dtype: DType::F32, checkpoint: Some(&checkpoint), identity, prefixes };

    let log_path = out.join("log.jsonl");
    // Opened at the first iteration: a run refused before it (its memory plan, say) leaves no log.
    let mut log_file: Option<std::fs::File> = None;
    let mut write_error = None;
    let mut record = |entry: &IterationLog| {
        on_iteration(entry);
        let line = serde_json::to_string(entry).expect("log entry serialises");
        let written = match &mut log_file {
            Some(file) => writeln!(file, "{line}").map_err(anyhow::Error::from),
            None => open_for_append(&log_path).and_then(|mut file| {
                writeln!(file, "{line}")?;
                log_file = Some(file);
                Ok(())
            }),
        };
        if let Err(e) = written {
            write_error.get_or_insert(e);
        }
    };
    let outcome = condense(&run, resolved.method(), &exp.condense, &mut record)?;
    if let Some(e) = write_error {
        return Err(e).with_context(|| format!("writing {}", log_path.display()));
    }
    let set_path = out.join("synthetic.safetensors");
    outcome.set.save(&set_path)?;
    let decoded = outcome.set.decoded(resolved.method().parameterisation)?;
    let decoded_path = (!exp.method.parameterisation.is_pixels()).then(|| out.join("synthetic-decoded.safetensors"));
    if let Some(path) = &decoded_path {
        decoded.save(path)?;
    }
    decoded.save_grid(&out.join("synthetic.png"), ds.mean(), ds.std(), ds.num_classes(), 4)?;
    drop(log_file);
    let log = read_log(&log_path, exp.condense.iterations)?;
    // A resume repeats the iterations after its checkpoint: the file keeps one line per iteration.
    let lines: String = log.iter().map(|entry| serde_json::to_string(entry).expect("log entry serialises") + "\n").collect();
    crate::files::write_atomic(&log_path, lines)?;
    Ok(CondensedFolder { outcome, log, set_path, decoded, decoded_path })
}

/// Completes the folder of a prefix run whose set `job` saved: its `log.jsonl` (the first
/// iterations of `log`, the full run's) and `synthetic.png`, as the prefix run would have written
/// them; returns its log.
pub fn finish_prefix(prefix: &Prefix, log: &[IterationLog], job: &CondenseJob) -> Result<Vec<IterationLog>> {
    let folder = prefix.path.parent().context("a prefix set lives in a folder")?;
    let log = log.get(..prefix.iterations).context("the full run's log is shorter than its prefix")?.to_vec();
    let lines: String = log.iter().map(|entry| serde_json::to_string(entry).expect("log entry serialises") + "\n").collect();
    crate::files::write_atomic(&folder.join("log.jsonl"), lines)?;
    let set = SyntheticSet::load(&prefix.path, &Device::Cpu)?.decoded(job.resolved.method().parameterisation)?;
    set.save_grid(&folder.join("synthetic.png"), job.dataset.mean(), job.dataset.std(), job.dataset.num_classes(), 4)?;
    Ok(log)
}

/// The log of a (possibly resumed) run: a kill after a checkpoint repeats some iterations, so the
/// last entry of each iteration wins (resumed runs recompute them identically).
fn read_log(path: &Path, iterations: usize) -> Result<Vec<IterationLog>> {
    if iterations == 0 && !path.exists() {
        return Ok(Vec::new());
    }
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut by_iteration: Vec<Option<IterationLog>> = vec![None; iterations];
    // Any complete line must parse.
    for (n, line) in complete_lines(&text).lines().enumerate() {
        let entry: IterationLog =
            serde_json::from_str(line).with_context(|| format!("{} line {}: corrupt log entry", path.display(), n + 1))?;
        if let Some(slot) = by_iteration.get_mut(entry.iteration) {
            *slot = Some(entry);
        }
    }
    Ok(by_iteration.into_iter().flatten().collect())
}

/// Seed of evaluation network `index` of an image set made with `set_seed` (shared by every command,
/// so that the same set gets the same evaluation networks everywhere).
pub fn eval_seed(set_seed: u64, index: usize) -> u64 {
    derive_seed(set_seed, stream::SET_EVALUATION, index as u64)
}

/// An image set to evaluate, with the seed its evaluation networks derive from (see [`eval_seed`]).
#[derive(Clone, Copy)]
pub struct ImageSet<'a> {
    pub images: &'a Tensor,
    pub labels: &'a [u32],
    pub seed: u64,
}

/// What evaluation networks train on.
pub enum TrainingSets<'s> {
    /// One image set for every network (their seeds derive from its seed, see [`eval_seed`]).
    Same(ImageSet<'s>),
    /// DC's "Random" baseline: network `e` trains on its own random real subset of `train`, with
    /// `per_class[c]` images of class `c`, drawn from `seed`.
    RandomSubsets { train: &'s DeviceData<'s>, per_class: &'s [usize], seed: u64 },
}

impl TrainingSets<'_> {
    /// The seed of evaluation network `index` (its initialisation and batch order).
    pub fn network_seed(&self, index: usize) -> u64 {
        match *self {
            TrainingSets::Same(set) => eval_seed(set.seed, index),
            TrainingSets::RandomSubsets { seed, .. } => eval_seed(derive_seed(seed, stream::BASELINE_EVALUATION, index as u64), 0),
        }
    }
}

/// What one evaluation network trains on, with its own seed.
struct OwnSet {
    images: Tensor,
    labels: Vec<u32>,
    seed: u64,
}

/// Accuracies of `num_eval` networks per model trained on one image set.
#[derive(Debug, Clone, Serialize)]
pub struct ModelAccuracy {
    pub model: String,
    #[serde(flatten)]
    pub recipe: Recipe,
    pub parameters: usize,
    pub accuracies: Vec<f64>,
    /// Count, mean, std and 95 % interval of `accuracies`, and what they are over.
    #[serde(flatten)]
    pub estimate: Estimate,
    pub seconds_per_evaluation: f64,
}

/// The evaluation protocol `cfg` on one dataset, its test split uploaded once for any number of sets.
pub struct Evaluator<'a> {
    global: &'a Global,
    dataset: &'a Dataset,
    test: DeviceData<'a>,
    cfg: &'a EvalConfig,
    augmentations: &'a EvalAugmentations,
}

impl<'a> Evaluator<'a> {
    pub fn new(
        global: &'a Global,
        dataset: &'a Dataset,
        device: &Device,
        cfg: &'a EvalConfig,
        augmentations: &'a EvalAugmentations,
    ) -> Result<Evaluator<'a>> {
        let test = DeviceData::new(&dataset.test, dataset.shape(), DType::F32, device)?;
        Ok(Evaluator { global, dataset, test, cfg, augmentations })
    }

    /// The recipe that networks of `spec` train under on this dataset.
    pub fn recipe(&self, spec: &ModelSpec) -> Recipe {
        self.cfg.resolve(self.dataset.name, spec)
    }

    /// Trains evaluation networks `indices` of `spec` on `sets` as one ensemble (see
    /// [`Evaluator::networks_at_once`]) and tests them: one outcome per index.
    pub fn networks(&self, spec: &ModelSpec, sets: &TrainingSets, indices: &[usize]) -> Result<Vec<Result<EvalOutcome>>> {
        let recipe = self.recipe(spec);
        let augment = self.augmentations.of_recipe(&recipe)?;
        let own: Vec<OwnSet> = indices.iter().map(|&e| self.own_set(sets, e)).collect::<Result<_>>()?;
        let tasks: Vec<EvalTask> = own.iter().map(|o| self.task(spec, o, augment)).collect();
        Ok(evaluate_all(&tasks, self.cfg, &recipe, tasks.len()).into_iter().map(|o| o.map_err(anyhow::Error::from)).collect())
    }

    /// How many evaluation networks of `spec` on `sets` train as one ensemble on this device.
    pub fn networks_at_once(&self, spec: &ModelSpec, sets: &TrainingSets) -> Result<usize> {
        let augment = self.augmentations.of_recipe(&self.recipe(spec))?;
        Ok(networks_at_once(&self.task(spec, &self.own_set(sets, 0)?, augment), self.cfg)?)
    }

    /// Evaluation network `index`'s training images and seed.
    fn own_set(&self, sets: &TrainingSets, index: usize) -> Result<OwnSet> {
        let seed = sets.network_seed(index);
        match *sets {
            TrainingSets::Same(ImageSet { images, labels, .. }) => Ok(OwnSet { images: images.clone(), labels: labels.to_vec(), seed }),
            TrainingSets::RandomSubsets { train, per_class, seed: subsets } => {
                let split = &self.dataset.train;
                let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(derive_seed(subsets, stream::BASELINE_SUBSET, index as u64));
                let idx: Vec<usize> = per_class.iter().enumerate().flat_map(|(c, &n)| split.sample_class(c, n, &mut rng)).collect();
                Ok(OwnSet { images: train.select(&idx)?, labels: split.gather_labels(&idx), seed })
            }
        }
    }

    fn task<'t>(&'t self, spec: &'t ModelSpec, set: &'t OwnSet, augment: &'t dyn Augmentation) -> EvalTask<'t> {
        EvalTask {
            spec,
            images: &set.images,
            labels: &set.labels,
            test: &self.test,
            num_classes: self.dataset.num_classes(),
            augment,
            seed: set.seed,
        }
    }

    /// Runs the protocol `num_eval` times for each model on `set`.
    pub fn evaluate_set(&self, set: &ImageSet, models: &[ModelSpec]) -> Result<Vec<ModelAccuracy>> {
        let same = TrainingSets::Same(*set);
        models.iter().map(|spec| self.run_networks(spec, Over::one_set(self.cfg.num_eval), |e| self.own_set(&same, e))).collect()
    }

    /// The "Random" baseline under this protocol: network `e` trains on its own random real subset
    /// of `train` with `per_class[c]` images of class `c`, drawn from `seed`.
    pub fn evaluate_random_subsets(&self, train: &DeviceData, per_class: &[usize], spec: &ModelSpec, seed: u64) -> Result<ModelAccuracy> {
        let random = TrainingSets::RandomSubsets { train, per_class, seed };
        self.run_networks(spec, Over::one_network_each(self.cfg.num_eval), |e| self.own_set(&random, e))
    }

    /// Trains and tests `num_eval` networks of `spec`, network `e` on `own(e)`, as many at once as
    /// one ensemble holds ([`networks_at_once`]); they come from `over`.
    fn run_networks(&self, spec: &ModelSpec, over: Over, own: impl Fn(usize) -> Result<OwnSet>) -> Result<ModelAccuracy> {
        let num_eval = self.cfg.num_eval;
        let bar = self.global.progress(num_eval as u64, "evaluate");
        bar.set_message(spec.to_string());
        let recipe = self.recipe(spec);
        let augment = self.augmentations.of_recipe(&recipe)?;
        let mut accuracies = Vec::new();
        let started = Instant::now();
        // Network 0's set sizes the ensembles and is then its own (a Random subset is drawn once).
        let mut set_of_first = Some(own(0)?);
        let at_once = networks_at_once(&self.task(spec, set_of_first.as_ref().expect("just drawn"), augment), self.cfg)?;
        for first in (0..num_eval).step_by(at_once) {
            let sets: Vec<OwnSet> = (first..num_eval.min(first + at_once))
                .map(|e| set_of_first.take().filter(|_| e == 0).map_or_else(|| own(e), Ok))
                .collect::<Result<_>>()?;
            let tasks: Vec<EvalTask> = sets.iter().map(|set| self.task(spec, set, augment)).collect();
            let outcomes = evaluate_all(&tasks, self.cfg, &recipe, tasks.len());
            for (e, outcome) in (first..).zip(outcomes) {
                let outcome = outcome.with_context(|| format!("evaluating {spec}, network {e}"))?;
                accuracies.push(outcome.accuracy);
                if self.global.quiet {
                    eprintln!(
                        "evaluate {spec} #{e}: accuracy {:.2}% ({:.1} s)",
                        100.0 * outcome.accuracy,
                        outcome.train_seconds + outcome.test_seconds
                    );
                }
                bar.inc(1);
            }
        }
        bar.finish_and_clear();
        let ds = self.dataset;
        let parameters = gradmatch_models::Network::new(spec, ds.shape(), ds.num_classes(), 0, DType::F32, &Device::Cpu)?.num_params();
        Ok(ModelAccuracy {
            model: spec.to_string(),
            recipe: self.recipe(spec),
            parameters,
            estimate: Estimate::of(&accuracies, over),
            accuracies,
            seconds_per_evaluation: started.elapsed().as_secs_f64() / num_eval as f64,
        })
    }
}
