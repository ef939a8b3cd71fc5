//! The global command-line options every command shares: where the data is, which device, and
//! whether to draw progress bars.

use anyhow::{Context, Result};
use candle_core::Device;
use gradmatch_data::{Dataset, DatasetName};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::PathBuf;

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

    /// A progress bar of `len` steps labelled `what`; hidden with `--quiet`.
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

/// The device's kind as summaries and records name it.
pub fn device_name(device: &candle_core::Device) -> String {
    match device {
        candle_core::Device::Cpu => "cpu".into(),
        candle_core::Device::Cuda(_) => "cuda".into(),
        candle_core::Device::Metal(_) => "metal".into(),
    }
}
