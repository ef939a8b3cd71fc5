//! `gradmatch device-check`: does the selected device (a GPU) compute what the CPU computes? The
//! matching gradient (through the explicit backward) of every registered gradient level with every
//! registered distance, on the same network, real batches and synthetic images, and the loss curve of
//! a short condensation. The same gradients with TF32 GEMMs on the device are reported beside them
//! (the error TF32 costs; not held to the tolerance).

use super::write_json;
use gradmatch_core::host;

use crate::experiment::Experiment;
use crate::global::{device_name, Global};
use crate::provenance::Provenance;
use anyhow::{Context, Result};
use candle_core::{DType, Device, Tensor};
use gradmatch_data::DatasetName;
use gradmatch_engine::{condense, initial_set, matching_gradient, CondenseConfig, MethodRef, RunContext};
use gradmatch_models::ModelSpec;
use gradmatch_plugins::Plugins;
use serde::Serialize;
use std::path::PathBuf;
use std::time::Instant;

#[derive(clap::Args)]
pub struct Args {
    #[arg(long, default_value = "mnist")]
    dataset: DatasetName,
    #[arg(long, default_value = "ConvNet")]
    model: ModelSpec,
    #[arg(long, default_value_t = 1)]
    ipc: usize,
    /// Real images per class per match.
    #[arg(long, default_value_t = 256)]
    batch_real: usize,
    /// Outer iterations of the condensation whose loss curves are compared.
    #[arg(long, default_value_t = 10)]
    iterations: usize,
    /// Largest relative error accepted (f32 on both sides).
    #[arg(long, default_value_t = 1e-3)]
    tolerance: f64,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[arg(long)]
    json: Option<PathBuf>,
}

#[derive(Serialize)]
struct GradientRow {
    level: String,
    distance: String,
    loss_cpu: f64,
    loss_device: f64,
    relative_error: f64,
    /// The device with TF32 GEMMs against the CPU.
    relative_error_tf32: f64,
    seconds_cpu: f64,
    seconds_device: f64,
    seconds_device_tf32: f64,
}

#[derive(Serialize)]
struct Report {
    device: String,
    model: String,
    ipc: usize,
    batch_real: usize,
    gradients: Vec<GradientRow>,
    losses_cpu: Vec<f64>,
    losses_device: Vec<f64>,
    loss_curve_relative_error: f64,
    tolerance: f64,
}

/// ||a - b|| / ||b||, on the host in f64.
fn relative_error(a: &Tensor, b: &Tensor) -> Result<f64> {
    let a = a.to_device(&Device::Cpu)?.to_dtype(DType::F64)?;
    let b = b.to_device(&Device::Cpu)?.to_dtype(DType::F64)?;
    let diff = host::scalar::<f64>(&(&a - &b)?.sqr()?.sum_all()?)?.sqrt();
    let norm = host::scalar::<f64>(&b.sqr()?.sum_all()?)?.sqrt();
    Ok(diff / norm.max(f64::MIN_POSITIVE))
}

/// The same work on the CPU and on the device under test.
struct Comparison<'a> {
    cpu: RunContext<'a>,
    device: RunContext<'a>,
    cfg: CondenseConfig,
    images: Tensor,
}

