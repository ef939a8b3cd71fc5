use crate::ablate::grid::{Grid, Shard};
use crate::ablate::{self, report, Options};
use crate::global::Global;
use anyhow::Result;
use std::path::{Path, PathBuf};

#[derive(clap::Args)]
pub struct Args {
    /// Ablation grid (see ablations/); the default is the quick CPU grid of the paper's four methods.
    #[arg(default_value = "ablations/quick.toml")]
    grid: PathBuf,
    /// Store folder (records, checkpoints, sets, report); default runs/ablations/<grid name>.
    #[arg(long)]
    store: Option<PathBuf>,
    /// Condensation runs in parallel on this machine.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    jobs: u16,
    /// Devices for the parallel runs, e.g. cuda:0,cuda:1 (default: --device).
    #[arg(long, value_delimiter = ',')]
    devices: Vec<String>,
    /// Run only part i of n of the grid (0-based), e.g. one task of a Slurm job array.
    #[arg(long, default_value = "0/1")]
    shard: Shard,
    /// Run into a store that holds another grid, making this one its grid (its records stay; the
    /// report shows this grid's cells).
    #[arg(long)]
    replace_grid: bool,
    /// Only expand and validate the grid, then list its cells.
    #[arg(long)]
    check: bool,
}

/// `--check`: the grid is valid (it parsed); lists its cells with their ids (the keys of their results).
fn print_cells(path: &Path, grid: &Grid) {
    println!("{}: {} cells x {} experiments, valid", path.display(), grid.cells.len(), grid.experiments);
    for cell in &grid.cells {
        let e = cell.experiment();
        let iterations = match (cell.baseline(), &e.coreset, e.condense.iterations) {
            (Some(_), _, _) => "Random: real subsets, one per evaluation network".to_string(),
            (None, Some(c), _) => format!("coreset `{}` (features: {} epochs on the whole split)", c.selection.name, c.feature_epochs),
            (None, None, 0) => "0 iterations (the initial set itself)".to_string(),
            (None, None, n) => format!("{n} iterations"),
        };
        println!(
            "  {:<40} {} {} ipc {} ({} seen per class), {iterations}, {}: {}; evaluated under {}",
            cell.label(),
            cell.id,
            e.dataset,
            e.condense.ipc,
            cell.resolved.method().images_per_class(e.condense.ipc),
            e.model,
            super::method_line(&e.method),
            e.recipes_text()
        );
    }
}

pub fn run(global: &Global, args: Args) -> Result<()> {
    let started = std::time::Instant::now();
    let plugins = &global.plugins;
    let grid = Grid::from_file(&args.grid, plugins)?;
    let store = match args.store {
        Some(store) => store,
        None => ablate::default_store(&grid)?,
    };
    let opts =
        Options { store: store.clone(), jobs: args.jobs.into(), devices: args.devices, shard: args.shard, replace_grid: args.replace_grid };
    if args.check {
        // A cell may run on any of the devices: each must hold every cell.
        for device in ablate::open_devices(global, &opts)?.1 {
            ablate::check_memory(&grid.cells, &device)?;
        }
        print_cells(&args.grid, &grid);
        return Ok(());
    }
    let summary = ablate::run(global, &grid, &opts)?;
    let table = report::write(&grid, &store, &[])?;
    println!("\n{}", table.markdown());
    println!(
        "ran {} units, skipped {} already in the store, {} failed; {:.0} s; report: {}",
        summary.ran,
        summary.skipped,
        summary.failed.len(),
        started.elapsed().as_secs_f64(),
        store.join("report.md").display()
    );
    if !summary.failed.is_empty() {
        for f in &summary.failed {
            eprintln!("failed: {f}");
        }
        anyhow::bail!("{} units failed (recorded in the store; run the grid again to retry them)", summary.failed.len());
    }
    Ok(())
}
