//! `gradmatch bench`: the speed table of the engine at full size (MNIST, ConvNet-3, 256 real images
//! per class), each row in its own process so that its peak memory is its own, next to the PyTorch
//! reference (`../shared/bench/torch_reference.py`) run on the same machine in the same run.

use crate::experiment::{Experiment, PluginSpec};
use crate::global::{cpu_model, Global};
use crate::provenance::Provenance;
use anyhow::{bail, Context, Result};
use candle_core::{DType, Tensor};
use gradmatch_data::DatasetName;
use gradmatch_engine::{condense, evaluate_all, networks_at_once, CondenseConfig, DeviceData, EvalConfig, EvalTask, RealDraws, RunContext};
use gradmatch_models::{Mode, ModelSpec, Network};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use std::path::PathBuf;
use std::process::Command;

#[derive(clap::Args)]
pub struct Args {
    /// A Python with torch: runs the reference on the same work and prints the ratio per row.
    #[arg(long)]
    torch: Option<PathBuf>,
    /// The reference script.
    #[arg(long, default_value = "../shared/bench/torch_reference.py")]
    torch_script: PathBuf,
    /// Rows to run (default: all): dc-1, mda-1, dc-10, mda-10, dream-1, cluster, eval-1, eval-10,
    /// eval20-1, eval20-10.
    #[arg(long, value_delimiter = ',')]
    rows: Vec<String>,
    /// Outer iterations timed per step row at ipc 1 (after one warm-up iteration), ipc-10 rows time
    /// one; the clustering row times this many classes' clusterings (at most 10).
    #[arg(long, default_value_t = 2)]
    iterations: usize,
    /// TF32 GEMMs on a GPU (every row's work; the PyTorch rows are as they are).
    #[arg(long)]
    tf32: bool,
    /// Write the table as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Internal: run one row in this process and print its measurement.
    #[arg(long, hide = true)]
    row: Option<String>,
}

/// One line of the table.
#[derive(Debug, Clone, Copy)]
struct Row {
    name: &'static str,
    what: Work,
    ipc: usize,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Work {
    Step {
        multi_level_combined_adaptive: bool,
        /// The real batches' sampler, with its default options.
        sampler: &'static str,
    },
    /// DREAM's clustering of one class: its 6,000 training images embedded by a fresh ConvNet-3 and
    /// clustered into `batch_real` (256) centres, as `dream` does per class and clustering.
    Clustering,
    /// `networks` evaluations of one set (20: DC's protocol), ensembles against one after the other.
    Evaluation { networks: usize },
}

const DC: Work = Work::Step { multi_level_combined_adaptive: false, sampler: "random" };
const MDA: Work = Work::Step { multi_level_combined_adaptive: true, sampler: "random" };

const ROWS: [Row; 10] = [
    Row { name: "dc-1", what: DC, ipc: 1 },
    Row { name: "mda-1", what: MDA, ipc: 1 },
    Row { name: "dc-10", what: DC, ipc: 10 },
    Row { name: "mda-10", what: MDA, ipc: 10 },
    Row { name: "dream-1", what: Work::Step { multi_level_combined_adaptive: false, sampler: "dream" }, ipc: 1 },
    Row { name: "cluster", what: Work::Clustering, ipc: 1 },
    Row { name: "eval-1", what: Work::Evaluation { networks: 1 }, ipc: 1 },
    Row { name: "eval-10", what: Work::Evaluation { networks: 1 }, ipc: 10 },
    Row { name: "eval20-1", what: Work::Evaluation { networks: 20 }, ipc: 1 },
    Row { name: "eval20-10", what: Work::Evaluation { networks: 20 }, ipc: 10 },
];

impl Row {
    fn describe(&self) -> String {
        match self.what {
            Work::Step { multi_level_combined_adaptive, sampler } => {
                let method = if multi_level_combined_adaptive { "MDA" } else { "DC" };
                let sampler = if sampler == "random" { String::new() } else { format!(", sampler {sampler}") };
                format!("outer iteration, {method}{sampler}, ipc {}", self.ipc)
            }
            Work::Clustering => "DREAM's clustering of one class (6,000 images, 256 centres)".into(),
            Work::Evaluation { networks: 1 } => format!("evaluation, ipc {} (300 epochs + 10,000 test images)", self.ipc),
            Work::Evaluation { networks } => {
                format!("{networks} evaluations of one set, ipc {} (300 epochs + 10,000 test images each)", self.ipc)
            }
        }
    }