impl Comparison<'_> {
    /// The matching loss and gradient of one method on both devices (and with TF32 on the device), timed.
    fn gradient_row(&self, level: &str, distance: &str, method: MethodRef) -> Result<GradientRow> {
        let timed = |run: &RunContext, tf32: bool| -> Result<(f64, Tensor, f64)> {
            let started = Instant::now();
            let cfg = CondenseConfig { tf32, ..self.cfg.clone() };
            let (loss, grad) = matching_gradient(run, method, &cfg, &self.images, 0)?;
            let grad = grad.to_device(&Device::Cpu)?; // waits for the device
            Ok((loss, grad, started.elapsed().as_secs_f64()))
        };
        let (loss_cpu, grad_cpu, seconds_cpu) = timed(&self.cpu, false).with_context(|| format!("{level}/{distance} on cpu"))?;
        let (loss_device, grad_device, seconds_device) =
            timed(&self.device, false).with_context(|| format!("{level}/{distance} on device"))?;
        let (_, grad_tf32, seconds_device_tf32) = timed(&self.device, true).with_context(|| format!("{level}/{distance} with tf32"))?;
        let row = GradientRow {
            level: level.into(),
            distance: distance.into(),
            loss_cpu,
            loss_device,
            relative_error: relative_error(&grad_device, &grad_cpu)?,
            relative_error_tf32: relative_error(&grad_tf32, &grad_cpu)?,
            seconds_cpu,
            seconds_device,
            seconds_device_tf32,
        };
        println!(
            "{:<12} {:<12} {:>14.6} {:>14.6} {:>10.2e} {:>10.2e} {:>8.2} {:>8.2} {:>8.2}",
            row.level,
            row.distance,
            row.loss_cpu,
            row.loss_device,
            row.relative_error,
            row.relative_error_tf32,
            row.seconds_cpu,
            row.seconds_device,
            row.seconds_device_tf32
        );
        Ok(row)
    }

    /// Every registered level with every registered distance.
    fn gradient_rows(&self, plugins: &Plugins, base: MethodRef) -> Result<Vec<GradientRow>> {
        println!(
            "{:<12} {:<12} {:>14} {:>14} {:>10} {:>10} {:>8} {:>8} {:>8}",
            "level", "distance", "loss cpu", "loss device", "rel. err", "err tf32", "s cpu", "s dev", "s tf32"
        );
        let mut rows = Vec::new();
        for (level_name, level) in plugins.method.level.defaults() {
            for (distance_name, distance) in plugins.method.distance.defaults() {
                let method = MethodRef { level: level.as_ref(), distance: distance.as_ref(), ..base.reborrow() };
                rows.push(self.gradient_row(level_name, distance_name, method)?);
            }
        }
        Ok(rows)
    }

    /// The per-iteration losses of a short condensation on both devices, and their largest relative difference.
    fn loss_curves(&self, method: MethodRef) -> Result<(Vec<f64>, Vec<f64>, f64)> {
        let losses = |run: &RunContext| -> Result<Vec<f64>> {
            Ok(condense(run, method, &self.cfg, &mut |_| {})?.log.iter().map(|l| l.loss).collect())
        };
        let (cpu, device) = (losses(&self.cpu)?, losses(&self.device)?);
        let error = cpu.iter().zip(&device).map(|(c, d)| (c - d).abs() / c.abs().max(1e-12)).fold(0.0, f64::max);
        println!("condensation (DC, {} iterations): losses cpu {cpu:.5?}", self.cfg.iterations);
        println!("                                   device {device:.5?}; largest relative difference {error:.2e}");
        Ok((cpu, device, error))
    }
}

pub fn run(global: &Global, args: Args) -> Result<()> {
    let device = global.device()?;
    let ds = global.load(args.dataset)?;
    let plugins = &global.plugins;
    let mut dc = Experiment::dc(args.dataset);
    dc.model = args.model;
    dc.condense =
        CondenseConfig { ipc: args.ipc, batch_real: args.batch_real, iterations: args.iterations, seed: args.seed, ..Default::default() };
    let dc = dc.resolve(plugins)?;
    let identity = Provenance::of(&dc.experiment).condensation().identity();
    let context = |device| RunContext {
        dataset: &ds,
        model: &args.model,
        device,
        dtype: DType::F32,
        checkpoint: None,
        identity: identity.clone(),
        prefixes: &[],
    };
    let (cpu, cfg) = (context(&Device::Cpu), dc.experiment.condense.clone());
    let images = initial_set(&cpu, &cfg, dc.method())?;
    let comparison = Comparison { cpu, device: context(&device), cfg, images };
    let (name, model, dataset) = (device_name(&device), &args.model, args.dataset);
    println!("{name} vs cpu: {model} on {dataset}, ipc {}, {} real images per class, f32", args.ipc, args.batch_real);

    let method = dc.method();
    let rows = comparison.gradient_rows(plugins, method)?;
    let (losses_cpu, losses_device, curve_error) = comparison.loss_curves(method)?;

    let worst = rows.iter().map(|r| r.relative_error).fold(curve_error, f64::max);
    let report = Report {
        device: name,
        model: model.to_string(),
        ipc: args.ipc,
        batch_real: args.batch_real,
        gradients: rows,
        losses_cpu,
        losses_device,
        loss_curve_relative_error: curve_error,
        tolerance: args.tolerance,
    };
    if let Some(path) = &args.json {
        write_json(path, &report)?;
    }
    anyhow::ensure!(
        worst <= args.tolerance,
        "the device disagrees with the CPU: relative error {worst:.2e} > tolerance {:.0e}",
        args.tolerance
    );
    println!("agree within {:.0e} (largest relative error {worst:.2e})", args.tolerance);
    Ok(())
}
