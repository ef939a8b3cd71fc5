//! `scripts/gpu/check.sh`, the bounded GPU check, run on the CPU with stubs for the binary and
//! `nvidia-smi` and its limits scaled down: a failing step does not stop the others, a step that
//! hangs (and ignores SIGTERM) is killed at its limit, a step is skipped once the budget is spent,
//! the GPU sampler is gone when the script ends, and the table lists every step.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Stands in for gradmatch: device-check fails, `bench --tf32` hangs ignoring SIGTERM, `bench` and
/// `condense` write what the real ones write to `--json`.
const BINARY: &str = r#"#!/usr/bin/env bash
json=; prev=
for a in "$@"; do [ "$prev" = --json ] && json=$a; prev=$a; done
case " $* " in
*" device-check "*) echo "the device disagrees with the CPU"; exit 1 ;;
*" --tf32 "*) trap '' TERM; while :; do sleep 0.2; done ;;
*" bench "*) echo '[{"row":"dc-1","work":"outer iteration, DC, ipc 1","gradmatch":{"seconds":0.072,"peak_rss_mb":900},"torch":null,"ratio":null}]' >"$json" ;;
*" condense "*) echo '{"evaluations":[{"model":"ConvNet","accuracies":[0.9,0.92],"mean":0.91,"std":0.01,"seconds_per_evaluation":2.0}],"seconds_per_iteration":0.1}' >"$json" ;;
esac
"#;

const NVIDIA_SMI: &str = r#"#!/usr/bin/env bash
case "$*" in *name,memory.total*) echo "Stub GPU, 1000 MiB, 0.0" ;; *) echo "512, 40" ;; esac
"#;

fn write_executable(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    Command::new("chmod").arg("+x").arg(path).status().unwrap();
}

/// A pack with the real script and the stubs; returns (pack, folder of the stub nvidia-smi).
fn pack(root: &Path) -> (PathBuf, PathBuf) {
    let (pack, bin) = (root.join("gpu-pack"), root.join("bin"));
    std::fs::create_dir_all(&pack).unwrap();
    std::fs::create_dir_all(&bin).unwrap();
    let scripts = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/gpu");
    for file in ["check.sh", "summary.py"] {
        std::fs::copy(scripts.join(file), pack.join(file)).unwrap();
    }
    write_executable(&pack.join("gradmatch"), BINARY);
    write_executable(&pack.join("gpu-run.sh"), "bin=$1; shift; exec \"$bin\" \"$@\"\n");
    std::fs::write(pack.join("commit.txt"), "abc123\n").unwrap();
    write_executable(&bin.join("nvidia-smi"), NVIDIA_SMI);
    (pack, bin)
}

/// Runs the check with every limit times `scale`: (exit code, its output, seconds, OUT folder).
fn check(root: &Path, scale: &str) -> (i32, String, f64, PathBuf) {
    let (pack, bin) = pack(root);
    let out = root.join("out");
    std::fs::create_dir_all(&out).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let started = Instant::now();
    let result = Command::new("bash")
        .arg(pack.join("check.sh"))
        .env("PATH", path)
        .env("CHECK_TIME_SCALE", scale)
        .env("CHECK_DIR", root.join("work"))
        .env("OUT", &out)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&result.stdout).into_owned() + &String::from_utf8_lossy(&result.stderr);
    (result.status.code().unwrap_or(-1), text, started.elapsed().as_secs_f64(), out)
}

/// The command lines of processes still running the script (its GPU sampler is one), from /proc.
fn leftovers(root: &Path) -> Vec<String> {
    let script = root.join("gpu-pack/check.sh").to_string_lossy().into_owned();
    let cmdlines = std::fs::read_dir("/proc").unwrap().filter_map(|e| std::fs::read(e.ok()?.path().join("cmdline")).ok());
    cmdlines.map(|c| String::from_utf8_lossy(&c).replace('\0', " ")).filter(|c| c.contains(&script)).collect()
}

#[test]
fn every_step_runs_bounded_and_the_table_lists_them() {
    let root = tempfile::tempdir().unwrap();
    // Limits x 0.04: agree 4 s, bench 6 s, bench-tf32 4.8 s (+5 s until SIGKILL), quick 3.6 s; budget 20.4 s.
    let (code, text, seconds, out) = check(root.path(), "0.04");
    assert_eq!(code, 1, "a failed step makes the exit code non-zero:\n{text}");
    for row in ["| agree | 1 |", "| bench | 0 |", "| bench-tf32 | 137 |", "| quick | 0 |"] {
        assert!(text.contains(row), "missing `{row}`:\n{text}");
    }
    assert!(text.contains("| dc-1 | outer iteration, DC, ipc 1 | 0.072 | 0.144 | 2.00x | - | - |"), "{text}");
    assert!(text.contains("quick start: 91.00 +- 1.00 % (90.00, 92.00)"), "{text}");
    assert!(text.contains("commit abc123") && text.contains("Stub GPU"), "{text}");
    assert!(text.contains("| 512 | 40 |"), "GPU memory and utilisation sampled per step:\n{text}");
    assert!(seconds < 20.0, "took {seconds:.1} s");
    assert!(out.join("gpu-check.tgz").exists());
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(leftovers(root.path()), Vec::<String>::new(), "the sampler outlived the script");
}

#[test]
fn no_step_starts_past_the_budget() {
    let root = tempfile::tempdir().unwrap();
    // Budget 5.1 s: the hanging step (1.2 s, then 5 s until SIGKILL) spends it; quick is skipped.
    let (code, text, seconds, _) = check(root.path(), "0.01");
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("| bench-tf32 | 137 |") && text.contains("| quick | skipped |"), "{text}");
    assert!(seconds < 12.0, "took {seconds:.1} s");
}
