use super::baseline::device_name;
use super::{evaluate_set, print_accuracies, write_json, Global, ModelAccuracy};
use crate::experiment::{Experiment, PluginSpec};
use anyhow::{Context, Result};
use candle_core::DType;
use candle_core::Device;
use gradmatch_data::Dataset;
use gradmatch_data::DatasetName;
use gradmatch_engine::{condense, CondenseOutcome, DeviceData, Init, IterationLog, Method, RunContext};
use gradmatch_models::ModelSpec;
use gradmatch_plugins::Plugins;
use serde::Serialize;
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(clap::Args)]
pub struct Args {
    /// TOML experiment file (see experiments/); flags below override its fields.
    #[arg(long)]
    config: Option<PathBuf>,
    #[arg(long)]
    dataset: Option<DatasetName>,
    #[arg(long)]
    ipc: Option<usize>,
    #[arg(long)]
    model: Option<ModelSpec>,
    /// Gradient level by name (`gradmatch plugins` lists them).
    #[arg(long)]
    level: Option<String>,
    #[arg(long)]
    distance: Option<String>,
    #[arg(long)]
    steps: Option<String>,
    #[arg(long)]
    iterations: Option<usize>,
    #[arg(long, value_parser = ["noise", "real"])]
    init: Option<String>,
    #[arg(long)]
    seed: Option<u64>,
    #[arg(long)]
    num_eval: Option<usize>,
    /// Evaluation epochs.
    #[arg(long)]
    epochs: Option<usize>,
    /// Output folder (default runs/<experiment>); a run resumes from the checkpoint found there.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Write a machine-readable summary here (also written to <out>/summary.json).
    #[arg(long)]
    json: Option<PathBuf>,
}

#[derive(Serialize)]
struct Summary<'a> {
    command: &'static str,
    experiment: &'a Experiment,
    device: String,
    seconds_per_iteration: f64,
    resumed_from: usize,
    final_loss: Option<f64>,
    initial_loss: Option<f64>,
    evaluations: &'a [ModelAccuracy],
    synthetic_set: PathBuf,
    seconds: f64,
    version: &'static str,
}

fn override_plugin(slot: &mut PluginSpec, name: Option<String>) {
    if let Some(name) = name {
        *slot = PluginSpec::named(&name);
    }
}

pub fn run(global: &Global, args: Args) -> Result<()> {
    let started = std::time::Instant::now();
    let mut exp = match &args.config {
        Some(path) => Experiment::from_file(path)?,
        None => Experiment::dc(args.dataset.unwrap_or(DatasetName::Mnist)),
    };
    if let Some(d) = args.dataset {
        exp.dataset = d;
    }
    if let Some(m) = args.model {
        exp.model = m;
    }
    override_plugin(&mut exp.level, args.level);
    override_plugin(&mut exp.distance, args.distance);
    override_plugin(&mut exp.steps, args.steps);
    let c = &mut exp.condense;
    c.ipc = args.ipc.unwrap_or(c.ipc);
    c.iterations = args.iterations.unwrap_or(c.iterations);
    c.seed = args.seed.unwrap_or(c.seed);
    if let Some(init) = args.init {
        c.init = if init == "real" { Init::Real } else { Init::Noise };
    }
    exp.evaluation.num_eval = args.num_eval.unwrap_or(exp.evaluation.num_eval);
    exp.evaluation.epochs = args.epochs.unwrap_or(exp.evaluation.epochs);
    let plugins = Plugins::builtin();
    exp.validate(&plugins)?;

    let out = args.out.clone().unwrap_or_else(|| {
        let stem = args.config.as_ref().and_then(|p| p.file_stem()).map(|s| s.to_string_lossy().to_string());
        PathBuf::from("runs").join(stem.unwrap_or_else(|| exp.slug()))
    });
    let device = global.device()?;
    let ds = global.load(exp.dataset)?;
    println!(
        "condensing {} ipc {} with {} / {} / {} on {} ({}), {} iterations -> {}",
        exp.dataset,
        exp.condense.ipc,
        exp.level.name,
        exp.distance.name,
        exp.steps.name,
        exp.model,
        device_name(&device),
        exp.condense.iterations,
        out.display()
    );
    let bar = global.progress(exp.condense.iterations as u64, "condense");
    let condensed = condense_into(&out, &exp, &ds, &device, &plugins, &mut |entry| {
        bar.set_position(entry.iteration as u64 + 1);
        bar.set_message(format!("loss {:.4}", entry.loss));
        if global.quiet && (entry.iteration % 10 == 0 || entry.iteration + 1 == exp.condense.iterations) {
            eprintln!(
                "iteration {}: loss {:.4}, inner epochs {:?}, {:.2} s",
                entry.iteration, entry.loss, entry.inner_epochs, entry.seconds
            );
        }
    })?;
    bar.finish_and_clear();
    let outcome = &condensed.outcome;
    if outcome.resumed_from > 0 {
        println!("resumed from the checkpoint at iteration {}", outcome.resumed_from);
    }
    println!("{:.3} s per outer iteration", outcome.seconds_per_iteration);
    println!("saved {} and synthetic.png", condensed.set_path.display());

    let test = DeviceData::new(&ds.test, ds.shape(), DType::F32, &device)?;
    let evaluations = evaluate_set(
        global,
        &ds,
        &test,
        (&outcome.set.images, &outcome.set.labels),
        &exp.eval_models(),
        &exp.evaluation,
        exp.condense.seed,
    )?;
    print_accuracies(&evaluations);
    let summary = Summary {
        command: "condense",
        experiment: &exp,
        device: device_name(&device),
        seconds_per_iteration: outcome.seconds_per_iteration,
        resumed_from: outcome.resumed_from,
        initial_loss: condensed.log.first().map(|l| l.loss),
        final_loss: condensed.log.last().map(|l| l.loss),
        evaluations: &evaluations,
        synthetic_set: condensed.set_path.clone(),
        seconds: started.elapsed().as_secs_f64(),
        version: gradmatch_engine::VERSION,
    };
    write_json(&out.join("summary.json"), &summary)?;
    if let Some(path) = &args.json {
        write_json(path, &summary)?;
    }
    Ok(())
}

