use super::kind_flags::KindFlags;
use super::{method_line, print_accuracies, write_json, RecipeArgs};
use crate::experiment::{in_file, Experiment, Resolved};
use crate::global::{device_name, Global};
use crate::pipeline::{self, condense_into, CondenseJob, CondensedFolder, Evaluator, ImageSet, ModelAccuracy};
use crate::set_files::{self, Normalisation};
use anyhow::Result;
use gradmatch_data::DatasetName;
use gradmatch_engine::{Init, IterationLog};
use gradmatch_models::ModelSpec;
use gradmatch_plugins::Plugins;
use indicatif::ProgressBar;
use serde::Serialize;
use std::path::PathBuf;

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
    #[command(flatten)]
    kinds: KindFlags,
    #[arg(long)]
    iterations: Option<usize>,
    /// `mix`: real images encoded by the parameterisation (IDC's; `real` for pixels); `sampler`: the
    /// real images the sampler chooses, encoded alike.
    #[arg(long, value_parser = super::one_of::<Init>())]
    init: Option<Init>,
    #[arg(long)]
    seed: Option<u64>,
    /// TF32 GEMMs on a GPU (`[condense] tf32`): faster, about 1e-3 relative error per product.
    #[arg(long)]
    tf32: bool,
    #[command(flatten)]
    recipe: RecipeArgs,
    /// Output folder (default runs/<experiment>); a run resumes from the checkpoint found there.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Also save the set with its images in another tool's normalisation, for that tool's code:
    /// <out>/synthetic.<tool>.safetensors (dc: DC/DSA/DM and DC-BENCH; mtt: MTT and DD-Ranking).
    #[arg(long)]
    export_for: Option<Normalisation>,
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

/// The experiment of the file (or DC's defaults) with the flags' overrides, resolved.
fn experiment(args: &Args, plugins: &Plugins) -> Result<Resolved> {
    let (file, mut exp) = match &args.config {
        Some(path) => {
            let (exp, text) = Experiment::read(path)?;
            (Some((path, text, exp.clone())), exp)
        }
        None => (None, Experiment::dc(args.dataset.unwrap_or(DatasetName::Mnist))),
    };
    if let Some(d) = args.dataset {
        exp.dataset = d;
    }
    if let Some(m) = args.model {
        exp.model = m;
    }
    exp.method = args.kinds.apply(&exp.method);
    let c = &mut exp.condense;
    c.ipc = args.ipc.unwrap_or(c.ipc);
    c.iterations = args.iterations.unwrap_or(c.iterations);
    c.seed = args.seed.unwrap_or(c.seed);
    c.tf32 |= args.tf32;
    c.init = args.init.unwrap_or(c.init);
    exp.evaluation = args.recipe.apply(&exp.evaluation);
    let resolved = exp.resolve(plugins).map_err(|flags_or_file| match &file {
        // The file's line when its own fields are at fault, the flags' error otherwise.
        Some((path, text, alone)) => alone.resolve(plugins).err().map_or(flags_or_file, |own| in_file(path, text, own)),
        None => flags_or_file,
    })?;
    let file_name = args.config.as_ref().map_or("the experiment".to_string(), |p| p.display().to_string());
    anyhow::ensure!(
        exp.baseline.is_none(),
        "{file_name}: `baseline` makes a grid cell evaluate a baseline instead of condensing; `condense` condenses: remove the \
         line, or run the Random baseline alone with `gradmatch random-baseline`"
    );
    // A grid may evaluate the initial set as a baseline cell; `condense` promises a condensed one.
    anyhow::ensure!(
        exp.condense.iterations >= 1,
        "[condense] `iterations` = 0 (or --iterations): the saved set would be its initialisation (init = {}), not a condensed set; \
         give --iterations 1 or more (to evaluate initial sets, use `random-baseline` or a grid such as ablations/init-vs-condensed.toml)",
        format!("{:?}", exp.condense.init).to_lowercase()
    );
    Ok(resolved)
}

