//! Ablation grids end to end: expand a grid, run what the store lacks (concurrently with `--jobs`, a
//! deterministic part of it with `--shard`), record every finished unit, and report.

pub mod grid;
mod plot;
pub mod report;
pub mod store;

use crate::commands::condense::condense_into;
use crate::commands::{eval_seed, Global};
use anyhow::{Context, Result};
use candle_core::{DType, Device};
use gradmatch_data::{Dataset, DatasetName};
use gradmatch_engine::{evaluate, DeviceData, SyntheticSet, VERSION};
use gradmatch_plugins::Plugins;
use grid::{Cell, Grid, Job, Shard};
use indicatif::MultiProgress;
use rayon::prelude::*;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;
use store::{condense_key, evaluation_key, now_unix, Appender, Outcome, Record, Records};

pub struct Options {
    pub store: PathBuf,
    pub jobs: usize,
    /// Devices by name; job runners take them round-robin.
    pub devices: Vec<String>,
    pub shard: Shard,
}

/// What one run of a grid did.
#[derive(Debug, Default)]
pub struct Summary {
    pub ran: usize,
    pub skipped: usize,
    pub failed: Vec<String>,
}

/// The store folder of a grid unless `--store` says otherwise.
pub fn default_store(grid: &Grid) -> PathBuf {
    PathBuf::from("runs/ablations").join(&grid.name)
}

struct Shared<'a> {
    global: &'a Global,
    cells: &'a [Cell],
    datasets: &'a HashMap<DatasetName, Dataset>,
    devices: &'a [Device],
    device_names: &'a [String],
    plugins: Plugins,
    store: &'a Path,
    records: &'a Records,
    appender: Appender,
    progress: MultiProgress,
    units: indicatif::ProgressBar,
    total_jobs: usize,
}

pub fn run(global: &Global, grid: &Grid, opts: &Options) -> Result<Summary> {
    let plugins = Plugins::builtin();
    let cells = grid.cells(&plugins)?;
    std::fs::create_dir_all(&opts.store).with_context(|| format!("creating store folder {}", opts.store.display()))?;
    write_grid_copy(grid, &opts.store)?;
    let records = Records::read(&[&opts.store])?;
    let appender = Appender::open(&opts.store, &opts.shard.records_file())?;

    let mut datasets = HashMap::new();
    for cell in &cells {
        if let std::collections::hash_map::Entry::Vacant(slot) = datasets.entry(cell.experiment.dataset) {
            slot.insert(global.load(cell.experiment.dataset)?);
        }
    }
    let device_names = if opts.devices.is_empty() { vec![global.device.clone()] } else { opts.devices.clone() };
    let devices = device_names
        .iter()
        .map(|d| gradmatch_engine::select_device(d).with_context(|| format!("--devices {d}")))
        .collect::<Result<Vec<_>>>()?;

    let jobs: Vec<(usize, Job)> = grid.jobs(&cells).into_iter().enumerate().filter(|(i, _)| opts.shard.owns(*i)).collect();
    let units: usize = jobs.iter().map(|(_, j)| 1 + units_of_evaluation(&cells[j.cell])).sum();
    let progress =
        if global.quiet { MultiProgress::with_draw_target(indicatif::ProgressDrawTarget::hidden()) } else { MultiProgress::new() };
    let bar = progress.add(global.progress(units as u64, "units"));
    println!(
        "ablation `{}`: {} cells x {} experiments, {} jobs in shard {}/{}, {} units of work -> {}",
        grid.name,
        cells.len(),
        grid.experiments,
        jobs.len(),
        opts.shard.index,
        opts.shard.count,
        units,
        opts.store.display()
    );
    let shared = Shared {
        global,
        cells: &cells,
        datasets: &datasets,
        devices: &devices,
        device_names: &device_names,
        plugins,
        store: &opts.store,
        records: &records,
        appender,
        progress,
        units: bar,
        total_jobs: jobs.len(),
    };
    // One job at a time runs on the global pool: inside a 1-thread pool candle's GEMMs and the fused
    // kernels would run on one core (measured: 12.5 s instead of 7.8 s per iteration).
    let summaries: Vec<Summary> = if opts.jobs <= 1 {
        jobs.iter().map(|(i, job)| shared.run_job(*i, job)).collect()
    } else {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(opts.jobs).build()?;
        pool.install(|| jobs.par_iter().map(|(i, job)| shared.run_job(*i, job)).collect())
    };
    shared.units.finish_and_clear();
    let mut total = Summary::default();
    for s in summaries {
        total.ran += s.ran;
        total.skipped += s.skipped;
        total.failed.extend(s.failed);
    }
    Ok(total)
}

