//! Ablation grids end to end: expand a grid, run what the store lacks (concurrently with `--jobs`, a
//! deterministic part of it with `--shard`), record every finished unit, and report.

pub mod grid;
mod neighbours;
mod plot;
pub mod report;
pub mod store;

use crate::coresets::{self, WholeSplit};
use crate::global::Global;
use crate::migrate::{self, Unfinished};
use crate::pipeline::{self, condense_into, CondenseJob, Evaluator, ImageSet};
use crate::provenance::Provenance;
use anyhow::{Context, Result};
use candle_core::{DType, Device};
use gradmatch_data::{Dataset, DatasetName};
use gradmatch_engine::{derive_seed, stream, DeviceData, EvalOutcome, IterationLog, Prefix, RunIdentity, SyntheticSet, VERSION};
use gradmatch_models::ModelSpec;
use grid::{Cell, Grid, Job, Shard};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget};
use rayon::prelude::*;
use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;
use store::{condense_key, evaluation_key, now_unix, Appender, Outcome, Record, Records};

pub struct Options {
    pub store: PathBuf,
    pub jobs: usize,
    /// Devices by name; job runners take them round-robin.
    pub devices: Vec<String>,
    pub shard: Shard,
    /// Make this grid the store's even when the store holds another one.
    pub replace_grid: bool,
}

/// What one run of a grid did.
#[derive(Debug, Default)]
pub struct Summary {
    pub ran: usize,
    pub skipped: usize,
    pub failed: Vec<String>,
}

impl Summary {
    fn add(mut self, other: Summary) -> Summary {
        self.ran += other.ran;
        self.skipped += other.skipped;
        self.failed.extend(other.failed);
        self
    }
}

/// The store folder of a grid unless `--store` says otherwise.
pub fn default_store(grid: &Grid) -> Result<PathBuf> {
    grid::check_name(&grid.name)?;
    Ok(PathBuf::from("runs/ablations").join(&grid.name))
}

/// What every job runner shares.
struct Shared<'a> {
    global: &'a Global,
    cells: &'a [Cell],
    datasets: &'a HashMap<DatasetName, Dataset>,
    devices: &'a [Device],
    device_names: &'a [String],
    store: &'a Path,
    records: &'a Records,
    /// Condensed sets by their set key ([`Provenance::set_key`], seed included), with the label of the
    /// cell that made them: from the store, and as this run condenses them.
    sets: Mutex<HashMap<String, (String, Outcome)>>,
    /// Condense keys of the jobs whose sets a longer run of this process saved and recorded.
    saved_on_the_way: Mutex<HashSet<String>>,
    appender: Appender,
    progress: MultiProgress,
    units: ProgressBar,
    total_jobs: usize,
}

/// Runs the jobs of `grid` (already expanded and validated) that this shard owns and the store lacks.
pub fn run(global: &Global, grid: &Grid, opts: &Options) -> Result<Summary> {
    let tf32_varies = grid.cells.iter().any(|c| c.experiment().condense.tf32 != grid.cells[0].experiment().condense.tf32);
    anyhow::ensure!(
        !(tf32_varies && opts.jobs > 1),
        "{}: its cells differ in condense.tf32, a process-wide switch: run it with --jobs 1",
        grid.name
    );
    let (device_names, devices) = open_devices(global, opts)?;
    let jobs: Vec<Job> = grid.jobs().into_iter().enumerate().filter(|(i, _)| opts.shard.owns(*i)).map(|(_, job)| job).collect();
    for device in &devices {
        check_memory(jobs.iter().map(|job| &grid.cells[job.cell]), device)?;
    }
    std::fs::create_dir_all(&opts.store).with_context(|| format!("creating store folder {}", opts.store.display()))?;
    store::migrate(&opts.store)?;
    let _lock = store::Lock::acquire(&opts.store, &opts.shard)?;
    store::keep_grid(grid, &opts.store, opts.replace_grid, &global.plugins)?;
    let records = Records::read(&[&opts.store])?;
    let appender = Appender::open(&opts.store, &opts.shard.records_file())?;
    let datasets = load_datasets(global, &grid.cells)?;

    let units: usize = jobs.iter().map(|j| 1 + units_of_evaluation(&grid.cells[j.cell])).sum();
    let progress = if global.quiet { MultiProgress::with_draw_target(ProgressDrawTarget::hidden()) } else { MultiProgress::new() };
    let bar = progress.add(global.progress(units as u64, "units"));
    println!(
        "ablation `{}`: {} cells x {} experiments, {} jobs in shard {}/{}, {} units of work -> {}",
        grid.name,
        grid.cells.len(),
        grid.experiments,
        jobs.len(),
        opts.shard.index,
        opts.shard.count,
        units,
        opts.store.display()
    );
    let shared = Shared {
        global,
        cells: &grid.cells,
        datasets: &datasets,
        devices: &devices,
        device_names: &device_names,
        store: &opts.store,
        records: &records,
        sets: Mutex::new(condensed_sets(&records)),
        saved_on_the_way: Mutex::new(HashSet::new()),
        appender,
        progress,
        units: bar,
        total_jobs: jobs.len(),
    };
    shared.run_jobs(&jobs, opts.jobs)
}

