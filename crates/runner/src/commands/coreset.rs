//! `gradmatch coreset`: real images chosen by a selection (random, herding, k-center, forgetting),
//! written as a set file like any condensed set and evaluated under a recipe. Features and
//! forgetting counts come from a network trained on the whole training split, kept as
//! `train-real` keeps it (trained once, found again).

use super::{print_accuracies, write_json, RecipeArgs};
use crate::coresets::{self, WholeSplit};
use crate::experiment::EvalAugmentations;
use crate::global::{device_name, Global};
use crate::pipeline::{Evaluator, ImageSet, ModelAccuracy};
use crate::set_files::{self, Normalisation};
use anyhow::{Context, Result};
use candle_core::DType;
use gradmatch_data::DatasetName;
use gradmatch_engine::{derive_seed, stream, DeviceData, EvalConfig};
use gradmatch_models::ModelSpec;
use gradmatch_plugins::OptionTable;
use serde::Serialize;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// The selection (`gradmatch plugins` lists them): random, herding, k-center, forgetting.
    #[arg(long, default_value = "herding")]
    method: String,
    #[arg(long, default_value = "mnist")]
    dataset: DatasetName,
    /// Images per class.
    #[arg(long, default_value_t = 10)]
    ipc: usize,
    /// The network whose features and forgetting counts the selection reads; the coreset is
    /// evaluated with it too.
    #[arg(long, default_value = "ConvNet")]
    model: ModelSpec,
    /// Epochs of that network on the whole training split (lr 0.01, no augmentation), kept in
    /// `--networks` as `train-real` keeps it.
    #[arg(long, default_value_t = 5)]
    feature_epochs: usize,
    /// Train the feature network on, and select among, the first N training images only (quick checks).
    #[arg(long)]
    train_limit: Option<usize>,
    #[arg(long, default_value = "runs/train-real")]
    networks: PathBuf,
    /// The coreset's evaluation recipe (default: the `dc` protocol, 5 networks).
    #[command(flatten)]
    recipe: RecipeArgs,
    /// Test on the first N test images only (quick checks).
    #[arg(long)]
    test_limit: Option<usize>,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Output folder (default runs/coreset-<method>-<dataset>-ipc<ipc>): `synthetic.safetensors`, `synthetic.png`.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Also save the set with its images in another tool's normalisation (as `condense --export-for`):
    /// <out>/synthetic.<tool>.safetensors.
    #[arg(long)]
    export_for: Option<Normalisation>,
    /// Write a machine-readable summary here.
    #[arg(long)]
    json: Option<PathBuf>,
}

#[derive(Serialize)]
struct Summary<'a> {
    command: &'static str,
    method: &'a str,
    dataset: DatasetName,
    ipc: usize,
    /// The chosen training-split indices, class by class.
    indices: &'a [Vec<usize>],
    feature_network: PathBuf,
    results: &'a [ModelAccuracy],
    device: String,
    version: &'static str,
}

pub fn run(global: &Global, args: Args) -> Result<()> {
    let plugins = &global.plugins;
    let selection = plugins.selections.build(&args.method, &OptionTable::new()).context("--method")?;
    let mut cfg = args.recipe.apply(&EvalConfig { test_limit: args.test_limit, ..EvalConfig::default() });
    cfg.num_eval = args.recipe.num_eval.unwrap_or(5);
    cfg.check()?;
    let device = global.device()?;
    let ds = global.load(args.dataset)?;
    let test = DeviceData::new(&ds.test, ds.shape(), DType::F32, &device)?;

    let features_cfg = coresets::feature_training(args.feature_epochs, args.test_limit);
    let features_recipe = features_cfg.resolve(args.dataset, &args.model);
    let images = args.train_limit.unwrap_or(ds.train.len()).min(ds.train.len());
    let whole = WholeSplit {
        dataset: &ds,
        model: &args.model,
        cfg: &features_cfg,
        recipe: &features_recipe,
        augment: &gradmatch_augment::NoAugmentation,
        images,
        seed: args.seed,
        out: &args.networks,
    };
    let subsets = derive_seed(args.seed, stream::BASELINE_SUBSET, 0);
    let (chosen, mut set) = coresets::select(selection.as_ref(), &whole, &device, &test, args.ipc, subsets)
        .with_context(|| format!("--method {}", args.method))?;
    set.metadata.insert("coreset".into(), args.method.clone());
    let out = args.out.clone().unwrap_or_else(|| PathBuf::from(format!("runs/coreset-{}-{}-ipc{}", args.method, args.dataset, args.ipc)));
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    set.save(&out.join("synthetic.safetensors"))?;
    set.save_grid(&out.join("synthetic.png"), ds.mean(), ds.std(), ds.num_classes(), 4)?;
    if let Some(tool) = args.export_for {
        let path = out.join(format!("synthetic.{tool}.safetensors"));
        set_files::export_for(&set, args.dataset, tool, &path)?;
        println!("saved {} with its images in {}", path.display(), tool.describe(args.dataset));
    }

    let augmentations = EvalAugmentations::of(&[cfg.resolve(args.dataset, &args.model)], plugins)?;
    let evaluator = Evaluator::new(global, &ds, &device, &cfg, &augmentations)?;
    // Its networks are seeded as the Random baseline's first subset's: a coreset of `random` is that subset.
    let seed = derive_seed(args.seed, stream::BASELINE_EVALUATION, 0);
    let results = evaluator.evaluate_set(&ImageSet { images: &set.images, labels: &set.labels, seed }, &[args.model])?;
    println!("coreset `{}`: {} ipc {} -> {}", args.method, args.dataset, args.ipc, out.display());
    print_accuracies(&results);
    if let Some(path) = &args.json {
        let (method, feature_network) = (args.method.as_str(), whole.folder().join("network-0.safetensors"));
        let (device, version) = (device_name(&device), gradmatch_engine::VERSION);
        let summary = Summary {
            command: "coreset",
            method,
            dataset: args.dataset,
            ipc: args.ipc,
            indices: &chosen,
            feature_network,
            results: &results,
            device,
            version,
        };
        write_json(path, &summary)?;
    }
    Ok(())
}
