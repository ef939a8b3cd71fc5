//! What users computed with earlier versions stays theirs: a results store and a condensation made by
//! each earlier provenance schema (tests/fixtures/v<schema>: 0 of 2026-12-03, before the versioned
//! provenance; 1 of 2026-12-04, before samplers; 2 of 2026-12-07, before keys left the plug-ins at
//! their defaults out) are read by today's code without re-running anything.
#![allow(clippy::disallowed_methods)] // reads values to check them

use gradmatch_runner::experiment::Experiment;
use gradmatch_tests::{gradmatch, workspace};
use std::path::{Path, PathBuf};

/// The files of one earlier provenance schema: the same grid and experiment, made by that version.
#[derive(Clone, Copy)]
struct Fixture {
    schema: u32,
}

const FIXTURES: [Fixture; 3] = [Fixture { schema: 0 }, Fixture { schema: 1 }, Fixture { schema: 2 }];
const FIRST: Fixture = FIXTURES[0];

impl Fixture {
    fn path(self, name: &str) -> PathBuf {
        workspace().join(format!("tests/fixtures/v{}", self.schema)).join(name)
    }
}

/// The fixtures' grid and experiment (one pair, kept in the first fixture's folder).
fn fixture(name: &str) -> PathBuf {
    FIRST.path(name)
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

/// The tensors of a folder's set, after the safetensors header (which records the version that
/// wrote the file).
fn tensors(folder: &Path) -> Vec<u8> {
    let bytes = std::fs::read(folder.join("synthetic.safetensors")).unwrap();
    let header = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    bytes[8 + header..].to_vec()
}

fn records(store: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(store.join("records.jsonl")).unwrap();
    text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// What a record says happened, its identity aside, with its experiment as read today (written in
/// full now, with its defaults left out then).
fn result(record: &serde_json::Value) -> (String, Experiment) {
    let mut record = record.clone();
    let experiment = serde_json::from_value(record["config"].clone()).unwrap();
    for identity in ["schema", "key", "cell", "set", "grid_image", "config"] {
        record.as_object_mut().unwrap().remove(identity);
    }
    (record.to_string(), experiment)
}

fn ablate(store: &Path) {
    gradmatch(&["ablate", fixture("grid.toml").to_str().unwrap(), "--store", store.to_str().unwrap()]).unwrap();
}

#[test]
fn an_old_store_is_migrated_found_complete_and_reported_unchanged() {
    FIXTURES.into_iter().for_each(old_store_is_migrated);
}

fn old_store_is_migrated(old: Fixture) {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    copy(&old.path("store"), &store);
    let before = records(&store);
    ablate(&store);
    let after = records(&store);
    assert_eq!(after.iter().map(result).collect::<Vec<_>>(), before.iter().map(result).collect::<Vec<_>>(), "nothing ran again");
    for record in after.iter().filter(|r| r["kind"] == "condensed") {
        assert_eq!(record["schema"], gradmatch_runner::provenance::Provenance::SCHEMA);
        assert!(store.join(record["set"].as_str().unwrap()).exists(), "the cell folders were renamed with the ids: {record}");
    }
    let kept = std::fs::read_to_string(store.join(format!("migrated-from-schema-{}/records.jsonl", old.schema))).unwrap();
    assert_eq!(kept, std::fs::read_to_string(old.path("store/records.jsonl")).unwrap(), "the old records are kept as they were");
    ablate(&store);
    assert_eq!(records(&store), after, "a migrated store is today's: nothing migrates or runs again");
    std::fs::remove_file(store.join("table.md")).unwrap();
    gradmatch(&["report", store.to_str().unwrap()]).unwrap();
    let table = std::fs::read_to_string(store.join("table.md")).unwrap();
    assert_eq!(table, std::fs::read_to_string(old.path("store/table.md")).unwrap(), "schema {}", old.schema);
}

#[test]
fn an_unfinished_condensation_of_an_old_store_resumes() {
    FIXTURES.into_iter().for_each(unfinished_condensation_resumes);
}

fn unfinished_condensation_resumes(fixture: Fixture) {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    copy(&fixture.path("store"), &store);
    // Killed at the end of DC's condensation: its checkpoint and log are there, no record yet.
    let (dc, mda): (Vec<_>, Vec<_>) = records(&store).into_iter().partition(|r| r["labels"][0][1] == "DC");
    let lines: String = mda.iter().map(|r| format!("{r}\n")).collect();
    std::fs::write(store.join("records.jsonl"), lines).unwrap();
    let old = dc.iter().find(|r| r["kind"] == "condensed").unwrap();
    let set = store.join(old["set"].as_str().unwrap());
    let log = || std::fs::read_to_string(set.with_file_name("log.jsonl")).unwrap();
    let before = log();
    std::fs::remove_file(&set).unwrap();
    ablate(&store);
    let condensed = records(&store).into_iter().find(|r| r["labels"][0][1] == "DC" && r["kind"] == "condensed").unwrap();
    assert_eq!(condensed["losses"], old["losses"], "the same condensation");
    assert_eq!(log(), before, "resumed after its last iteration: none ran again (each would have logged its own time)");
    let seconds: Vec<f64> =
        before.lines().map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["seconds"].as_f64().unwrap()).collect();
    let mean = seconds.iter().sum::<f64>() / seconds.len() as f64;
    assert!((condensed["seconds_per_iteration"].as_f64().unwrap() - mean).abs() < 1e-9, "its speed is its sittings', from the log");
}

#[test]
fn an_old_condensation_resumes_from_its_checkpoint() {
    FIXTURES.into_iter().for_each(old_condensation_resumes);
}

fn old_condensation_resumes(old: Fixture) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("condensed");
    copy(&old.path("condensed"), &out);
    let config = fixture("experiment.toml");
    gradmatch(&["condense", "--config", config.to_str().unwrap(), "--out", out.to_str().unwrap()]).unwrap();
    let summary: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["resumed_from"], 2, "the checkpoint's fingerprint still matches: {summary}");
    assert_eq!(tensors(&out), tensors(&old.path("condensed")), "the same images and labels, byte for byte");
}