/// `--out`, else runs/<config file stem>, else runs/<experiment slug>.
fn output_folder(args: &Args, exp: &Experiment) -> PathBuf {
    args.out.clone().unwrap_or_else(|| {
        let stem = args.config.as_ref().and_then(|p| p.file_stem()).map(|s| s.to_string_lossy().to_string());
        PathBuf::from("runs").join(stem.unwrap_or_else(|| exp.slug()))
    })
}

/// Shows each iteration on `bar`, and with `--quiet` prints every tenth and the last one.
fn show_iteration<'a>(global: &'a Global, bar: &'a ProgressBar, iterations: usize) -> impl FnMut(&IterationLog) + 'a {
    move |entry| {
        bar.set_position(entry.iteration as u64 + 1);
        bar.set_message(format!("loss {:.4}", entry.loss));
        if global.quiet && (entry.iteration % 10 == 0 || entry.iteration + 1 == iterations) {
            eprintln!(
                "iteration {}: loss {:.4}, inner epochs {:?}, {:.2} s",
                entry.iteration, entry.loss, entry.inner_epochs, entry.seconds
            );
        }
    }
}

fn print_condensed(condensed: &CondensedFolder) {
    let outcome = &condensed.outcome;
    if outcome.resumed_from > 0 {
        println!("resumed from the checkpoint at iteration {}", outcome.resumed_from);
    }
    println!("{:.3} s per outer iteration", outcome.seconds_per_iteration);
    println!("saved {} and synthetic.png", condensed.set_path.display());
    if let Some(path) = &condensed.decoded_path {
        println!("saved {}: the {} decoded images, as networks see them", path.display(), condensed.decoded.labels.len());
    }
}

pub fn run(global: &Global, args: Args) -> Result<()> {
    let started = std::time::Instant::now();
    let plugins = &global.plugins;
    let resolved = experiment(&args, plugins)?;
    let exp = &resolved.experiment;
    let out = output_folder(&args, exp);
    let device = global.device()?;
    pipeline::predict_passes(&resolved, &device)?;
    let ds = global.load(exp.dataset)?;
    println!(
        "condensing {} ipc {}{} with {} on {} ({}), {} iterations, evaluated under {} -> {}",
        exp.dataset,
        exp.condense.ipc,
        match resolved.method().images_per_class(exp.condense.ipc) {
            n if n == exp.condense.ipc => String::new(),
            n => format!(" ({} stored, {n} images per class as `{}` decodes them)", exp.condense.ipc, exp.method.parameterisation.name),
        },
        method_line(&exp.method),
        exp.model,
        device_name(&device),
        exp.condense.iterations,
        exp.recipes_text(),
        out.display()
    );
    let bar = global.progress(exp.condense.iterations as u64, "condense");
    let job = CondenseJob { resolved: &resolved, dataset: &ds, device: &device, prefixes: &[] };
    let condensed = condense_into(&out, &job, &mut show_iteration(global, &bar, exp.condense.iterations))?;
    bar.finish_and_clear();
    print_condensed(&condensed);
    if let Some(tool) = args.export_for {
        let path = condensed.set_path.with_file_name(format!("synthetic.{tool}.safetensors"));
        set_files::export_for(&condensed.decoded, exp.dataset, tool, &path)?;
        println!("saved {} with its images in {}", path.display(), tool.describe(exp.dataset));
    }

    let outcome = &condensed.outcome;
    let set = ImageSet { images: &condensed.decoded.images, labels: &condensed.decoded.labels, seed: exp.condense.seed };
    let evaluations =
        Evaluator::new(global, &ds, &device, &exp.evaluation, &resolved.evaluation)?.evaluate_set(&set, &exp.eval_models())?;
    print_accuracies(&evaluations);
    let summary = Summary {
        command: "condense",
        experiment: exp,
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