/// The condensed sets of the store, by the set key ([`Provenance::set_key`]) of each record's config
/// (whichever cell, or cell id, recorded it).
fn condensed_sets(records: &Records) -> HashMap<String, (String, Outcome)> {
    let mut sets = HashMap::new();
    for record in records.done.values().filter(|r| matches!(r.outcome, Outcome::Condensed { .. })) {
        let label = grid::label_text(&record.labels);
        sets.insert(Provenance::of(&record.config).set_key(), (label, record.outcome.clone()));
    }
    sets
}

/// Every cell's passes fit `device`'s free memory now, checked before the first cell runs (each
/// condensation checks its own again when it starts); the error lists every cell that does not.
pub fn check_memory<'c>(cells: impl IntoIterator<Item = &'c Cell>, device: &Device) -> Result<()> {
    let mut checked = Vec::new();
    let mut misfits = Vec::new();
    for cell in cells {
        if checked.contains(&cell.condensation) {
            continue;
        }
        if let Err(error) = pipeline::predict_passes(&cell.resolved, device) {
            misfits.push(format!("cell `{}`: {error}", cell.label()));
        }
        checked.push(cell.condensation.clone());
    }
    anyhow::ensure!(
        misfits.is_empty(),
        "{} cell(s) do not fit on {} as it is now (check a grid with the --device it will run on):\n  {}",
        misfits.len(),
        crate::global::device_name(device),
        misfits.join("\n  ")
    );
    Ok(())
}

/// Every dataset of the cells, loaded once.
fn load_datasets(global: &Global, cells: &[Cell]) -> Result<HashMap<DatasetName, Dataset>> {
    let mut datasets = HashMap::new();
    for cell in cells {
        if let Entry::Vacant(slot) = datasets.entry(cell.experiment().dataset) {
            slot.insert(global.load(cell.experiment().dataset)?);
        }
    }
    Ok(datasets)
}

/// The devices of `--devices` (else `--device`), with their names.
pub fn open_devices(global: &Global, opts: &Options) -> Result<(Vec<String>, Vec<Device>)> {
    let names = if opts.devices.is_empty() { vec![global.device.clone()] } else { opts.devices.clone() };
    let devices =
        names.iter().map(|d| gradmatch_engine::select_device(d).with_context(|| format!("--devices {d}"))).collect::<Result<Vec<_>>>()?;
    Ok((names, devices))
}

/// One job as it runs: the cell and experiment its records belong to, its seed and device, the name
/// its messages carry, and what it did so far.
struct RunningJob<'a> {
    cell: &'a Cell,
    experiment: usize,
    seed: u64,
    device: usize,
    name: String,
    summary: Summary,
}

impl RunningJob<'_> {
    fn provenance(&self) -> Provenance {
        Provenance::of(&self.cell.resolved.with_seed(self.seed).experiment)
    }

    /// The key of the job's condensation (what its checkpoint carries): its cell's, with the job's seed.
    fn condensation(&self) -> String {
        self.provenance().condensation().key()
    }

    /// The key of the sets the job's condensation makes, shared with every job of the same key.
    fn sets(&self) -> String {
        self.provenance().set_key()
    }

    /// The folder of the job's condensation in the store.
    fn folder(&self) -> PathBuf {
        condensation_folder(self.cell, self.experiment)
    }
}

