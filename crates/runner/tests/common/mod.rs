//! Runs the real `gradmatch` binary on the workspace's MNIST copy, on the CPU, quietly.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data")
}

pub fn gradmatch(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gradmatch"));
    cmd.arg("--quiet").arg("--device").arg("cpu").arg("--data-dir").arg(data_dir()).args(args);
    cmd.stdout(Stdio::null()).stderr(Stdio::piped());
    cmd
}
