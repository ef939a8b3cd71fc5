use super::{print_accuracies, write_json};
use crate::global::Global;
use crate::pipeline::{Evaluator, ImageSet};
use anyhow::{Context, Result};
use gradmatch_data::DatasetName;
use gradmatch_engine::{EvalConfig, SyntheticSet};
use gradmatch_models::ModelSpec;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// A synthetic-set file written by `condense`.
    set: PathBuf,
    /// Architectures to evaluate on (repeatable); default ConvNet.
    #[arg(long = "model", default_values = ["ConvNet"])]
    models: Vec<ModelSpec>,
    #[arg(long, default_value_t = 20)]
    num_eval: usize,
    #[arg(long, default_value_t = 300)]
    epochs: usize,
    #[arg(long)]
    augment: bool,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[arg(long)]
    json: Option<PathBuf>,
}

pub fn run(global: &Global, args: Args) -> Result<()> {
    let device = global.device()?;
    let set = SyntheticSet::load(&args.set, &device)?;
    let name: DatasetName = set
        .metadata
        .get("dataset")
        .with_context(|| format!("{}: no `dataset` in the metadata", args.set.display()))?
        .parse()
        .map_err(|e| anyhow::anyhow!("{}: {e}", args.set.display()))?;
    let ds = global.load(name)?;
    let cfg = EvalConfig { epochs: args.epochs, augment: args.augment, num_eval: args.num_eval, ..EvalConfig::default() };
    let evaluator = Evaluator::new(global, &ds, &device, &cfg)?;
    let results = evaluator.evaluate_set(&ImageSet { images: &set.images, labels: &set.labels, seed: args.seed }, &args.models)?;
    print_accuracies(&results);
    if let Some(path) = &args.json {
        write_json(path, &results)?;
    }
    Ok(())
}
