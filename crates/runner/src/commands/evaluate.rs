use super::{print_accuracies, write_json, RecipeArgs};
use crate::experiment::EvalAugmentations;
use crate::global::{device_name, Global};
use crate::pipeline::{Evaluator, ImageSet, ModelAccuracy};
use crate::set_files::{self, LabelledImages, Normalisation};
use crate::stats::Difference;
use anyhow::{bail, Context, Result};
use candle_core::DType;
use gradmatch_data::DatasetName;
use gradmatch_engine::{DeviceData, EvalConfig};
use gradmatch_models::ModelSpec;
use serde::Serialize;
use std::path::{Path, PathBuf};

#[derive(clap::Args)]
pub struct Args {
    /// The set: a safetensors written by `condense` (or any with `images` and `labels`), a DC/DSA/DM
    /// `res_*.pt` (every experiment in it is evaluated) or MTT's `images_best.pt` (or its folder).
    set: PathBuf,
    /// The dataset of the set, required when the file does not name it (plain safetensors, MTT).
    #[arg(long)]
    dataset: Option<DatasetName>,
    /// The tool whose normalisation the images are in, overriding what the format implies (a plain
    /// safetensors: gradmatch's): gradmatch (or jiang), dc (or dsa, dm, dc-bench), mtt (or dd-ranking).
    #[arg(long)]
    normalisation: Option<Normalisation>,
    /// Declares that an MTT set was distilled without MTT's `--zca` (its files do not say; required).
    #[arg(long)]
    not_zca: bool,
    /// Learning rate of the evaluation networks instead of the recipe's (and of MTT's learned `syn_lr`).
    #[arg(long)]
    lr: Option<f64>,
    /// Architectures to evaluate on (repeatable); default ConvNet.
    #[arg(long = "model", default_values = ["ConvNet"])]
    models: Vec<ModelSpec>,
    #[command(flatten)]
    recipe: RecipeArgs,
    /// Also evaluate random real subsets of the same size under the same recipe, and print what the
    /// set gains over them.
    #[arg(long)]
    compare: bool,
    /// Test on the first N test images only (quick checks).
    #[arg(long)]
    test_limit: Option<usize>,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Write a machine-readable summary here.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// One set of the file with its accuracies (and the random subsets' under `--compare`).
#[derive(Serialize)]
struct SetResult {
    name: String,
    images: usize,
    images_per_class: Vec<usize>,
    evaluations: Vec<ModelAccuracy>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    random_subsets: Vec<ModelAccuracy>,
    /// Per model, the set's mean accuracy minus the random subsets' (fractions), with its interval.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    gains_over_random: Vec<Gain>,
}

/// What a set gains over random real subsets of its size on one model: Welch's interval, since the
/// subsets' networks have seeds of their own (`Evaluator::evaluate_random_subsets`), none shared
/// with the set's networks.
#[derive(Serialize)]
struct Gain {
    model: String,
    /// `None` when either side has a single network.
    difference: Option<Difference>,
}

#[derive(Serialize)]
struct Summary<'a> {
    command: &'static str,
    file: &'a Path,
    format: String,
    /// The conversion from the file's normalisation to ours, when one was made.
    #[serde(skip_serializing_if = "Option::is_none")]
    conversion: Option<&'a str>,
    dataset: DatasetName,
    sets: &'a [SetResult],
    evaluation: &'a EvalConfig,
    device: String,
    seconds: f64,
    version: &'static str,
}