/// Where a record comes from: one experiment of one cell, on one device.
struct Unit<'c> {
    cell: &'c Cell,
    experiment: usize,
    seed: u64,
    device: usize,
}

fn units_of_evaluation(cell: &Cell) -> usize {
    cell.experiment.eval_models().len() * cell.experiment.evaluation.num_eval
}

/// The store keeps the grid it was made from, so that `report` needs nothing else.
fn write_grid_copy(grid: &Grid, store: &Path) -> Result<()> {
    let text = format!("# Written by `gradmatch ablate`; `gradmatch report` reads it.\n{}", toml::to_string(grid)?);
    let tmp = store.join(format!("grid.toml.{}.tmp", std::process::id()));
    std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, store.join("grid.toml")).with_context(|| format!("writing {}", store.join("grid.toml").display()))
}

impl Shared<'_> {
    fn record(&self, unit: &Unit, key: String, seconds: f64, outcome: Outcome) -> Result<()> {
        let mut config = unit.cell.experiment.clone();
        config.condense.seed = unit.seed;
        self.appender.append(&Record {
            key,
            cell: unit.cell.id.clone(),
            labels: unit.cell.labels.clone(),
            experiment: unit.experiment,
            seed: unit.seed,
            config,
            device: self.device_names[unit.device].clone(),
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

    /// Condenses (or finds) one experiment of one cell, then runs its missing evaluations. Failures are
    /// recorded and reported, never propagated: the grid goes on.
    fn run_job(&self, index: usize, job: &Job) -> Summary {
        let mut summary = Summary::default();
        let cell = &self.cells[job.cell];
        let exp = &cell.experiment;
        let seed = exp.condense.seed + job.experiment as u64;
        let device = rayon::current_thread_index().unwrap_or(0) % self.devices.len();
        let unit = Unit { cell, experiment: job.experiment, seed, device };
        let name = format!("[{}/{}] {} e{}", index + 1, self.total_jobs, cell.label(), job.experiment);
        let fail = |summary: &mut Summary, stage: &str, key: String, error: anyhow::Error| {
            let error = format!("{error:#}");
            self.note(format!("{name}: {stage} FAILED: {error}"));
            summary.failed.push(format!("{name} {stage}: {error}"));
            if let Err(e) = self.record(&unit, key, 0.0, Outcome::Failed { stage: stage.into(), error }) {
                summary.failed.push(format!("{name}: could not record the failure: {e:#}"));
            }
        };

        let key = condense_key(&cell.id, job.experiment);
        let set_path = match self.records.done.get(&key).map(|r| &r.outcome) {
            Some(Outcome::Condensed { set, .. }) => {
                summary.skipped += 1;
                self.units.inc(1);
                self.store.join(set)
            }
            _ => match self.condense(cell, job, seed, device, &name) {
                Ok((outcome, seconds)) => {
                    let set = match &outcome {
                        Outcome::Condensed { set, .. } => self.store.join(set),
                        _ => unreachable!("condense returns a Condensed outcome"),
                    };
                    if let Err(e) = self.record(&unit, key.clone(), seconds, outcome) {
                        fail(&mut summary, "record", key, e);
                        return summary;
                    }
                    summary.ran += 1;
                    self.units.inc(1);
                    set
                }
                Err(e) => {
                    fail(&mut summary, "condense", key, e);
                    self.units.inc(units_of_evaluation(cell) as u64 + 1);
                    return summary;
                }
            },
        };

        let mut loaded: Option<(SyntheticSet, DeviceData)> = None;
        for model in exp.eval_models() {
            for n in 0..exp.evaluation.num_eval {
                let key = evaluation_key(&cell.id, job.experiment, &model.to_string(), n);
                self.units.inc(1);
                if self.records.done.contains_key(&key) {
                    summary.skipped += 1;
                    continue;
                }
                let started = Instant::now();
                let result = (|| -> Result<Outcome> {
                    if loaded.is_none() {
                        let ds = &self.datasets[&exp.dataset];
                        let set = SyntheticSet::load(&set_path, &self.devices[device]).with_context(|| {
                            format!("loading the synthetic set {} (delete its condense record to redo it)", set_path.display())
                        })?;
                        let test = DeviceData::new(&ds.test, ds.shape(), DType::F32, &self.devices[device])?;
                        loaded = Some((set, test));
                    }
                    let (set, test) = loaded.as_ref().expect("loaded above");
                    let classes = self.datasets[&exp.dataset].num_classes();
                    let eval_seed = eval_seed(seed, n);
                    let o = evaluate(&model, &set.images, &set.labels, test, classes, &exp.evaluation, eval_seed)?;
                    anyhow::ensure!(o.accuracy.is_finite(), "accuracy is {}", o.accuracy);
                    Ok(Outcome::Evaluated {
                        model: model.to_string(),
                        index: n,
                        eval_seed,
                        accuracy: o.accuracy,
                        final_train_loss: o.final_train_loss,
                    })
                })();
                match result.and_then(|outcome| {
                    let accuracy = match &outcome {
                        Outcome::Evaluated { accuracy, .. } => *accuracy,
                        _ => f64::NAN,
                    };
                    self.record(&unit, key.clone(), started.elapsed().as_secs_f64(), outcome)?;
                    Ok(accuracy)
                }) {
                    Ok(accuracy) => {
                        summary.ran += 1;
                        self.note(format!("{name}: {model} #{n}: {:.2}% ({:.1} s)", 100.0 * accuracy, started.elapsed().as_secs_f64()));
                    }
                    Err(e) => fail(&mut summary, &format!("evaluate {model} #{n}"), key, e),
                }
            }
        }
        summary
    }

    fn condense(&self, cell: &Cell, job: &Job, seed: u64, device: usize, name: &str) -> Result<(Outcome, f64)> {
        let started = Instant::now();
        let mut exp = cell.experiment.clone();
        exp.condense.seed = seed;
        let folder = PathBuf::from("cells").join(cell.folder()).join(format!("e{}", job.experiment));
        let bar = self.progress.add(self.global.progress(exp.condense.iterations as u64, "condense"));
        bar.set_message(name.to_string());
        let condensed = condense_into(
            &self.store.join(&folder),
            &exp,
            &self.datasets[&exp.dataset],
            &self.devices[device],
            &self.plugins,
            &mut |entry| {
                bar.set_position(entry.iteration as u64 + 1);
            },
        );
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
        self.note(format!("{name}: condensed, {losses}, {:.3} s per iteration{resumed}", condensed.outcome.seconds_per_iteration));
        let outcome = Outcome::Condensed {
            seconds_per_iteration: condensed.outcome.seconds_per_iteration,
            losses: condensed.log.iter().map(|l| l.loss).collect(),
            inner_epochs: condensed.log.iter().map(|l| l.inner_epochs.iter().sum()).collect(),
            set: folder.join("synthetic.safetensors"),
            grid_image: folder.join("synthetic.png"),
        };
        Ok((outcome, started.elapsed().as_secs_f64()))
    }
}
