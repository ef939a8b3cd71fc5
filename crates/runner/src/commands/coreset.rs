//! `gradmatch coreset`: real images chosen by a selection (random, herding, k-center, forgetting),
//! written as a set file like any condensed set and evaluated under a recipe. Features and
//! forgetting counts come from a network trained on the whole training split, kept as
//! `train-real` keeps it (trained once, found again).

use super::train_real::{Kept, WholeSplit};
use super::{print_accuracies, write_json, RecipeArgs};
use crate::experiment::EvalAugmentations;
use crate::global::{device_name, Global};
use crate::pipeline::{Evaluator, ImageSet, ModelAccuracy};
use anyhow::{Context, Result};
use candle_core::{DType, Device, Tensor};
use gradmatch_core::rand::{RngCore, SeedableRng};
use gradmatch_core::SelectContext;
use gradmatch_data::DatasetName;
use gradmatch_engine::{derive_seed, stream, DeviceData, EvalConfig, SyntheticSet};
use gradmatch_models::{Mode, ModelSpec, Network};
use gradmatch_plugins::{OptionTable, Plugins};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use std::collections::HashMap;
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
    let plugins = Plugins::builtin();
    let selection = plugins.selections.build(&args.method, &OptionTable::new()).context("--method")?;
    let mut cfg = args.recipe.apply(&EvalConfig { test_limit: args.test_limit, ..EvalConfig::default() });
    cfg.num_eval = args.recipe.num_eval.unwrap_or(5);
    cfg.check()?;
    let device = global.device()?;
    let ds = global.load(args.dataset)?;
    let test = DeviceData::new(&ds.test, ds.shape(), DType::F32, &device)?;

    let features_cfg = EvalConfig {
        epochs: Some(args.feature_epochs),
        augment: Some("none".into()),
        test_limit: args.test_limit,
        ..EvalConfig::default()
    };
    let features_recipe = features_cfg.resolve(args.dataset, &args.model);
    let none = plugins.evaluation_augmentation("none")?;
    let images = args.train_limit.unwrap_or(ds.train.len()).min(ds.train.len());
    let whole = WholeSplit {
        dataset: &ds,
        model: &args.model,
        cfg: &features_cfg,
        recipe: &features_recipe,
        augment: none.as_ref(),
        images,
        seed: args.seed,
        out: &args.networks,
    };
    let mut ctx = Candidates::new(&whole, &device, &test, derive_seed(args.seed, stream::BASELINE_SUBSET, 0));
    let chosen: Vec<Vec<usize>> = (0..ds.num_classes())
        .map(|c| selection.select(&mut ctx, c, args.ipc).with_context(|| format!("--method {}", args.method)))
        .collect::<Result<_>>()?;
    let flat: Vec<usize> = chosen.iter().flatten().copied().collect();
    let train = DeviceData::new(&ds.train, ds.shape(), DType::F32, &device)?;
    let set = coreset_file(&args, &train, &flat, ds.train.gather_labels(&flat), &whole.folder())?;
    let out = args.out.clone().unwrap_or_else(|| PathBuf::from(format!("runs/coreset-{}-{}-ipc{}", args.method, args.dataset, args.ipc)));
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    set.save(&out.join("synthetic.safetensors"))?;
    set.save_grid(&out.join("synthetic.png"), ds.mean(), ds.std(), ds.num_classes(), 4)?;

    let augmentations = EvalAugmentations::of(&[cfg.resolve(args.dataset, &args.model)], &plugins)?;
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

/// The chosen images as a set file, its metadata naming the selection and the feature network.
fn coreset_file(args: &Args, train: &DeviceData, indices: &[usize], labels: Vec<u32>, features: &std::path::Path) -> Result<SyntheticSet> {
    let mut metadata = HashMap::new();
    metadata.insert("dataset".into(), args.dataset.to_string());
    metadata.insert("ipc".into(), args.ipc.to_string());
    metadata.insert("seed".into(), args.seed.to_string());
    metadata.insert("model".into(), args.model.to_string());
    metadata.insert("coreset".into(), args.method.clone());
    metadata.insert("feature_network".into(), features.display().to_string());
    metadata.insert("indices".into(), serde_json::to_string(indices)?);
    Ok(SyntheticSet { images: train.select(indices)?, labels, metadata, momentum: None })
}

/// What a selection sees: the first `images` training images of the whole split, the Random
/// baseline's stream, and, when it asks for them, features and forgetting counts of the kept network
/// (trained on first use: `random` needs none).
struct Candidates<'a> {
    whole: &'a WholeSplit<'a>,
    device: &'a Device,
    test: &'a DeviceData<'a>,
    classes: Vec<Vec<usize>>,
    rng: ChaCha8Rng,
    network: Option<(Network, Kept)>,
}

impl<'a> Candidates<'a> {
    fn new(whole: &'a WholeSplit<'a>, device: &'a Device, test: &'a DeviceData<'a>, seed: u64) -> Self {
        let split = &whole.dataset.train;
        let classes = (0..whole.dataset.num_classes())
            .map(|c| split.class_indices(c).iter().copied().filter(|&i| i < whole.images).collect())
            .collect();
        Candidates { whole, device, test, classes, rng: ChaCha8Rng::seed_from_u64(seed), network: None }
    }

    /// The kept feature network, found or trained on first use.
    fn network(&mut self) -> candle_core::Result<&(Network, Kept)> {
        if self.network.is_none() {
            let (net, kept, _) = self.whole.network(0, self.device, self.test).map_err(|e| candle_core::Error::Msg(format!("{e:#}")))?;
            println!("feature network: {} ({:.2} % on test) in {}", self.whole.model, 100.0 * kept.accuracy, self.whole.folder().display());
            self.network = Some((net, kept));
        }
        Ok(self.network.as_ref().expect("set above"))
    }
}

impl SelectContext for Candidates<'_> {
    fn class_indices(&self, class: usize) -> &[usize] {
        &self.classes[class]
    }

    fn rng(&mut self) -> &mut dyn RngCore {
        &mut self.rng
    }

    fn uniform(&mut self, class: usize, n: usize) -> Vec<usize> {
        let pool = &self.classes[class];
        gradmatch_core::rand::seq::index::sample(&mut self.rng, pool.len(), n.min(pool.len())).into_iter().map(|i| pool[i]).collect()
    }

    fn features(&mut self, indices: &[usize]) -> candle_core::Result<Tensor> {
        let (split, shape, device) = (&self.whole.dataset.train, self.whole.dataset.shape(), self.device.clone());
        let (net, _) = self.network()?;
        let chunks = indices
            .chunks(256)
            .map(|chunk| {
                let x = Tensor::from_vec(split.gather(chunk), (chunk.len(), shape.0, shape.1, shape.2), &device)?;
                net.embed(&x, Mode::Eval)?.flatten_from(1)?.to_dtype(DType::F32)?.to_device(&Device::Cpu)
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        Tensor::cat(&chunks, 0)
    }

    fn forgetting_events(&mut self, indices: &[usize]) -> candle_core::Result<Vec<u32>> {
        let (_, kept) = self.network()?;
        Ok(indices.iter().map(|&i| kept.forgetting_events[i]).collect())
    }
}
