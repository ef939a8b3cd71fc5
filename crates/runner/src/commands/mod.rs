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
use serde::Serialize;
use std::path::Path;

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
