//! `gradmatch train-real`: networks trained on the whole training split under a recipe, the "whole
//! dataset" column of DC's table. Each trained network is kept, named by what made it, and reused
//! instead of trained again (the feature extractor of coreset selections, too).

use super::{write_json, RecipeArgs};
use crate::coresets::WholeSplit;
use crate::experiment::EvalAugmentations;
use crate::global::{device_name, Global};
use crate::stats::{Estimate, Over};
use anyhow::Result;
use candle_core::DType;
use gradmatch_data::DatasetName;
use gradmatch_engine::{DeviceData, EvalConfig, Recipe};
use gradmatch_models::ModelSpec;
use serde::Serialize;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    #[arg(long, default_value = "mnist")]
    dataset: DatasetName,
    #[arg(long, default_value = "ConvNet")]
    model: ModelSpec,
    /// The recipe, `--epochs` required (one epoch of MNIST's 60,000 images through ConvNet-3 takes
    /// minutes on 2 CPU cores; the protocols' hundreds are meant for sets of a few images);
    /// default 1 network.
    #[command(flatten)]
    recipe: RecipeArgs,
    /// Train on the first N training images only (quick checks).
    #[arg(long)]
    train_limit: Option<usize>,
    /// Test on the first N test images only (quick checks).
    #[arg(long)]
    test_limit: Option<usize>,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Where trained networks are kept and found: DIR/<dataset>-<model>-<key>/network-<n>.safetensors,
    /// the key naming the recipe, the training images and the seed.
    #[arg(long, default_value = "runs/train-real")]
    out: PathBuf,
    /// Write a machine-readable summary here.
    #[arg(long)]
    json: Option<PathBuf>,
}

#[derive(Serialize)]
struct Summary<'a> {
    command: &'static str,
    dataset: DatasetName,
    model: String,
    recipe: &'a Recipe,
    train_images: usize,
    accuracies: Vec<f64>,
    #[serde(flatten)]
    estimate: Estimate,
    networks: Vec<PathBuf>,
    device: String,
    version: &'static str,
}

pub fn run(global: &Global, args: Args) -> Result<()> {
    let mut cfg = args.recipe.apply(&EvalConfig { test_limit: args.test_limit, ..EvalConfig::default() });
    cfg.num_eval = args.recipe.num_eval.unwrap_or(1);
    cfg.check()?;
    anyhow::ensure!(
        args.recipe.epochs.is_some(),
        "train-real needs --epochs: the protocols' epochs (300 to 1000) are meant for a few images per class, and one epoch of \
         the whole training split takes minutes on a CPU"
    );
    let recipe = cfg.resolve(args.dataset, &args.model);
    let device = global.device()?;
    let ds = global.load(args.dataset)?;
    let test = DeviceData::new(&ds.test, ds.shape(), DType::F32, &device)?;
    let augmentations = EvalAugmentations::of(std::slice::from_ref(&recipe), &global.plugins)?;
    let images = args.train_limit.unwrap_or(ds.train.len()).min(ds.train.len());
    let whole = WholeSplit {
        dataset: &ds,
        model: &args.model,
        cfg: &cfg,
        recipe: &recipe,
        augment: augmentations.of_recipe(&recipe)?,
        images,
        seed: args.seed,
        out: &args.out,
    };
    println!("train-real: {} on {images} {} training images, {recipe} -> {}", args.model, args.dataset, whole.folder().display());
    let (mut accuracies, mut networks) = (Vec::new(), Vec::new());
    for index in 0..cfg.num_eval {
        let (_, kept, now) = whole.network(index, &device, &test)?;
        let how = if now { "trained" } else { "kept, trained" };
        println!("network {index}: {:.2} % ({how} in {:.1} s on {})", 100.0 * kept.accuracy, kept.train_seconds, kept.machine);
        accuracies.push(kept.accuracy);
        networks.push(whole.folder().join(format!("network-{index}.safetensors")));
    }
    let estimate = Estimate::of(&accuracies, Over::one_set(accuracies.len()));
    println!("{:<14} accuracy {}, {recipe}, {images} training images", args.model.to_string(), estimate.percent());
    if let Some(path) = &args.json {
        let (model, device, version) = (args.model.to_string(), device_name(&device), gradmatch_engine::VERSION);
        let (dataset, train_images) = (args.dataset, images);
        let summary = Summary {
            command: "train-real",
            dataset,
            model,
            recipe: &recipe,
            train_images,
            accuracies,
            estimate,
            networks,
            device,
            version,
        };
        write_json(path, &summary)?;
    }
    Ok(())
}
