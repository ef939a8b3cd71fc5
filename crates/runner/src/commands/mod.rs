pub mod ablate;
pub mod baseline;
pub mod bench;
pub mod condense;
pub mod coreset;
pub mod data;
pub mod device_check;
pub mod evaluate;
pub mod kind_flags;
pub mod report;
pub mod train_real;

use crate::pipeline::ModelAccuracy;
use anyhow::{Context, Result};
use gradmatch_augment::DcAugmentation;
use gradmatch_engine::{EvalConfig, Protocol, Schedule};
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
    crate::files::write_atomic(path, serde_json::to_string_pretty(value)? + "\n")
}

/// The parser of a flag that takes one of a closed set of names: clap lists them and suggests the
/// closest.
pub fn one_of<T>() -> impl clap::builder::TypedValueParser<Value = T>
where
    T: strum::VariantNames + std::str::FromStr<Err = strum::ParseError> + Clone + Send + Sync + 'static,
{
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(T::VARIANTS).try_map(|name| name.parse::<T>())
}

/// The evaluation recipe's flags, shared by every command that evaluates.
#[derive(clap::Args)]
pub struct RecipeArgs {
    /// Evaluation protocol, as the reference tools run it: `dc` (Jiang et al.'s: per dataset
    /// and model as `get_daparam` chooses, MNIST 1000 epochs of `crop_scale_rotate`, ConvNetBN 1000
    /// of `crop_noise`, otherwise 300 without augmentation; 20 networks), `dsa` (DSA's, DM's, MTT's:
    /// 1000 + 1 epochs of DSA, a fresh optimiser at lr x0.1 after epoch 501; 5 networks) or `idc`
    /// (IDC's and DREAM's: 1000 epochs of batch 64, IDC's DiffAug per image then CutMix p 0.5, lr
    /// x0.2 at epochs 666 and 833; 3 networks); the flags below override its fields.
    #[arg(long, value_parser = one_of::<Protocol>(), ignore_case = true)]
    protocol: Option<Protocol>,
    /// Training epochs of each evaluation network (the learning rate drops x0.1 at half of them).
    #[arg(long)]
    epochs: Option<usize>,
    /// Augmentation of every training batch: `none`, a DC strategy (`crop_scale_rotate` = `mnist`,
    /// `crop_noise`, any `_`-joined subset of crop, scale, rotate, noise) or a registered
    /// augmentation such as `dsa`, with its strategy after a colon if not the default
    /// (`idc:color_crop_scale_rotate`).
    #[arg(long)]
    eval_augment: Option<String>,
    /// How the learning rate drops: `multistep` (Jiang et al.'s: x0.1 at epochs/2, momentum kept),
    /// `restart` (DC's, DSA's, DM's and MTT's code: epochs + 1 epochs, a fresh optimiser at x0.1 after epoch epochs/2 + 1)
    /// or `idc` (IDC's: x0.2 at 2 epochs/3 and again at 5 epochs/6, momentum kept).
    #[arg(long, value_parser = one_of::<Schedule>(), ignore_case = true)]
    schedule: Option<Schedule>,
    /// Networks trained per set.
    #[arg(long)]
    pub num_eval: Option<usize>,
    /// Networks trained at once as one ensemble (default: as many as the memory budget holds, at
    /// most 20; 1 trains them one after the other).
    #[arg(long)]
    networks_at_once: Option<usize>,
}

impl RecipeArgs {
    /// `base` (a file's `[evaluation]`, or the `dc` recipe) with the protocol and the flags applied.
    pub fn apply(&self, base: &EvalConfig) -> EvalConfig {
        let mut cfg = match self.protocol {
            Some(p) => base.with_protocol(p),
            None => base.clone(),
        };
        cfg.epochs = self.epochs.or(cfg.epochs);
        cfg.augment = self.eval_augment.as_deref().map(DcAugmentation::canonical).or(cfg.augment);
        cfg.schedule = self.schedule.or(cfg.schedule);
        cfg.num_eval = self.num_eval.unwrap_or(cfg.num_eval);
        cfg.networks_at_once = self.networks_at_once.or(cfg.networks_at_once);
        cfg
    }
}

/// A method's plug-ins by kind, for the lines that name it: `level intra / distance angle / ...`.
pub fn method_line(method: &crate::provenance::MethodSpec) -> String {
    let kinds = gradmatch_plugins::Specs::each(method);
    kinds.iter().map(|(field, spec)| format!("{field} {}", spec.name)).collect::<Vec<_>>().join(" / ")
}