    fn timed_iterations(&self, requested: usize) -> usize {
        if self.ipc == 1 {
            requested.max(1)
        } else {
            1
        }
    }

    /// The PyTorch reference's arguments for the same work, when it has it.
    fn torch_args(&self, iterations: usize) -> Option<Vec<String>> {
        let mut args = match self.what {
            Work::Step { multi_level_combined_adaptive, sampler: "random" } => {
                vec!["--what".into(), "step".into(), "--method".into(), if multi_level_combined_adaptive { "mda" } else { "dc" }.into()]
            }
            Work::Evaluation { networks } => {
                vec!["--what".into(), "eval".into(), "--epochs".into(), "300".into(), "--networks".into(), networks.to_string()]
            }
            Work::Step { .. } | Work::Clustering => return None,
        };
        args.extend(["--ipc".into(), self.ipc.to_string(), "--iterations".into(), iterations.to_string()]);
        Some(args)
    }

    /// Where the reference has no counterpart: our row whose time, measured in the same run, this
    /// row's is a ratio to (a sampler's outer iteration against the uniform draws').
    fn own_baseline(&self) -> Option<&'static str> {
        match self.what {
            Work::Step { multi_level_combined_adaptive: false, sampler } if sampler != "random" && self.ipc == 1 => Some("dc-1"),
            Work::Clustering => Some("dc-1"),
            _ => None,
        }
    }
}

/// What one row measured.
#[derive(Debug, Clone, Serialize)]
struct Measured {
    seconds: f64,
    peak_rss_mb: f64,
}

/// Our side of a row: its measurement and the FLOPs of the layers' products in the timed work
/// (counted as they ran: [`gradmatch_core::flops::counted`]).
#[derive(Debug, Clone, Serialize)]
struct Ours {
    #[serde(flatten)]
    measured: Measured,
    gflop: f64,
    /// Seconds over the seconds the counted FLOPs take at the CPU's GEMM peak: 1 is the floor
    /// (`None` on another device, whose peak this bench does not measure).
    floor_ratio: Option<f64>,
}

/// The machine's single-GEMM rate, measured once per bench: the floor's denominator.
#[derive(Debug, Clone, Serialize)]
struct Peak {
    /// What was timed: an f32 GEMM of this side, every core, through candle's `gemm` crate.
    gemm_side: usize,
    gflops: f64,
    cpu: String,
}

#[derive(Serialize)]
struct TableRow {
    row: String,
    work: String,
    gradmatch: Ours,
    torch: Option<Measured>,
    /// Our seconds over the baseline's: PyTorch's on the same work, or, where it has none, our row
    /// `ratio_to`'s.
    ratio: Option<f64>,
    ratio_to: Option<String>,
}

