use super::{print_accuracies, write_json};
use crate::global::{device_name, Global};
use crate::pipeline::{Evaluator, ImageSet, ModelAccuracy};
use anyhow::Result;
use candle_core::{DType, Tensor};
use gradmatch_data::{Dataset, DatasetName};
use gradmatch_engine::{derive_seed, stream, DeviceData, EvalConfig};
use gradmatch_models::ModelSpec;
use rand::SeedableRng;
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
    /// Networks (each on its own random subset).
    #[arg(long, default_value_t = 5)]
    num_eval: usize,
    /// Training epochs of the protocol.
    #[arg(long, default_value_t = 300)]
    epochs: usize,
    /// The MNIST augmentation (crop, scale, rotate).
    #[arg(long)]
    augment: bool,
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
    model: String,
    parameters: usize,
    accuracies: &'a [f64],
    mean: f64,
    std: f64,
    seconds: f64,
    seconds_per_evaluation: f64,
    evaluation: &'a EvalConfig,
    device: String,
    version: &'static str,
}

/// Trains `num_eval` networks, each on its own random real subset; returns every accuracy and the
/// result of the last network.
fn evaluate_subsets(args: &Args, ds: &Dataset, train: &DeviceData, evaluator: &Evaluator) -> Result<(Vec<f64>, ModelAccuracy)> {
    let mut accuracies = Vec::new();
    let mut last: Option<ModelAccuracy> = None;
    for e in 0..args.num_eval {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(derive_seed(args.seed, stream::BASELINE_SUBSET, e as u64));
        let idx: Vec<usize> = (0..ds.num_classes()).flat_map(|c| ds.train.sample_class(c, args.ipc, &mut rng)).collect();
        let images: Tensor = train.select(&idx)?;
        let labels = ds.train.gather_labels(&idx);
        let set = ImageSet { images: &images, labels: &labels, seed: derive_seed(args.seed, stream::BASELINE_EVALUATION, e as u64) };
        let r = evaluator.evaluate_set(&set, &[args.model])?;
        accuracies.extend(&r[0].accuracies);
        last = r.into_iter().next();
    }
    Ok((accuracies, last.expect("num_eval >= 1")))
}

pub fn run(global: &Global, args: Args) -> Result<()> {
    let started = std::time::Instant::now();
    let device = global.device()?;
    let ds = global.load(args.dataset)?;
    let train = DeviceData::new(&ds.train, ds.shape(), DType::F32, &device)?;
    let cfg = EvalConfig { epochs: args.epochs, augment: args.augment, test_limit: args.test_limit, num_eval: 1, ..EvalConfig::default() };
    let evaluator = Evaluator::new(global, &ds, &device, &cfg)?;
    let (accuracies, last) = evaluate_subsets(&args, &ds, &train, &evaluator)?;
    let (mean, std) = crate::stats::mean_std(&accuracies);
    let result = ModelAccuracy {
        accuracies: accuracies.clone(),
        mean,
        std,
        seconds_per_evaluation: started.elapsed().as_secs_f64() / args.num_eval.max(1) as f64,
        ..last
    };
    println!("random baseline: {} ipc {} on {}", args.dataset, args.ipc, device_name(&device));
    print_accuracies(std::slice::from_ref(&result));
    let seconds = started.elapsed().as_secs_f64();
    println!("total {seconds:.1} s");
    if let Some(path) = &args.json {
        write_json(
            path,
            &Summary {
                command: "random-baseline",
                dataset: args.dataset,
                ipc: args.ipc,
                model: result.model.clone(),
                parameters: result.parameters,
                accuracies: &accuracies,
                mean,
                std,
                seconds,
                seconds_per_evaluation: result.seconds_per_evaluation,
                evaluation: &cfg,
                device: device_name(&device),
                version: gradmatch_engine::VERSION,
            },
        )?;
    }
    Ok(())
}
