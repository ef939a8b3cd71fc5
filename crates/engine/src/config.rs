//! What a condensation run is configured with and what it gives back: the hyper-parameters (the
//! paper's defaults in one place), the method's plug-ins, the run's context and identity, and its
//! log. The loop (`condense`), the matcher, the pass planner and the synthetic set all read these,
//! and none of them imports another for its types.

use crate::synset::SyntheticSet;
use candle_core::{DType, Device};
use gradmatch_core::Loops;
use gradmatch_data::Dataset;
use gradmatch_models::ModelSpec;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// How the synthetic set starts. Files, `--init` and messages spell it in lowercase.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, strum::Display, strum::EnumString, strum::VariantNames, strum::VariantArray,
)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum Init {
    /// N(0, 1) in normalised space (the reference's default).
    Noise,
    /// Random real images of each class.
    Real,
    /// Random real images of each class, as many as the stored images decode into, encoded into
    /// them by the parameterisation (IDC's `mix`; `real` for pixels).
    Mix,
    /// The real images the sampler chooses (as many as the stored images decode into), through the
    /// network of the first outer iteration, encoded by the parameterisation (DREAM's `kmean`).
    Sampler,
}

/// The hyper-parameters of one condensation run. `Default` holds the paper's values: the one place
/// they are written down; TOML experiment files override them field by field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CondenseConfig {
    pub ipc: usize,
    /// Outer iterations, each with a fresh random network.
    pub iterations: usize,
    pub init: Init,
    /// Image optimiser (SGD); the reference uses 0.01 for MLP.
    pub lr_img: f64,
    pub momentum_img: f64,
    /// Network optimiser between matching steps (SGD).
    pub lr_net: f64,
    pub momentum_net: f64,
    /// Real images per class per match.
    pub batch_real: usize,
    /// Batch size when training the network on the synthetic set.
    pub batch_train: usize,
    /// Real images per class that set batch-norm statistics before matching.
    pub bn_images_per_class: usize,
    /// Classes whose real batches go through the network in one pass (per-class gradients come out
    /// of the same pass): more is faster on a GPU and needs proportionally more memory. `None`: the
    /// device's default (1 on the CPU; on a GPU every class, or as many as its free memory holds).
    /// Results do not depend on it beyond float rounding.
    pub classes_per_pass: Option<usize>,
    /// Most images one pass of the network may hold, on the real and the synthetic side (classes are
    /// split into passes to stay under it). `None`: the most that keeps every tensor of a pass under
    /// 2^31 elements, the index range of candle's CUDA kernels.
    pub max_images_per_pass: Option<usize>,
    /// Let cuBLAS run f32 GEMMs on TF32 tensor cores (PyTorch's cuDNN convolutions do by default):
    /// faster on a GPU, about 1e-3 relative error per product; no effect on the CPU. Process-wide.
    pub tf32: bool,
    /// Matching steps per outer iteration / epochs between them; `None` = the loops table.
    pub outer_loop: Option<usize>,
    pub inner_epochs: Option<usize>,
    /// Write a checkpoint every this many iterations (and at the end).
    pub checkpoint_every: usize,
    pub seed: u64,
}

impl Default for CondenseConfig {
    fn default() -> Self {
        CondenseConfig {
            ipc: 1,
            iterations: 1000,
            init: Init::Noise,
            lr_img: 0.1,
            momentum_img: 0.5,
            lr_net: 0.01,
            momentum_net: 0.5,
            batch_real: 256,
            batch_train: 256,
            bn_images_per_class: 16,
            classes_per_pass: None,
            max_images_per_pass: None,
            tf32: false,
            outer_loop: None,
            inner_epochs: None,
            checkpoint_every: 10,
            seed: 0,
        }
    }
}

impl CondenseConfig {
    pub fn loops(&self) -> Loops {
        let table = Loops::for_ipc(self.ipc);
        Loops { outer: self.outer_loop.unwrap_or(table.outer), inner: self.inner_epochs.unwrap_or(table.inner) }
    }
}