pub fn run(global: &Global, args: Args) -> Result<()> {
    if let Some(name) = &args.row {
        let row = find(name)?;
        let timed = measure(global, row, args.iterations, args.tf32)?;
        println!("GRADMATCH_ROW seconds={:.3} peak_rss_mb={:.0} gflop={:.3}", timed.seconds, peak_rss_mb()?, timed.gflop);
        return Ok(());
    }
    let rows: Vec<Row> = if args.rows.is_empty() { ROWS.to_vec() } else { args.rows.iter().map(|r| find(r)).collect::<Result<_>>()? };
    // The floor is the CPU's: on another device the rows are timed there, and no CPU peak applies.
    let peak = global.device()?.is_cpu().then(|| Peak {
        gemm_side: PEAK_SIDE,
        gflops: gradmatch_models::gemm::peak_gflops(PEAK_SIDE, 5),
        cpu: cpu_model(),
    });
    if let Some(peak) = &peak {
        eprintln!("GEMM peak: {:.1} GFLOP/s (f32 {PEAK_SIDE}^3 through gemm, {})", peak.gflops, peak.cpu);
    }
    let mut table = Vec::new();
    for row in rows {
        let ours = run_ours(global, row, args.iterations, args.tf32, peak.as_ref().map(|p| p.gflops))?;
        let torch = match (&args.torch, row.torch_args(row.timed_iterations(args.iterations))) {
            (Some(python), Some(torch_args)) => Some(run_torch(python, &args.torch_script, &torch_args)?),
            _ => None,
        };
        let own = row.own_baseline().and_then(|name| table.iter().find(|r: &&TableRow| r.row == name));
        let seconds = ours.measured.seconds;
        let (ratio, ratio_to) = match (&torch, own) {
            (Some(t), _) => (Some(seconds / t.seconds), Some("PyTorch".to_string())),
            (None, Some(base)) => (Some(seconds / base.gradmatch.measured.seconds), Some(base.row.clone())),
            (None, None) => (None, None),
        };
        eprintln!(
            "{}: {seconds:.2} s, {:.0} GFLOP, floor ratio {}{}",
            row.name,
            ours.gflop,
            two_places(ours.floor_ratio),
            torch.as_ref().map(|t| format!(" (torch {:.2} s)", t.seconds)).unwrap_or_default()
        );
        table.push(TableRow { row: row.name.into(), work: row.describe(), gradmatch: ours, torch, ratio, ratio_to });
        // After every row: a run stopped by a time limit keeps the rows it finished.
        if let Some(path) = &args.json {
            let json = serde_json::json!({ "peak": &peak, "rows": &table });
            std::fs::write(path, serde_json::to_string_pretty(&json)?).with_context(|| format!("writing {}", path.display()))?;
        }
    }
    print_table(&table, &peak);
    Ok(())
}

/// The square GEMM of the peak: large enough for gemm's blocking to reach its rate (1024: 7 %
/// under 2048 on a 2-core Zen 4), small enough to take a fraction of a second.
const PEAK_SIDE: usize = 2048;

fn find(name: &str) -> Result<Row> {
    match ROWS.iter().find(|r| r.name == name) {
        Some(r) => Ok(*r),
        None => bail!("--rows: unknown row `{name}`; known rows: {}", ROWS.map(|r| r.name).join(", ")),
    }
}

/// `x` to two places, or `-`.
fn two_places(x: Option<f64>) -> String {
    x.map(|x| format!("{x:.2}")).unwrap_or_else(|| "-".into())
}

fn print_table(table: &[TableRow], peak: &Option<Peak>) {
    if let Some(peak) = peak {
        println!("GEMM peak {:.1} GFLOP/s ({}); floor ratio = seconds / (GFLOP / peak)", peak.gflops, peak.cpu);
    }
    println!("| work | gradmatch s | GFLOP | floor ratio | PyTorch s | ratio (to) | gradmatch peak RSS | PyTorch peak RSS |");
    println!("|---|---|---|---|---|---|---|---|");
    for r in table {
        let t = |f: &dyn Fn(&Measured) -> String| r.torch.as_ref().map(f).unwrap_or_else(|| "-".into());
        println!(
            "| {} | {:.2} | {:.0} | {} | {} | {} | {:.0} MB | {} |",
            r.work,
            r.gradmatch.measured.seconds,
            r.gradmatch.gflop,
            two_places(r.gradmatch.floor_ratio),
            t(&|m| format!("{:.2}", m.seconds)),
            r.ratio.map(|x| format!("{x:.2} ({})", r.ratio_to.as_deref().unwrap_or("-"))).unwrap_or_else(|| "-".into()),
            r.gradmatch.measured.peak_rss_mb,
            t(&|m| format!("{:.0} MB", m.peak_rss_mb)),
        );
    }
}

