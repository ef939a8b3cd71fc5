use super::{print_accuracies, write_json, RecipeArgs};
use crate::experiment::EvalAugmentations;
use crate::global::{device_name, Global};
use crate::pipeline::{Evaluator, ModelAccuracy};
use anyhow::Result;
use candle_core::DType;
use gradmatch_data::DatasetName;
use gradmatch_engine::{DeviceData, EvalConfig};
use gradmatch_models::ModelSpec;
use serde::Serialize;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    #[arg(long, default_value = "mnist")]
    dataset: DatasetName,
    /// Images per class.
    #[arg(long, default_value_t = 10)]
    ipc: usize,
    #[arg(long, default_value = "ConvNet")]
    model: ModelSpec,
    /// The recipe; each network trains on its own random subset (default 5 networks).
    #[command(flatten)]
    recipe: RecipeArgs,
    /// Test on the first N test images only (quick checks).
    #[arg(long)]
    test_limit: Option<usize>,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Write a machine-readable summary here.
    #[arg(long)]
    json: Option<PathBuf>,
}

#[derive(Serialize)]
struct Summary<'a> {
    command: &'static str,
    dataset: DatasetName,
    ipc: usize,
    #[serde(flatten)]
    result: &'a ModelAccuracy,
    seconds: f64,
    evaluation: &'a EvalConfig,
    device: String,
    version: &'static str,
}

pub fn run(global: &Global, args: Args) -> Result<()> {
    let started = std::time::Instant::now();
    let mut cfg = args.recipe.apply(&EvalConfig { test_limit: args.test_limit, ..EvalConfig::default() });
    // DC's table reports the random baseline over 5 subsets, whatever the protocol's network count.
    cfg.num_eval = args.recipe.num_eval.unwrap_or(5);
    cfg.check()?;
    check_ipc(args.ipc, args.dataset.smallest_class(), args.dataset)?;
    let device = global.device()?;
    let ds = global.load(args.dataset)?;
    check_ipc(args.ipc, ds.train.smallest_class(), args.dataset)?;
    let train = DeviceData::new(&ds.train, ds.shape(), DType::F32, &device)?;
    let augmentations = EvalAugmentations::of(&[cfg.resolve(args.dataset, &args.model)], &global.plugins)?;
    let evaluator = Evaluator::new(global, &ds, &device, &cfg, &augmentations)?;
    let per_class = vec![args.ipc; ds.num_classes()];
    let result = evaluator.evaluate_random_subsets(&train, &per_class, &args.model, args.seed)?;
    println!("random baseline: {} ipc {} on {}", args.dataset, args.ipc, device_name(&device));
    print_accuracies(std::slice::from_ref(&result));
    let seconds = started.elapsed().as_secs_f64();
    println!("total {seconds:.1} s");
    if let Some(path) = &args.json {
        let summary = Summary {
            command: "random-baseline",
            dataset: args.dataset,
            ipc: args.ipc,
            result: &result,
            seconds,
            evaluation: &cfg,
            device: device_name(&device),
            version: gradmatch_engine::VERSION,
        };
        write_json(path, &summary)?;
    }
    Ok(())
}

/// A random subset holds between one image per class and the whole smallest class.
fn check_ipc(ipc: usize, (class, size): (usize, usize), dataset: DatasetName) -> Result<()> {
    anyhow::ensure!(ipc >= 1, "--ipc 0: a random subset needs at least 1 image per class");
    anyhow::ensure!(ipc <= size, "--ipc {ipc}: class {class} of {dataset} has {size} training images; give --ipc {size} or less");
    Ok(())
}
