pub mod ablate;
pub mod baseline;
pub mod bench;
pub mod condense;
pub mod data;
pub mod device_check;
pub mod evaluate;
pub mod report;

use crate::pipeline::ModelAccuracy;
use anyhow::{Context, Result};
use gradmatch_engine::{EvalConfig, Protocol};
use serde::Serialize;
use std::path::Path;

pub fn print_accuracies(results: &[ModelAccuracy]) {
    for r in results {
        println!("{:<14} accuracy {}, {} ({:.1} s per evaluation)", r.model, r.estimate.percent(), r.recipe, r.seconds_per_evaluation);
    }
}

pub fn write_json(path: &Path, value: &impl Serialize) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(path, serde_json::to_string_pretty(value)? + "\n").with_context(|| format!("writing {}", path.display()))
}

/// The evaluation recipe's flags, shared by every command that evaluates.
#[derive(clap::Args)]
pub struct RecipeArgs {
    /// Evaluation protocol: `dc` (300 epochs, no augmentation, 20 networks) or `dsa` (1000 epochs, DSA
    /// on every training batch, 5 networks); the flags below override its fields.
    #[arg(long)]
    protocol: Option<Protocol>,
    /// Training epochs of each evaluation network (the learning rate drops x0.1 at half of them).
    #[arg(long)]
    epochs: Option<usize>,
    /// Augmentation of every training batch: `none`, `mnist` (the reference's MNIST augmentation) or
    /// a registered augmentation such as `dsa`.
    #[arg(long)]
    eval_augment: Option<String>,
    /// Networks trained per set.
    #[arg(long)]
    pub num_eval: Option<usize>,
}

impl RecipeArgs {
    /// `base` (a file's `[evaluation]`, or the `dc` recipe) with the protocol and the flags applied.
    pub fn apply(&self, base: &EvalConfig) -> EvalConfig {
        let mut cfg = match self.protocol {
            Some(p) => base.with_protocol(p),
            None => base.clone(),
        };
        cfg.epochs = self.epochs.unwrap_or(cfg.epochs);
        cfg.augment = self.eval_augment.clone().unwrap_or(cfg.augment);
        cfg.num_eval = self.num_eval.unwrap_or(cfg.num_eval);
        cfg
    }
}