/// Runs `row` in a child process of this binary (its own peak memory).
fn run_ours(global: &Global, row: Row, iterations: usize, tf32: bool, peak_gflops: Option<f64>) -> Result<Ours> {
    let exe = std::env::current_exe().context("locating the gradmatch binary")?;
    let mut cmd = Command::new(exe);
    cmd.arg("--data-dir").arg(&global.data_dir).arg("--device").arg(&global.device).arg("--quiet");
    cmd.args(["bench", "--row", row.name, "--iterations", &iterations.to_string()]);
    if tf32 {
        cmd.arg("--tf32");
    }
    let output = output_of(cmd, "gradmatch bench --row")?;
    let measured = parse_line(&output, "GRADMATCH_ROW")?;
    let gflop = field(&output, "GRADMATCH_ROW", "gflop=")?;
    let floor_ratio = peak_gflops.map(|peak| measured.seconds / (gflop / peak));
    Ok(Ours { measured, gflop, floor_ratio })
}

fn run_torch(python: &PathBuf, script: &PathBuf, torch_args: &[String]) -> Result<Measured> {
    if !script.exists() {
        bail!("--torch-script {}: not found (run from the repository root, or pass the script's path)", script.display())
    }
    let mut cmd = Command::new(python);
    cmd.arg(script).args(torch_args);
    parse_line(&output_of(cmd, "the PyTorch reference")?, "TORCH_REF")
}