/// The folder of experiment `k` of `cell`'s condensations, relative to the store.
fn condensation_folder(cell: &Cell, k: usize) -> PathBuf {
    PathBuf::from("cells").join(cell.folder()).join(format!("e{k}"))
}

/// The record of a condensation in `folder` (relative to the store) with its log, whose iterations
/// give its speed (across the sittings of a resumed run).
fn condensed_outcome(folder: &Path, log: &[IterationLog]) -> Outcome {
    Outcome::Condensed {
        seconds_per_iteration: log.iter().map(|l| l.seconds).sum::<f64>() / log.len().max(1) as f64,
        losses: log.iter().map(|l| l.loss).collect(),
        inner_epochs: log.iter().map(|l| l.inner_epochs.iter().sum()).collect(),
        set: folder.join("synthetic.safetensors"),
        grid_image: folder.join("synthetic.png"),
    }
}

/// What a job's networks train on, held for the job.
enum TrainingSets<'a> {
    /// Its condensed set, decoded.
    Synthetic(SyntheticSet),
    /// The real training split, each network drawing its own subset of `per_class` images per class.
    Real { train: DeviceData<'a>, per_class: Vec<usize> },
}

impl TrainingSets<'_> {
    /// As the evaluator takes them, networks seeded from the job's `seed`.
    fn of(&self, seed: u64) -> pipeline::TrainingSets<'_> {
        match self {
            TrainingSets::Synthetic(set) => pipeline::TrainingSets::Same(ImageSet { images: &set.images, labels: &set.labels, seed }),
            TrainingSets::Real { train, per_class } => pipeline::TrainingSets::RandomSubsets { train, per_class, seed },
        }
    }
}

/// What a job's networks train on, loaded with the evaluator of its dataset on the first evaluation:
/// its synthetic set (`path`), or for a Random cell each network its own real subset.
struct JobSet<'a> {
    path: Option<PathBuf>,
    loaded: Option<(TrainingSets<'a>, Evaluator<'a>)>,
}

/// One evaluation network of a job: its model and index, and its key in the store.
struct Evaluation {
    model: ModelSpec,
    index: usize,
    key: String,
}

fn units_of_evaluation(cell: &Cell) -> usize {
    cell.experiment().eval_models().len() * cell.experiment().evaluation.num_eval
}

impl<'a> Shared<'a> {
    /// Runs `jobs` (this shard's), `threads` at a time, and sums up what they did; each is labelled
    /// by its place among them (`[k/n]`).
    fn run_jobs(&self, jobs: &[Job], threads: usize) -> Result<Summary> {
        // One job at a time runs on the global pool: inside a 1-thread pool candle's GEMMs and the fused
        // kernels would run on one core (measured: 12.5 s instead of 7.8 s per iteration).
        let summaries: Vec<Summary> = if threads <= 1 {
            jobs.iter().enumerate().map(|(k, job)| self.run_job(k, job)).collect()
        } else {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build()?;
            pool.install(|| jobs.par_iter().enumerate().map(|(k, job)| self.run_job(k, job)).collect())
        };
        self.units.finish_and_clear();
        Ok(summaries.into_iter().fold(Summary::default(), Summary::add))
    }

    /// Condenses (or finds) one experiment of one cell, then runs its missing evaluations. Failures are
    /// recorded and reported, never propagated: the grid goes on.
    fn run_job(&self, place: usize, job: &Job) -> Summary {
        let cell = &self.cells[job.cell];
        // Process-wide: set for each job, also one whose set is found and only evaluated here.
        gradmatch_engine::set_tf32(cell.experiment().condense.tf32);
        let mut running = RunningJob {
            cell,
            experiment: job.experiment,
            seed: cell.experiment().condense.seed + job.experiment as u64,
            device: rayon::current_thread_index().unwrap_or(0) % self.devices.len(),
            name: format!("[{}/{}] {} e{}", place + 1, self.total_jobs, cell.label(), job.experiment),
            summary: Summary::default(),
        };
        match cell.baseline() {
            Some(_) => self.evaluate_missing(&mut running, &mut JobSet { path: None, loaded: None }),
            None => {
                if let Some(path) = self.find_or_condense(&mut running) {
                    self.evaluate_missing(&mut running, &mut JobSet { path: Some(path), loaded: None });
                }
            }
        }
        running.summary
    }

