//! Every experiment file and ablation grid that ships resolves: its plug-ins build, its numbers pass
//! their checks, its cells are distinct, and each experiment reads back from the JSON that records
//! hold as the same experiment with the same provenance key.

use gradmatch_plugins::Plugins;
use gradmatch_runner::ablate::grid::Grid;
use gradmatch_runner::experiment::Experiment;
use gradmatch_runner::provenance::Provenance;
use gradmatch_tests::toml_files;

#[test]
fn every_experiment_file_resolves() {
    let files = toml_files("experiments");
    assert!(files.len() >= 4, "the paper's four methods at least: {files:?}");
    for path in files {
        let resolved = Experiment::from_file(&path, &Plugins::builtin()).unwrap_or_else(|e| panic!("{}: {e:#}", path.display()));
        assert!(!resolved.experiment.recipes().is_empty(), "{}: no evaluation recipe", path.display());
        reads_back_as_itself(&resolved.experiment, &path.display().to_string());
    }
}

#[test]
fn every_ablation_grid_expands_and_resolves() {
    let files = toml_files("ablations");
    assert!(files.len() >= 3, "the quick grid and the paper's tables at least: {files:?}");
    for path in files {
        let grid = Grid::from_file(&path, &Plugins::builtin()).unwrap_or_else(|e| panic!("{}: {e:#}", path.display()));
        assert!(grid.cells.len() >= 2, "{}: a grid compares two cells at least", path.display());
        let stem = path.file_stem().and_then(|s| s.to_str()).expect("a UTF-8 file name");
        assert_eq!(grid.name, stem, "{}: the store folder (runs/ablations/<name>) is named as the file", path.display());
        for cell in &grid.cells {
            reads_back_as_itself(cell.experiment(), &format!("{} cell `{}`", path.display(), cell.label()));
            assert_eq!(cell.id, Provenance::of(cell.experiment()).key(), "{}: a cell is named by its provenance", path.display());
        }
    }
}

/// A store's records are found, and migrated, by the provenance of the config they hold as JSON.
fn reads_back_as_itself(experiment: &Experiment, place: &str) {
    let back: Experiment = serde_json::from_str(&serde_json::to_string(experiment).unwrap()).unwrap();
    assert_eq!(&back, experiment, "{place}");
    assert_eq!(Provenance::of(&back).key(), Provenance::of(experiment).key(), "{place}");
}