/// A finished condensation in its folder.
pub struct Condensed {
    pub outcome: CondenseOutcome,
    /// Every iteration's log entry from the start, across resumes (from `log.jsonl`).
    pub log: Vec<IterationLog>,
    pub set_path: PathBuf,
}

/// Condenses `exp` into `out`: resumes from `out/checkpoint.safetensors` when present, appends each
/// iteration to `out/log.jsonl`, and saves `synthetic.safetensors` and `synthetic.png` there.
pub fn condense_into(
    out: &Path,
    exp: &Experiment,
    ds: &Dataset,
    device: &Device,
    plugins: &Plugins,
    on_iteration: &mut dyn FnMut(&IterationLog),
) -> Result<Condensed> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let level = plugins.levels.build(&exp.level.name, &exp.level.options)?;
    let distance = plugins.distances.build(&exp.distance.name, &exp.distance.options)?;
    let steps = plugins.steps.build(&exp.steps.name, &exp.steps.options)?;
    let method = Method { level: level.as_ref(), distance: distance.as_ref(), steps: steps.as_ref() };
    let mut metadata = HashMap::new();
    metadata.insert("method".to_string(), serde_json::to_string(&(&exp.level, &exp.distance, &exp.steps))?);
    let checkpoint = out.join("checkpoint.safetensors");
    let run = RunContext { dataset: ds, model: &exp.model, device, dtype: DType::F32, checkpoint: Some(&checkpoint), metadata };

    let log_path = out.join("log.jsonl");
    let mut log_file = crate::ablate::store::open_for_append(&log_path)?;
    let mut write_error = None;
    let mut record = |entry: &IterationLog| {
        on_iteration(entry);
        if let Err(e) = writeln!(log_file, "{}", serde_json::to_string(entry).expect("log entry serialises")) {
            write_error.get_or_insert(e);
        }
    };
    let outcome = condense(&run, method, &exp.condense, &mut record)?;
    if let Some(e) = write_error {
        return Err(e).with_context(|| format!("writing {}", log_path.display()));
    }
    let set_path = out.join("synthetic.safetensors");
    outcome.set.save(&set_path)?;
    outcome.set.save_grid(&out.join("synthetic.png"), ds.mean(), ds.std(), ds.num_classes(), 4)?;
    let log = read_log(&log_path, exp.condense.iterations)?;
    Ok(Condensed { outcome, log, set_path })
}

/// The log of a (possibly resumed) run: a kill after a checkpoint repeats some iterations, so the
/// last entry of each iteration wins (resumed runs recompute them identically).
fn read_log(path: &Path, iterations: usize) -> Result<Vec<IterationLog>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut by_iteration: Vec<Option<IterationLog>> = vec![None; iterations];
    // A partial last line is what a kill leaves; any complete line must parse.
    let complete = &text[..text.rfind('\n').map_or(0, |i| i + 1)];
    for (n, line) in complete.lines().enumerate() {
        let entry: IterationLog =
            serde_json::from_str(line).with_context(|| format!("{} line {}: corrupt log entry", path.display(), n + 1))?;
        if let Some(slot) = by_iteration.get_mut(entry.iteration) {
            *slot = Some(entry);
        }
    }
    Ok(by_iteration.into_iter().flatten().collect())
}
