//! `just ablate`'s grid as a user runs it, scaled down to two iterations of a small network: through
//! `ablate` into a store, then `report` from the store alone, which rebuilds the same table.

use gradmatch_tests::{gradmatch, workspace};

/// ablations/quick.toml with its axes and table as shipped, its sizes cut down.
fn small_quick_grid() -> String {
    let path = workspace().join("ablations/quick.toml");
    let mut grid: toml::Table = toml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let base = grid["base"].as_table_mut().expect("[base]");
    base.insert("model".into(), "ConvNetW4".into());
    let condense = base["condense"].as_table_mut().expect("[base.condense]");
    condense.insert("iterations".into(), 2.into());
    condense.insert("batch_real".into(), 8.into());
    let evaluation = base["evaluation"].as_table_mut().expect("[base.evaluation]");
    for (key, value) in [("epochs", 2), ("num_eval", 1), ("test_limit", 300)] {
        evaluation.insert(key.into(), value.into());
    }
    toml::to_string(&grid).unwrap()
}

#[test]
fn the_quick_grid_runs_through_ablate_and_report() {
    let dir = tempfile::tempdir().unwrap();
    let (grid, store) = (dir.path().join("quick.toml"), dir.path().join("store"));
    std::fs::write(&grid, small_quick_grid()).unwrap();
    gradmatch(&["ablate", grid.to_str().unwrap(), "--store", store.to_str().unwrap()]).unwrap();

    let records = std::fs::read_to_string(store.join("records.jsonl")).unwrap();
    let kinds: Vec<String> =
        records.lines().map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["kind"].as_str().unwrap().to_string()).collect();
    // Three methods, each one condensation and one evaluation network.
    assert_eq!(kinds.iter().filter(|k| *k == "condensed").count(), 3, "{records}");
    assert_eq!(kinds.iter().filter(|k| *k == "evaluated").count(), 3, "{records}");
    let table = std::fs::read_to_string(store.join("table.md")).unwrap();
    for method in ["| DC |", "| M |", "| MD |"] {
        assert!(table.contains(method), "row {method} missing:\n{table}");
    }

    std::fs::remove_file(store.join("table.md")).unwrap();
    gradmatch(&["report", store.to_str().unwrap()]).unwrap();
    assert_eq!(std::fs::read_to_string(store.join("table.md")).unwrap(), table, "the report rebuilds the table from the records alone");
}
