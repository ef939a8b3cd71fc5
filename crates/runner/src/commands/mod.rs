pub mod ablate;
pub mod baseline;
pub mod bench;
pub mod condense;
pub mod data;
pub mod device_check;
pub mod evaluate;
pub mod report;

use anyhow::{Context, Result};
use candle_core::{DType, Device, Tensor};
use gradmatch_data::{Dataset, DatasetName};
use gradmatch_engine::{evaluate, DeviceData, EvalConfig};
use gradmatch_models::ModelSpec;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use std::path::{Path, PathBuf};

use crate::stats::mean_std;

pub struct Global {
    pub data_dir: PathBuf,
    pub device: String,
    pub quiet: bool,
}

impl Global {
    pub fn device(&self) -> Result<Device> {
        gradmatch_engine::select_device(&self.device).with_context(|| format!("--device {}", self.device))
    }

    pub fn load(&self, name: DatasetName) -> Result<Dataset> {
        Ok(gradmatch_data::load(name, &self.data_dir)?)
    }

    pub fn progress(&self, len: u64, what: &str) -> ProgressBar {
        if self.quiet {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::new(len);
        bar.set_style(
            ProgressStyle::with_template("{prefix:>12} [{bar:30}] {pos}/{len} {msg} ({per_sec}, eta {eta})")
                .expect("static template")
                .progress_chars("=> "),
        );
        bar.set_prefix(what.to_string());
        bar
    }
}

/// Accuracies of `num_eval` networks per model trained on one image set.
#[derive(Debug, Clone, Serialize)]
pub struct ModelAccuracy {
    pub model: String,
    pub parameters: usize,
    pub accuracies: Vec<f64>,
    pub mean: f64,
    pub std: f64,
    pub seconds_per_evaluation: f64,
}

/// Seed of evaluation network `index` of an image set made with `set_seed` (shared by every command,
/// so that the same set gets the same evaluation networks everywhere).
pub fn eval_seed(set_seed: u64, index: usize) -> u64 {
    gradmatch_engine::derive_seed(set_seed, gradmatch_engine::stream::SET_EVALUATION, index as u64)
}

/// Runs the protocol `num_eval` times for each model on `(images, labels)`.
pub fn evaluate_set(
    global: &Global,
    dataset: &Dataset,
    test: &DeviceData,
    (images, labels): (&Tensor, &[u32]),
    models: &[ModelSpec],
    cfg: &EvalConfig,
    seed: u64,
) -> Result<Vec<ModelAccuracy>> {
    let mut out = Vec::new();
    for spec in models {
        let bar = global.progress(cfg.num_eval as u64, "evaluate");
        bar.set_message(spec.to_string());
        let mut accuracies = Vec::new();
        let started = std::time::Instant::now();
        for e in 0..cfg.num_eval {
            let outcome = evaluate(spec, images, labels, test, dataset.num_classes(), cfg, eval_seed(seed, e))
                .with_context(|| format!("evaluating {spec}, network {e}"))?;
            accuracies.push(outcome.accuracy);
            if global.quiet {
                eprintln!(
                    "evaluate {spec} #{e}: accuracy {:.2}% ({:.1} s)",
                    100.0 * outcome.accuracy,
                    outcome.train_seconds + outcome.test_seconds
                );
            }
            bar.inc(1);
        }
        bar.finish_and_clear();
        let (mean, std) = mean_std(&accuracies);
        let parameters =
            gradmatch_models::Network::new(spec, dataset.shape(), dataset.num_classes(), 0, DType::F32, &Device::Cpu)?.num_params();
        out.push(ModelAccuracy {
            model: spec.to_string(),
            parameters,
            accuracies,
            mean,
            std,
            seconds_per_evaluation: started.elapsed().as_secs_f64() / cfg.num_eval as f64,
        });
    }
    Ok(out)
}

pub fn print_accuracies(results: &[ModelAccuracy]) {
    for r in results {
        println!(
            "{:<14} accuracy {:.2} +- {:.2} % over {} networks ({:.1} s per evaluation)",
            r.model,
            100.0 * r.mean,
            100.0 * r.std,
            r.accuracies.len(),
            r.seconds_per_evaluation
        );
    }
}

pub fn write_json(path: &Path, value: &impl Serialize) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(path, serde_json::to_string_pretty(value)? + "\n").with_context(|| format!("writing {}", path.display()))
}
