//! The README's quick start, the first thing a user types, run as written (from the README itself)
//! with flags that shrink it to one iteration and one short evaluation.

use gradmatch_tests::{gradmatch, workspace};

/// The words of the README's quick-start command after `cargo run --release --`.
fn readme_quick_start() -> Vec<String> {
    let readme = std::fs::read_to_string(workspace().join("README.md")).unwrap();
    let section = readme.split("## Quick start").nth(1).expect("the README has a quick start");
    let line = section.lines().find(|l| l.starts_with("cargo run --release -- ")).expect("its first command runs gradmatch");
    let command = line.split('#').next().unwrap().trim();
    command.trim_start_matches("cargo run --release -- ").split_whitespace().map(str::to_string).collect()
}

#[test]
fn the_readme_quick_start_runs_as_typed() {
    let words = readme_quick_start();
    assert_eq!(words[0], "condense", "{words:?}");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("quick");
    let small = ["--iterations", "1", "--epochs", "2", "--num-eval", "1", "--out", out.to_str().unwrap()];
    let typed: Vec<&str> = words.iter().map(String::as_str).chain(small).collect();
    gradmatch(&typed).unwrap_or_else(|e| panic!("gradmatch {}: {e:#}", typed.join(" ")));

    for file in ["synthetic.safetensors", "synthetic.png", "log.jsonl", "summary.json"] {
        assert!(out.join(file).is_file(), "{file} missing in {}", out.display());
    }
    assert_eq!(std::fs::read_to_string(out.join("log.jsonl")).unwrap().lines().count(), 1, "one line per iteration");
    let summary: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    let accuracies = summary["evaluations"][0]["accuracies"].as_array().expect("the set was evaluated");
    assert_eq!(accuracies.len(), 1);
    let accuracy = accuracies[0].as_f64().unwrap();
    assert!(accuracy > 0.0 && accuracy <= 1.0, "accuracy {accuracy}");
}