fn output_of(mut cmd: Command, what: &str) -> Result<String> {
    let out = cmd.output().with_context(|| format!("starting {what}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        bail!("{what} failed ({}): {}{}", out.status, stdout, String::from_utf8_lossy(&out.stderr))
    }
    Ok(stdout)
}

/// `seconds=` and `peak_rss_mb=` from the line starting with `tag`.
fn parse_line(output: &str, tag: &str) -> Result<Measured> {
    Ok(Measured { seconds: field(output, tag, "seconds=")?, peak_rss_mb: field(output, tag, "peak_rss_mb=")? })
}

/// The number after `key` on the line starting with `tag`.
fn field(output: &str, tag: &str, key: &str) -> Result<f64> {
    let line = output.lines().find(|l| l.starts_with(tag)).with_context(|| format!("no `{tag}` line in:\n{output}"))?;
    let value = line.split_whitespace().find_map(|w| w.strip_prefix(key)).with_context(|| format!("no `{key}` in `{line}`"))?;
    value.parse().with_context(|| format!("`{key}{value}` in `{line}`"))
}

/// Peak resident memory of this process (Linux `VmHWM`).
fn peak_rss_mb() -> Result<f64> {
    let status = std::fs::read_to_string("/proc/self/status").context("reading /proc/self/status")?;
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .context("no VmHWM in /proc/self/status")?;
    Ok(kb / 1024.0)
}

/// The row's timed work in this process: its seconds and the GFLOP its layers' products did.
struct Timed {
    seconds: f64,
    gflop: f64,
}

/// GFLOP counted since `since` (a reading of [`gradmatch_core::flops::counted`]).
fn gflop_since(since: u64) -> f64 {
    (gradmatch_core::flops::counted() - since) as f64 / 1e9
}

/// Seconds of the row's work, measured in this process.
fn measure(global: &Global, row: Row, iterations: usize, tf32: bool) -> Result<Timed> {
    let device = global.device()?;
    gradmatch_engine::set_tf32(tf32);
    let dataset = global.load(DatasetName::Mnist)?;
    let model = ModelSpec::CONVNET;
    match row.what {
        Work::Step { multi_level_combined_adaptive, sampler } => {
            let timed = row.timed_iterations(iterations);
            let mut exp = Experiment::dc(DatasetName::Mnist);
            exp.method.sampler = PluginSpec::named(sampler);
            exp.condense = CondenseConfig { ipc: row.ipc, iterations: timed + 1, tf32, ..CondenseConfig::default() };
            if multi_level_combined_adaptive {
                (exp.method.level, exp.method.distance, exp.method.steps) =
                    (PluginSpec::named("multi-level"), PluginSpec::named("combined"), PluginSpec::named("adaptive"));
            }
            let resolved = exp.resolve(&global.plugins)?;
            let run = RunContext {
                dataset: &dataset,
                model: &model,
                device: &device,
                dtype: DType::F32,
                checkpoint: None,
                identity: Provenance::of(&exp).condensation().identity(),
                prefixes: &[],
            };
            // Steady state: the first iteration (allocator warm-up) is left out, of the FLOPs too.
            let mut after_first = None;
            let outcome = condense(&run, resolved.method(), &exp.condense, &mut |_| {
                after_first.get_or_insert_with(gradmatch_core::flops::counted);
            })?;
            let gflop = gflop_since(after_first.context("condense ran no iteration")?) / timed as f64;
            Ok(Timed { seconds: outcome.log[1..].iter().map(|l| l.seconds).sum::<f64>() / timed as f64, gflop })
        }
        Work::Clustering => {
            let real = DeviceData::new(&dataset.train, dataset.shape(), DType::F32, &device)?;
            let net = Network::new(&model, dataset.shape(), dataset.num_classes(), 0, DType::F32, &device)?;
            let mut exp = Experiment::dc(DatasetName::Mnist);
            exp.method.sampler = PluginSpec::named("dream");
            let resolved = exp.resolve(&global.plugins)?;
            let batch_size = exp.condense.batch_real;
            let mut rng = ChaCha8Rng::seed_from_u64(0);
            let mut ctx =
                RealDraws { real: &real, net: &net, mode: Mode::Train, rng: &mut rng, batch_size, iteration: 0, step: 0, pass: batch_size };
            // One clustering per class, of as many classes as iterations are asked (at most 10).
            let classes = iterations.clamp(1, dataset.num_classes());
            let (started, counted) = (std::time::Instant::now(), gradmatch_core::flops::counted());
            let mut batches = resolved.method().sampler.for_network();
            for class in 0..classes {
                batches.batch(&mut ctx, class)?;
            }
            Ok(Timed { seconds: started.elapsed().as_secs_f64() / classes as f64, gflop: gflop_since(counted) / classes as f64 })
        }
        Work::Evaluation { networks } => {
            let test = DeviceData::new(&dataset.test, dataset.shape(), DType::F32, &device)?;
            let (c, h, w) = dataset.shape();
            let images = Tensor::randn(0f32, 1.0, (10 * row.ipc, c, h, w), &device)?;
            let labels: Vec<u32> = (0..10u32).flat_map(|l| std::iter::repeat_n(l, row.ipc)).collect();
            // The PyTorch reference's row: 300 epochs without augmentation.
            let cfg = EvalConfig { epochs: Some(300), augment: Some("none".into()), num_eval: 1, ..EvalConfig::default() };
            let (started, counted) = (std::time::Instant::now(), gradmatch_core::flops::counted());
            let task = |seed| EvalTask {
                spec: &model,
                images: &images,
                labels: &labels,
                test: &test,
                num_classes: 10,
                augment: &gradmatch_augment::NoAugmentation,
                seed,
            };
            let tasks: Vec<EvalTask> = (0..networks as u64).map(task).collect();
            let at_once = networks_at_once(&tasks[0], &cfg)?;
            let (mut train, mut test) = (0.0, 0.0);
            for outcome in evaluate_all(&tasks, &cfg, &cfg.resolve(dataset.name, &model), at_once) {
                let outcome = outcome?;
                (train, test) = (train + outcome.train_seconds, test + outcome.test_seconds);
            }
            // Where the time goes: the training (batched) and the test forward (the row's floor).
            eprintln!("{}: training {train:.2} s, test forward {test:.2} s, {at_once} networks at once", row.name);
            Ok(Timed { seconds: started.elapsed().as_secs_f64(), gflop: gflop_since(counted) })
        }
    }
}
