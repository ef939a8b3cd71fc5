//! `gradmatch train-real`: networks trained on the whole training split under a recipe, the "whole
//! dataset" column of DC's table. Each trained network is kept, named by what made it, and reused
//! instead of trained again (the feature extractor of coreset selections, too).

use super::{write_json, RecipeArgs};
use crate::experiment::EvalAugmentations;
use crate::global::{device_name, machine, Global};
use crate::pipeline::eval_seed;
use crate::provenance::short_key;
use crate::stats::{Estimate, Over};
use anyhow::{Context, Result};
use candle_core::{DType, Device};
use gradmatch_core::Augmentation;
use gradmatch_data::Dataset;
use gradmatch_data::DatasetName;
use gradmatch_engine::{test_accuracy, train_counting_forgetting, DeviceData, EvalConfig, EvalTask, Recipe};
use gradmatch_models::{ModelSpec, Network};
use gradmatch_plugins::Plugins;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

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

/// What makes a trained network: its key names the folder that keeps it.
#[derive(Serialize)]
struct Making<'a> {
    dataset: DatasetName,
    model: &'a ModelSpec,
    recipe: &'a Recipe,
    evaluation: &'a EvalConfig,
    train_images: usize,
    seed: u64,
}

impl Making<'_> {
    fn folder(&self, out: &Path) -> PathBuf {
        let key = short_key(&serde_json::to_string(self).expect("serialises"));
        out.join(format!("{}-{}-{key}", self.dataset, self.model))
    }
}

/// One network as its folder keeps it beside its parameters.
#[derive(Serialize, Deserialize)]
pub struct Kept {
    pub accuracy: f64,
    pub final_train_loss: f64,
    pub train_seconds: f64,
    pub machine: String,
    /// Forgetting events of every training image while it trained, by training-split index.
    pub forgetting_events: Vec<u32>,
}

/// Networks trained on the first `images` training images of a dataset under a recipe, kept in
/// their folder under `out` and found there again.
pub struct WholeSplit<'a> {
    pub dataset: &'a Dataset,
    pub model: &'a ModelSpec,
    pub cfg: &'a EvalConfig,
    pub recipe: &'a Recipe,
    pub augment: &'a dyn Augmentation,
    pub images: usize,
    pub seed: u64,
    pub out: &'a Path,
}

impl WholeSplit<'_> {
    /// Where its networks are kept.
    pub fn folder(&self) -> PathBuf {
        let making = Making {
            dataset: self.dataset.name,
            model: self.model,
            recipe: self.recipe,
            evaluation: self.cfg,
            train_images: self.images,
            seed: self.seed,
        };
        making.folder(self.out)
    }

    /// Network `index`: loaded with its record when kept, else trained (counting forgetting events),
    /// tested and kept; whether it was trained now.
    pub fn network(&self, index: usize, device: &Device, test: &DeviceData) -> Result<(Network, Kept, bool)> {
        let path = self.folder().join(format!("network-{index}.safetensors"));
        let ds = self.dataset;
        if let Some(kept) = read_kept(&path)? {
            let net = Network::new(self.model, ds.shape(), ds.num_classes(), 0, DType::F32, device)?;
            net.load_params(&path)?;
            let accuracy = test_accuracy(&net, test, self.cfg.test_limit)?;
            return Ok((net, Kept { accuracy, ..kept }, false));
        }
        std::fs::create_dir_all(self.folder()).with_context(|| format!("creating {}", self.folder().display()))?;
        let train_split = DeviceData::new(&ds.train, ds.shape(), DType::F32, device)?;
        let (images, labels) = (train_split.rows(0, self.images)?, ds.train.gather_labels(&(0..self.images).collect::<Vec<_>>()));
        let task = EvalTask {
            spec: self.model,
            images: &images,
            labels: &labels,
            test,
            num_classes: ds.num_classes(),
            augment: self.augment,
            seed: eval_seed(self.seed, index),
        };
        let (trained, forgetting_events) = train_counting_forgetting(&task, self.cfg, self.recipe)?;
        let accuracy = test_accuracy(&trained.net, test, self.cfg.test_limit)?;
        trained.net.save(&path)?;
        let kept = Kept {
            accuracy,
            final_train_loss: trained.final_train_loss,
            train_seconds: trained.train_seconds,
            machine: machine(device),
            forgetting_events,
        };
        write_json(&path.with_extension("json"), &kept)?;
        Ok((trained.net, kept, true))
    }
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
    let augmentations = EvalAugmentations::of(std::slice::from_ref(&recipe), &Plugins::builtin())?;
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

/// The record kept beside a trained network's parameters; `None` when the network is not there
/// (or only in part: a kill between the two files trains it again).
fn read_kept(path: &Path) -> Result<Option<Kept>> {
    let record = path.with_extension("json");
    if !path.exists() || !record.exists() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&record).with_context(|| format!("reading {}", record.display()))?;
    Ok(Some(
        serde_json::from_str(&text).with_context(|| format!("{}: not a train-real record (delete it to train again)", record.display()))?,
    ))
}
