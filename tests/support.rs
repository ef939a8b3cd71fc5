//! What the end-to-end tests share: the workspace's folders, and `gradmatch` command lines run
//! in-process on the CPU, quietly, on the workspace's MNIST copy (fetched on first use).

use clap::Parser;
use std::path::{Path, PathBuf};

/// The top of the workspace.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ is inside the workspace").to_path_buf()
}

/// The `.toml` files of a folder of the workspace (`experiments`, `ablations`), sorted.
pub fn toml_files(folder: &str) -> Vec<PathBuf> {
    let dir = workspace().join(folder);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| entry.expect("a folder entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    files
}

/// Runs `gradmatch <words>` as the binary would, from the top of the workspace (where the README's
/// paths are relative to), with the global flags that keep it on the CPU and quiet.
pub fn gradmatch(words: &[&str]) -> anyhow::Result<()> {
    gradmatch_runner::run(command_line(words)?)
}

/// `gradmatch <words>` parsed as [`gradmatch`] runs it (for [`gradmatch_runner::run_with`]), the
/// current folder set to the top of the workspace.
pub fn command_line(words: &[&str]) -> anyhow::Result<gradmatch_runner::Cli> {
    let data = workspace().join("data");
    let global = ["gradmatch", "--quiet", "--device", "cpu", "--data-dir", data.to_str().expect("a UTF-8 path")];
    let cli = gradmatch_runner::Cli::try_parse_from(global.iter().chain(words))?;
    std::env::set_current_dir(workspace())?;
    Ok(cli)
}
