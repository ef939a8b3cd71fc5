//! The global command-line options every command shares: where the data is, which device, and
//! whether to draw progress bars.

use anyhow::{Context, Result};
use candle_core::Device;
use gradmatch_data::{Dataset, DatasetName};
use gradmatch_plugins::Plugins;
use indicatif::{ProgressBar, ProgressStyle};
use std::path::PathBuf;

pub struct Global {
    pub data_dir: PathBuf,
    pub device: String,
    pub quiet: bool,
    /// The plug-ins every command builds from and reads by: the built-in ones, or a program's own
    /// ([`crate::run_with`]).
    pub plugins: Plugins,
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
/// What a unit of work runs on, as records and the bench name it: for the CPU its model, cores and
/// the vector extensions the kernels use (a grid resumed across sittings may meet several); the
/// device's kind otherwise.
pub fn machine(device: &candle_core::Device) -> String {
    match device {
        candle_core::Device::Cpu => cpu_model(),
        other => device_name(other),
    }
}

/// The CPU's model name, cores and the vector extensions the kernels can use.
pub fn cpu_model() -> String {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let name = info.lines().find_map(|l| l.strip_prefix("model name")).map(|v| v.trim_start_matches([' ', '\t', ':']).to_string());
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let isa = if cfg!(target_arch = "x86_64") && std::arch::is_x86_feature_detected!("avx512f") {
        "AVX-512"
    } else if cfg!(target_arch = "x86_64") && std::arch::is_x86_feature_detected!("avx2") {
        "AVX2"
    } else {
        "baseline"
    };
    format!("{}, {cores} cores, {isa}", name.unwrap_or_else(|| "unknown CPU".into()))
}

pub fn device_name(device: &candle_core::Device) -> String {
    match device {
        candle_core::Device::Cpu => "cpu".into(),
        candle_core::Device::Cuda(_) => "cuda".into(),
        candle_core::Device::Metal(_) => "metal".into(),
    }
}
