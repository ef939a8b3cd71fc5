//! A multi-formation set through the commands as a user runs them: `condense` keeps the stored images
//! and writes the decoded ones beside them; `evaluate` decodes the stored set by the provenance it
//! carries, and trains exactly as `condense` evaluated it.

use gradmatch_tests::gradmatch;
use serde_json::Value;
use std::path::Path;

fn json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn accuracies(summary: &Value) -> Value {
    summary["evaluations"][0]["accuracies"].clone()
}

#[test]
fn a_stored_set_round_trips_through_evaluate() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("mf");
    let small = ["--epochs", "2", "--num-eval", "1"];
    let condense = ["condense", "--dataset", "mnist", "--model", "ConvNetW4", "--iterations", "1"];
    let mf = ["--parameterisation", "multi-formation", "--init", "mix", "--out", out.to_str().unwrap()];
    gradmatch(&[&condense[..], &mf, &small].concat()).unwrap();
    let condensed = accuracies(&json(&out.join("summary.json")));
    assert!(condensed.as_array().is_some_and(|a| a.len() == 1), "{condensed}");
    for (file, images) in [("synthetic.safetensors", 10), ("synthetic-decoded.safetensors", 40)] {
        let bytes = std::fs::read(out.join(file)).unwrap();
        let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        let header: Value = serde_json::from_slice(&bytes[8..8 + header_len]).unwrap();
        assert_eq!(header["images"]["shape"][0], images, "{file}: {}", header["images"]);
        let summary = dir.path().join(format!("{file}.json"));
        let set = out.join(file);
        let evaluate = ["evaluate", set.to_str().unwrap(), "--model", "ConvNetW4", "--json", summary.to_str().unwrap()];
        gradmatch(&[&evaluate[..], &small].concat()).unwrap();
        let evaluated = json(&summary);
        assert_eq!(evaluated["sets"][0]["images_per_class"], serde_json::json!(vec![4; 10]), "{file}: 4 images per class seen");
        assert_eq!(accuracies(&evaluated["sets"][0]), condensed, "{file}: trained as condense evaluated it");
    }
}
