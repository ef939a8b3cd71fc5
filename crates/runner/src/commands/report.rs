use crate::ablate::report;
use anyhow::Result;
use gradmatch_plugins::Plugins;
use std::path::{Path, PathBuf};

#[derive(clap::Args)]
pub struct Args {
    /// Store folder of a grid (runs/ablations/<name>); the report is written there.
    store: PathBuf,
    /// Other folders holding records of the same grid (shards run elsewhere), merged in.
    #[arg(long)]
    merge: Vec<PathBuf>,
}

pub fn run(args: Args) -> Result<()> {
    let more: Vec<&Path> = args.merge.iter().map(PathBuf::as_path).collect();
    let grid = report::store_grid(&args.store, &Plugins::builtin())?;
    let table = report::write(&grid, &args.store, &more)?;
    println!("{}", table.markdown());
    println!("report: {}", args.store.join("report.md").display());
    Ok(())
}