pub fn run(global: &Global, args: Args) -> Result<()> {
    let started = std::time::Instant::now();
    let device = global.device()?;
    let declared = set_files::Declared { dataset: args.dataset, normalisation: args.normalisation, not_zca: args.not_zca };
    let (file, dataset) = set_files::read_as_ours(&args.set, set_files::Reader { device: &device, plugins: &global.plugins }, &declared)?;
    let per_class = file.sets.iter().map(|set| check_fits(set, dataset, &file.path)).collect::<Result<Vec<_>>>()?;
    let mut cfg = args.recipe.apply(&EvalConfig { test_limit: args.test_limit, ..EvalConfig::default() });
    let lr_note = learning_rate(&mut cfg, args.lr, file.learning_rate);
    cfg.check()?;
    let ds = global.load(dataset)?;
    let recipes: Vec<_> = args.models.iter().map(|spec| cfg.resolve(dataset, spec)).collect();
    let augmentations = EvalAugmentations::of(&recipes, &global.plugins)?;
    let evaluator = Evaluator::new(global, &ds, &device, &cfg, &augmentations)?;
    let train = if args.compare { Some(DeviceData::new(&ds.train, ds.shape(), DType::F32, &device)?) } else { None };
    println!("{} ({}): {} set(s) of {dataset} on {}", file.path.display(), file.format, file.sets.len(), device_name(&device));
    for note in file.decoding.iter().chain(&file.conversion).chain(&lr_note) {
        println!("{note}");
    }
    let mut results = Vec::new();
    for (set, per_class) in file.sets.iter().zip(per_class) {
        println!("{}: {} images ({:?} per class)", set.name, set.labels.len(), per_class);
        let evaluations = evaluator.evaluate_set(&ImageSet { images: &set.images, labels: &set.labels, seed: args.seed }, &args.models)?;
        print_accuracies(&evaluations);
        let mut random_subsets = Vec::new();
        let mut gains_over_random = Vec::new();
        if let Some(train) = &train {
            for (spec, ours) in args.models.iter().zip(&evaluations) {
                let random = evaluator.evaluate_random_subsets(train, &per_class, spec, args.seed)?;
                gains_over_random.push(compare(ours, &random));
                random_subsets.push(random);
            }
        }
        results.push(SetResult {
            name: set.name.clone(),
            images: set.labels.len(),
            images_per_class: per_class,
            evaluations,
            random_subsets,
            gains_over_random,
        });
    }
    if let Some(path) = &args.json {
        let summary = Summary {
            command: "evaluate",
            file: &file.path,
            format: file.format.to_string(),
            conversion: file.conversion.as_deref(),
            dataset,
            sets: &results,
            evaluation: &cfg,
            device: device_name(&device),
            seconds: started.elapsed().as_secs_f64(),
            version: gradmatch_engine::VERSION,
        };
        write_json(path, &summary)?;
    }
    Ok(())
}

/// The evaluation's learning rate: `--lr`, else the one the set was distilled for (MTT's learned
/// `syn_lr`), else the recipe's; returns what to print when it is not the recipe's.
fn learning_rate(cfg: &mut EvalConfig, flag: Option<f64>, learned: Option<f64>) -> Option<String> {
    let note = match (flag, learned) {
        (Some(lr), Some(l)) => format!("lr {lr}: --lr, instead of MTT's learned syn_lr {l} from lr_best.pt"),
        (Some(lr), None) => format!("lr {lr}: --lr"),
        (None, Some(lr)) => format!("lr {lr}: MTT's learned syn_lr from lr_best.pt"),
        (None, None) => return None,
    };
    cfg.lr = flag.or(learned)?;
    Some(note)
}

/// Images per class of `set`, after checking that its images and labels fit the dataset.
fn check_fits(set: &LabelledImages, ds: DatasetName, path: &Path) -> Result<Vec<usize>> {
    let (_, c, h, w) = set.images.dims4()?;
    let where_ = format!("{}: {}", path.display(), set.name);
    let (ec, eh, ew) = ds.shape();
    anyhow::ensure!((c, h, w) == (ec, eh, ew), "{where_}: images are {c}x{h}x{w}, but {} images are {ec}x{eh}x{ew}", ds);
    gradmatch_engine::check_images(&set.images, &set.labels).with_context(|| where_.clone())?;
    let mut per_class = vec![0; ds.num_classes()];
    for &label in &set.labels {
        match per_class.get_mut(label as usize) {
            Some(count) => *count += 1,
            None => bail!("{where_}: label {label}, but {} has {} classes", ds, ds.num_classes()),
        }
    }
    Ok(per_class)
}

/// `ours` next to the random subsets of the same size and recipe, printed: what the condensation
/// bought, with its interval.
fn compare(ours: &ModelAccuracy, random: &ModelAccuracy) -> Gain {
    let difference = Difference::welch(&ours.accuracies, &random.accuracies);
    let gain = match &difference {
        Some(d) => d.scaled(100.0).to_string(),
        None => format!("{:+.2} points (no CI: one side has 1 network)", 100.0 * (ours.estimate.mean - random.estimate.mean)),
    };
    println!("{:<14} random real subsets of the same size: {}", random.model, random.estimate.percent());
    println!("{:<14} the set's gain over them: {gain}", random.model);
    Gain { model: random.model.clone(), difference }
}