    /// The job's synthetic set: found in the records, or condensed and recorded now; `None` when that
    /// failed (the failure is recorded).
    fn find_or_condense(&self, job: &mut RunningJob<'a>) -> Option<PathBuf> {
        let key = condense_key(&job.cell.id, job.experiment);
        if let Some(Outcome::Condensed { set, .. }) = self.records.done.get(&key).map(|r| &r.outcome) {
            job.summary.skipped += 1;
            self.units.inc(1);
            return Some(self.store.join(set));
        }
        let sets = job.sets();
        let shared = self.sets.lock().expect("not poisoned").get(&sets).cloned();
        match shared {
            // Saved and recorded for this very job by a longer run of this process.
            Some((_, Outcome::Condensed { set, .. })) if self.saved_on_the_way.lock().expect("not poisoned").contains(&key) => {
                job.summary.skipped += 1;
                self.units.inc(1);
                return Some(self.store.join(set));
            }
            Some((from, outcome)) => return self.share(job, key, &from, outcome),
            None => {}
        }
        let made = match job.cell.experiment().coreset {
            Some(_) => self.select_coreset(job),
            None => self.condense(job),
        };
        let (outcome, seconds) = match made {
            Ok(condensed) => condensed,
            Err(e) => {
                self.fail(job, "condense", key, e);
                self.units.inc(units_of_evaluation(job.cell) as u64 + 1);
                return None;
            }
        };
        let Outcome::Condensed { set, .. } = &outcome else { unreachable!("condense returns a Condensed outcome") };
        let path = self.store.join(set);
        let shared = (job.cell.label(), outcome.clone());
        if let Err(e) = self.record(job, key.clone(), seconds, outcome) {
            self.fail(job, "record", key, e);
            return None;
        }
        self.sets.lock().expect("not poisoned").insert(sets, shared);
        job.summary.ran += 1;
        self.units.inc(1);
        Some(path)
    }

    /// Records for the job the set that cell `from` condensed with the same config and seed (it
    /// differs only in its evaluation), instead of condensing it again.
    fn share(&self, job: &mut RunningJob<'a>, key: String, from: &str, outcome: Outcome) -> Option<PathBuf> {
        let Outcome::Condensed { set, .. } = &outcome else { unreachable!("only condensed outcomes are shared") };
        let path = self.store.join(set);
        self.note(format!("{}: the set of `{from}` (the same condensation)", job.name));
        if let Err(e) = self.record(job, key.clone(), 0.0, outcome) {
            self.fail(job, "record", key, e);
            return None;
        }
        job.summary.skipped += 1;
        self.units.inc(1);
        Some(path)
    }

    /// Runs and records every evaluation of the job's set that the store lacks, as many networks
    /// at once as one ensemble holds: each is recorded when its ensemble ends, so a killed run loses
    /// at most the ensemble in flight.
    fn evaluate_missing(&self, job: &mut RunningJob<'a>, set: &mut JobSet<'a>) {
        let cell = job.cell;
        let exp = cell.experiment();
        for model in exp.eval_models() {
            let mut missing = Vec::new();
            for index in 0..exp.evaluation.num_eval {
                let key = evaluation_key(&cell.id, job.experiment, &model.to_string(), index);
                self.units.inc(1);
                if self.records.done.contains_key(&key) {
                    job.summary.skipped += 1;
                } else {
                    missing.push(Evaluation { model, index, key });
                }
            }
            let at_once = self.load_once(job, set).and_then(|(sets, evaluator)| evaluator.networks_at_once(&model, &sets.of(job.seed)));
            match at_once {
                Ok(at_once) => missing.chunks(at_once).for_each(|ensemble| self.run_evaluations(job, set, ensemble)),
                Err(e) => missing
                    .iter()
                    .for_each(|ev| self.fail(job, &format!("evaluate {model} #{}", ev.index), ev.key.clone(), anyhow::anyhow!("{e:#}"))),
            }
        }
    }