#[test]
fn todays_pixels_condense_the_old_experiment_to_the_same_images() {
    FIXTURES.into_iter().for_each(condenses_to_the_same_images);
}

fn condenses_to_the_same_images(old: Fixture) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("fresh");
    let config = fixture("experiment.toml");
    gradmatch(&["condense", "--config", config.to_str().unwrap(), "--out", out.to_str().unwrap()]).unwrap();
    // The same draws and the same arithmetic; only the CPU's GEMM kernels (AVX2 where the first
    // and third fixtures were made, AVX-512 where the second was) round differently.
    let (today, then) = (set(&out), set(&old.path("condensed")));
    assert_eq!(today.labels, then.labels);
    let gap = (&today.images - &then.images).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
    assert!(gap <= 1e-5, "the same images as schema {}'s up to the rounding of the CPU's kernels: {gap}", old.schema);
}

fn set(folder: &Path) -> gradmatch_engine::SyntheticSet {
    gradmatch_engine::SyntheticSet::load(&folder.join("synthetic.safetensors"), &candle_core::Device::Cpu).unwrap()
}

#[test]
fn a_migration_cut_short_is_completed_alike() {
    FIXTURES.into_iter().for_each(cut_migration_completes);
}

fn cut_migration_completes(old: Fixture) {
    let dir = tempfile::tempdir().unwrap();
    let (whole, cut) = (dir.path().join("whole"), dir.path().join("cut"));
    copy(&old.path("store"), &whole);
    ablate(&whole);
    // Cut after the folders were renamed, before the records file was replaced.
    copy(&whole, &cut);
    std::fs::copy(old.path("store/records.jsonl"), cut.join("records.jsonl")).unwrap();
    ablate(&cut);
    assert_eq!(records(&cut), records(&whole), "schema {}", old.schema);
}

#[test]
fn a_condensation_of_the_first_recipes_without_evaluations_is_not_run_again() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    copy(&FIRST.path("store"), &store);
    // DC condensed under the first recipes (their `[evaluation]` gave `augment`), killed before
    // any of its evaluations was recorded.
    let mut old = records(&store);
    old.retain(|r| !(r["labels"][0][1] == "DC" && r["kind"] == "evaluated"));
    old.iter_mut().filter(|r| r["labels"][0][1] == "DC").for_each(|r| r["config"]["evaluation"]["augment"] = false.into());
    std::fs::write(store.join("records.jsonl"), old.iter().map(|r| format!("{r}\n")).collect::<String>()).unwrap();
    ablate(&store);
    let condensed: Vec<_> = records(&store).into_iter().filter(|r| r["labels"][0][1] == "DC" && r["kind"] == "condensed").collect();
    let today = condensed.last().unwrap();
    assert_eq!(today["seconds"], 0.0, "its set was taken, not condensed again: {condensed:?}");
    assert!(store.join(today["set"].as_str().unwrap()).exists());
}