/// The plug-ins of a method, borrowed, as the loop, the matcher and the initialisation take them.
pub type MethodRef<'a> = gradmatch_core::Method<gradmatch_core::Borrowed<'a>>;

/// One line of the per-iteration log.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IterationLog {
    pub iteration: usize,
    /// Matching loss per class per matching step (the reference's `loss_avg`). JSON has no NaN:
    /// a diverged step's loss is written `null` and read back as NaN.
    #[serde(deserialize_with = "nan_when_null")]
    pub loss: f64,
    /// Epochs the step strategy ran after each matching step but the last.
    pub inner_epochs: Vec<usize>,
    pub seconds: f64,
}

fn nan_when_null<'de, D: serde::Deserializer<'de>>(deserializer: D) -> std::result::Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(deserializer)?.unwrap_or(f64::NAN))
}

pub struct CondenseOutcome {
    pub set: SyntheticSet,
    pub log: Vec<IterationLog>,
    /// Iterations already done in the checkpoint this run resumed from (0 for a fresh run).
    pub resumed_from: usize,
    /// Mean wall time of the iterations run in this process.
    pub seconds_per_iteration: f64,
}

/// What a condensation run needs besides its config.
pub struct RunContext<'a> {
    pub dataset: &'a Dataset,
    pub model: &'a ModelSpec,
    pub device: &'a Device,
    pub dtype: DType,
    /// Where to checkpoint (and resume from, when the file exists and belongs to the same run).
    pub checkpoint: Option<&'a Path>,
    /// Which run this is: what its snapshots say they are, and whose checkpoints it resumes.
    pub identity: RunIdentity,
    /// Shorter runs that this one passes through: nothing but the iteration count depends on it, so
    /// the set after `iterations` is theirs, saved as they would save it.
    pub prefixes: &'a [Prefix],
}

/// A run of the same configuration that stops after `iterations`: its identity, and where its set goes.
#[derive(Debug, Clone, PartialEq)]
pub struct Prefix {
    pub iterations: usize,
    pub identity: RunIdentity,
    pub path: PathBuf,
}

/// A run as its caller describes it (the runner derives both from one versioned provenance): a
/// checkpoint is resumed only when it carries the same `key`; `provenance` is written into every
/// snapshot beside it for readers.
#[derive(Debug, Clone, PartialEq)]
pub struct RunIdentity {
    pub key: String,
    pub provenance: String,
}

impl RunIdentity {
    /// The metadata entries of a snapshot that carry the identity.
    pub const KEY: &'static str = "key";
    pub const PROVENANCE: &'static str = "provenance";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_diverged_iteration_reads_back_from_its_log_line() {
        let diverged = IterationLog { iteration: 3, loss: f64::NAN, inner_epochs: vec![1], seconds: 0.5 };
        let line = serde_json::to_string(&diverged).unwrap();
        assert!(line.contains("\"loss\":null"), "{line}");
        let back: IterationLog = serde_json::from_str(&line).unwrap();
        assert!(back.loss.is_nan() && back.iteration == 3 && back.inner_epochs == [1]);
        let finite: IterationLog = serde_json::from_str(r#"{"iteration":0,"loss":2.5,"inner_epochs":[],"seconds":1}"#).unwrap();
        assert_eq!(finite.loss, 2.5);
    }

    #[test]
    fn every_init_reads_back_by_the_name_files_spell() {
        use strum::{VariantArray, VariantNames};
        for (init, name) in <Init as VariantArray>::VARIANTS.iter().zip(<Init as VariantNames>::VARIANTS) {
            assert_eq!(serde_json::to_value(init).unwrap(), *name);
            assert_eq!((init.to_string(), name.parse::<Init>()), (name.to_string(), Ok(*init)));
        }
        assert!("mosaic".parse::<Init>().is_err());
    }
}