    /// Runs one ensemble of evaluations (one model) and records each, or its failure.
    fn run_evaluations(&self, job: &mut RunningJob<'a>, set: &mut JobSet<'a>, ensemble: &[Evaluation]) {
        let started = Instant::now();
        let results = match self.load_once(job, set).and_then(|loaded| self.evaluate_and_record(job, loaded, ensemble, started)) {
            Ok(results) => results,
            Err(e) => ensemble.iter().map(|_| Err(anyhow::anyhow!("{e:#}"))).collect(),
        };
        let seconds = started.elapsed().as_secs_f64() / ensemble.len() as f64;
        for (Evaluation { model, index, key }, result) in ensemble.iter().zip(results) {
            match result {
                Ok(accuracy) => {
                    job.summary.ran += 1;
                    let recipe = job.cell.experiment().evaluation.resolve(job.cell.experiment().dataset, model);
                    self.note(format!("{}: {model} #{index}: {:.2}%, {recipe} ({seconds:.1} s)", job.name, 100.0 * accuracy));
                }
                Err(e) => self.fail(job, &format!("evaluate {model} #{index}"), key.clone(), e),
            }
        }
    }

    /// What the job's networks train on and the evaluator of its dataset, loaded on the first call.
    fn load_once<'s>(&self, job: &RunningJob<'a>, set: &'s mut JobSet<'a>) -> Result<&'s (TrainingSets<'a>, Evaluator<'a>)> {
        if set.loaded.is_none() {
            let exp = job.cell.experiment();
            let device = &self.devices[job.device];
            let dataset = &self.datasets[&exp.dataset];
            let sets = match &set.path {
                Some(path) => TrainingSets::Synthetic(
                    SyntheticSet::load(path, device)
                        .and_then(|stored| stored.decoded(job.cell.resolved.method().parameterisation))
                        .with_context(|| format!("loading the synthetic set {} (delete its condense record to redo it)", path.display()))?,
                ),
                None => TrainingSets::Real {
                    train: DeviceData::new(&dataset.train, dataset.shape(), DType::F32, device)?,
                    per_class: vec![exp.condense.ipc; dataset.num_classes()],
                },
            };
            let evaluator = Evaluator::new(self.global, dataset, device, &exp.evaluation, &job.cell.resolved.evaluation)?;
            set.loaded = Some((sets, evaluator));
        }
        Ok(set.loaded.as_ref().expect("loaded above"))
    }

    /// Evaluates an ensemble of networks (one model) on the job's set and records each that
    /// succeeds; returns each one's accuracy. Each recorded time is the network's share of the time
    /// from `started`, so the ensemble that loads the set also accounts for loading it.
    fn evaluate_and_record(
        &self,
        job: &RunningJob,
        (sets, evaluator): &(TrainingSets, Evaluator),
        ensemble: &[Evaluation],
        started: Instant,
    ) -> Result<Vec<Result<f64>>> {
        let model = &ensemble[0].model;
        let indices: Vec<usize> = ensemble.iter().map(|e| e.index).collect();
        let sets = sets.of(job.seed);
        let outcomes = evaluator.networks(model, &sets, &indices)?;
        let share = started.elapsed().as_secs_f64() / ensemble.len() as f64;
        let record = |Evaluation { index, key, .. }: &Evaluation, o: EvalOutcome| -> Result<f64> {
            anyhow::ensure!(o.accuracy.is_finite(), "accuracy is {}", o.accuracy);
            let outcome = Outcome::Evaluated {
                model: model.to_string(),
                index: *index,
                eval_seed: sets.network_seed(*index),
                accuracy: o.accuracy,
                final_train_loss: o.final_train_loss,
                recipe: Some(evaluator.recipe(model)),
            };
            self.record(job, key.clone(), share, outcome)?;
            Ok(o.accuracy)
        };
        Ok(ensemble.iter().zip(outcomes).map(|(ev, o)| o.and_then(|o| record(ev, o))).collect())
    }

    fn condense(&self, job: &RunningJob) -> Result<(Outcome, f64)> {
        let started = Instant::now();
        let resolved = job.cell.resolved.with_seed(job.seed);
        let exp = &resolved.experiment;
        let folder = job.folder();
        let bar = self.progress.add(self.global.progress(exp.condense.iterations as u64, "condense"));
        bar.set_message(job.name.clone());
        let (cells, prefixes): (Vec<usize>, Vec<Prefix>) = self.prefixes(job)?.into_iter().unzip();
        let condensation = CondenseJob {
            resolved: &resolved,
            dataset: &self.datasets[&exp.dataset],
            device: &self.devices[job.device],
            prefixes: &prefixes,
        };
        migrate::adopt_unfinished(&self.store.join(&folder), &job.condensation(), &Unfinished::CONDENSATION);
        let condensed = condense_into(&self.store.join(&folder), &condensation, &mut |entry| {
            bar.set_position(entry.iteration as u64 + 1);
        });
        bar.finish_and_clear();
        self.progress.remove(&bar);
        let condensed = condensed?;
        let losses = match (condensed.log.first(), condensed.log.last()) {
            (Some(first), Some(last)) => format!("loss {:.4} -> {:.4}", first.loss, last.loss),
            _ => "no iterations: the initial set".to_string(),
        };
        let resumed = match condensed.outcome.resumed_from {
            0 => String::new(),
            at => format!(" (resumed at iteration {at})"),
        };
        let name = &job.name;
        let speed = condensed.outcome.seconds_per_iteration;
        self.note(format!("{name}: condensed, {losses}, {speed:.3} s per iteration{resumed}"));
        for (&cell, prefix) in cells.iter().zip(&prefixes).filter(|(_, p)| p.path.exists()) {
            self.record_prefix(job, &self.cells[cell], prefix, &condensed.log, &condensation)?;
        }
        // A resumed run's time is that of all its sittings, as its log holds them.
        let seconds = match condensed.outcome.resumed_from {
            0 => started.elapsed().as_secs_f64(),
            _ => condensed.log.iter().map(|l| l.seconds).sum(),
        };
        Ok((condensed_outcome(&folder, &condensed.log), seconds))
    }

    /// The job's coreset, chosen now by its cell's selection among the whole training split, with
    /// the features and forgetting counts of a network the store keeps (`networks/`, trained on
    /// first use from the job's seed), and saved where a condensation would save its set.
    fn select_coreset(&self, job: &RunningJob) -> Result<(Outcome, f64)> {
        let started = Instant::now();
        let exp = job.cell.experiment();
        let spec = exp.coreset.as_ref().context("a coreset cell has [coreset]")?;
        let (ds, device) = (&self.datasets[&exp.dataset], &self.devices[job.device]);
        let cfg = coresets::feature_training(spec.feature_epochs, None);
        let recipe = cfg.resolve(exp.dataset, &exp.model);
        let networks = self.store.join("networks");
        let augment = gradmatch_augment::NoAugmentation;
        let images = spec.train_images.unwrap_or(ds.train.len()).min(ds.train.len());
        let whole = WholeSplit {
            dataset: ds,
            model: &exp.model,
            cfg: &cfg,
            recipe: &recipe,
            augment: &augment,
            images,
            seed: job.seed,
            out: &networks,
        };
        let test = DeviceData::new(&ds.test, ds.shape(), DType::F32, device)?;
        let selection = job.cell.resolved.selection().context("a coreset cell's selection is built with it")?;
        let subsets = derive_seed(job.seed, stream::BASELINE_SUBSET, 0);
        let (_, mut set) = coresets::select(selection, &whole, device, &test, exp.condense.ipc, subsets)?;
        let identity = job.provenance().condensation().identity();
        set.metadata.insert("coreset".into(), spec.selection.name.clone());
        set.metadata.insert(RunIdentity::KEY.into(), identity.key);
        set.metadata.insert(RunIdentity::PROVENANCE.into(), identity.provenance);
        let folder = job.folder();
        let (set_path, grid_path) =
            (self.store.join(&folder).join("synthetic.safetensors"), self.store.join(&folder).join("synthetic.png"));
        std::fs::create_dir_all(self.store.join(&folder)).with_context(|| format!("creating {}", folder.display()))?;
        set.save(&set_path)?;
        set.save_grid(&grid_path, ds.mean(), ds.std(), ds.num_classes(), 4)?;
        self.note(format!("{}: coreset of `{}` chosen", job.name, spec.selection.name));
        Ok((condensed_outcome(&folder, &[]), started.elapsed().as_secs_f64()))
    }

    /// The prefix runs of the job's condensation: cells of the grid whose condensation stops earlier
    /// on the same path (a `[curve]` point, an iterations axis), with the same seed, whose sets the
    /// store lacks; one per set key, each saved where its own run would save it.
    fn prefixes(&self, job: &RunningJob) -> Result<Vec<(usize, Prefix)>> {
        let full = job.provenance();
        let known = self.sets.lock().expect("not poisoned");
        let mut prefixes: Vec<(usize, Prefix)> = Vec::new();
        let mut keys: Vec<String> = Vec::new();
        for (index, cell) in self.cells.iter().enumerate().filter(|(_, c)| c.condenses()) {
            let short = Provenance::of(&cell.resolved.with_seed(job.seed).experiment);
            let at = short.condense.iterations;
            let mut stretched = short.clone();
            stretched.condense.iterations = full.condense.iterations;
            let key = short.set_key();
            let recorded = self.records.done.contains_key(&condense_key(&cell.id, job.experiment));
            if at == 0 || at >= full.condense.iterations || stretched.set_key() != full.set_key() || recorded {
                continue;
            }
            if known.contains_key(&key) || keys.contains(&key) {
                continue;
            }
            let folder = self.store.join(condensation_folder(cell, job.experiment));
            std::fs::create_dir_all(&folder).with_context(|| format!("creating {}", folder.display()))?;
            keys.push(key);
            let identity = short.condensation().identity();
            migrate::adopt_unfinished(&folder, &identity.key, &Unfinished::PREFIX_SET);
            let path = folder.join(Unfinished::PREFIX_SET.file);
            prefixes.push((index, Prefix { iterations: at, identity, path }));
        }
        Ok(prefixes)
    }

    /// Records for `cell` the set that `job`'s run saved as its `prefix`, with its share of the log.
    fn record_prefix(&self, job: &RunningJob, cell: &Cell, prefix: &Prefix, log: &[IterationLog], run: &CondenseJob) -> Result<()> {
        let log = pipeline::finish_prefix(prefix, log, run)?;
        let short = RunningJob {
            cell,
            name: format!("{} (after {} iterations)", job.name, prefix.iterations),
            summary: Summary::default(),
            ..*job
        };
        let folder = short.folder();
        let outcome = condensed_outcome(&folder, &log);
        self.note(format!("{}: the set of `{}` saved on the way", job.name, cell.label()));
        let key = condense_key(&cell.id, job.experiment);
        self.record(&short, key.clone(), 0.0, outcome.clone())?;
        self.saved_on_the_way.lock().expect("not poisoned").insert(key);
        self.sets.lock().expect("not poisoned").insert(short.sets(), (cell.label(), outcome));
        Ok(())
    }

    /// Reports a failed unit of work and records it (it is retried on the next run).
    fn fail(&self, job: &mut RunningJob, stage: &str, key: String, error: anyhow::Error) {
        let error = format!("{error:#}");
        self.note(format!("{}: {stage} FAILED: {error}", job.name));
        job.summary.failed.push(format!("{} {stage}: {error}", job.name));
        if let Err(e) = self.record(job, key, 0.0, Outcome::Failed { stage: stage.into(), error }) {
            job.summary.failed.push(format!("{}: could not record the failure: {e:#}", job.name));
        }
    }

    fn record(&self, job: &RunningJob, key: String, seconds: f64, outcome: Outcome) -> Result<()> {
        let config = job.cell.resolved.with_seed(job.seed).experiment;
        self.appender.append(&Record {
            schema: Provenance::SCHEMA,
            key,
            cell: job.cell.id.clone(),
            labels: job.cell.labels.clone(),
            experiment: job.experiment,
            seed: job.seed,
            config,
            device: self.device_names[job.device].clone(),
            machine: Some(crate::global::machine(&self.devices[job.device])),
            version: VERSION.to_string(),
            seconds,
            finished_unix: now_unix(),
            outcome,
        })
    }

    fn note(&self, line: String) {
        if self.global.quiet {
            eprintln!("{line}");
        } else {
            self.progress.suspend(|| eprintln!("{line}"));
        }
    }
}
