use crate::ablate::grid::Grid;
use crate::ablate::report;
use crate::global::Global;
use anyhow::{Context, Result};
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

pub fn run(global: &Global, args: Args) -> Result<()> {
    let more: Vec<&Path> = args.merge.iter().map(PathBuf::as_path).collect();
    let grid = report::store_grid(&args.store, &global.plugins)?;
    for dir in &args.merge {
        check_same_grid(dir, &grid, &global.plugins)?;
    }
    for dir in std::iter::once(&args.store).chain(&args.merge) {
        crate::ablate::store::migrate(dir)?;
    }
    let table = report::write(&grid, &args.store, &more)?;
    println!("{}", table.markdown());
    println!("report: {}", args.store.join("report.md").display());
    Ok(())
}

/// A folder merged in must be a store of the same grid: anything else would fill the table with
/// another grid's numbers, or leave it partial while presenting it as complete.
fn check_same_grid(dir: &Path, grid: &Grid, plugins: &Plugins) -> Result<()> {
    anyhow::ensure!(dir.is_dir(), "--merge {}: no such folder", dir.display());
    let theirs = report::store_grid(dir, plugins).with_context(|| format!("--merge {}", dir.display()))?;
    let differences = grid.differences(&theirs)?;
    anyhow::ensure!(
        differences.is_empty(),
        "--merge {}: its grid `{}` is not this store's `{}`; it differs in:\n  {}",
        dir.display(),
        theirs.name,
        grid.name,
        differences.join("\n  ")
    );
    Ok(())
}
