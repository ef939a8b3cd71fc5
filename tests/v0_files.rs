//! What users computed with earlier versions stays theirs: a results store and a condensation made on
//! 2026-12-03 (tests/fixtures/v0) are read by today's code without re-running anything.

use gradmatch_tests::{gradmatch, workspace};
use std::path::{Path, PathBuf};

fn fixture(name: &str) -> PathBuf {
    workspace().join("tests/fixtures/v0").join(name)
}

/// A copy of a fixture folder, so that the committed files stay as they are.
fn copy(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let target = to.join(path.file_name().unwrap());
        if path.is_dir() {
            copy(&path, &target);
        } else {
            std::fs::copy(&path, &target).unwrap();
        }
    }
}

#[test]
fn an_old_store_is_found_complete_and_reported_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    copy(&fixture("store"), &store);
    let records = || std::fs::read_to_string(store.join("records.jsonl")).unwrap();
    let before = records();
    gradmatch(&["ablate", fixture("grid.toml").to_str().unwrap(), "--store", store.to_str().unwrap()]).unwrap();
    assert_eq!(records(), before, "every unit of the old store was recognised: nothing ran again");
    std::fs::remove_file(store.join("table.md")).unwrap();
    gradmatch(&["report", store.to_str().unwrap()]).unwrap();
    let table = std::fs::read_to_string(store.join("table.md")).unwrap();
    assert_eq!(table, std::fs::read_to_string(fixture("store/table.md")).unwrap());
}

#[test]
fn an_old_condensation_resumes_from_its_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("condensed");
    copy(&fixture("condensed"), &out);
    let config = fixture("experiment.toml");
    gradmatch(&["condense", "--config", config.to_str().unwrap(), "--out", out.to_str().unwrap()]).unwrap();
    let summary: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["resumed_from"], 2, "the checkpoint's fingerprint still matches: {summary}");
    // The tensors after the safetensors header (which records the version that wrote the file).
    let tensors = |folder: &Path| {
        let bytes = std::fs::read(folder.join("synthetic.safetensors")).unwrap();
        let header = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        bytes[8 + header..].to_vec()
    };
    assert_eq!(tensors(&out), tensors(&fixture("condensed")), "the same images and labels, byte for byte");
}
