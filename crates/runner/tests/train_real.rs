//! `gradmatch train-real` on real MNIST: networks trained on the training split, kept, and reused
//! as they were on the next run; another recipe trains its own.

mod common;

use common::gradmatch;
use std::path::Path;

fn train_real(out: &Path, json: &Path, epochs: &str) -> serde_json::Value {
    let args = ["train-real", "--model", "ConvNetW4", "--epochs", epochs, "--eval-augment", "none", "--train-limit", "600"];
    let extra = ["--test-limit", "500", "--num-eval", "2", "--out", out.to_str().unwrap(), "--json", json.to_str().unwrap()];
    let output = gradmatch(&[&args[..], &extra[..]].concat()).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_str(&std::fs::read_to_string(json).unwrap()).unwrap()
}

#[test]
fn networks_trained_on_real_images_learn_are_kept_and_reused() {
    let dir = tempfile::tempdir().unwrap();
    let (out, json) = (dir.path().join("nets"), dir.path().join("s.json"));
    let first = train_real(&out, &json, "30");
    let accuracies = first["accuracies"].as_array().unwrap().clone();
    assert_eq!(accuracies.len(), 2);
    assert!(accuracies.iter().all(|a| a.as_f64().unwrap() > 0.5), "600 real images, 30 epochs: well above chance: {accuracies:?}");
    let networks: Vec<String> = first["networks"].as_array().unwrap().iter().map(|p| p.as_str().unwrap().to_string()).collect();
    let mtime = |p: &String| std::fs::metadata(p).unwrap().modified().unwrap();
    let written: Vec<_> = networks.iter().map(mtime).collect();

    let again = train_real(&out, &json, "30");
    assert_eq!(again["accuracies"], first["accuracies"], "the kept networks, tested again");
    assert_eq!(networks.iter().map(mtime).collect::<Vec<_>>(), written, "nothing trained or written again");

    let other = train_real(&out, &json, "5");
    assert_ne!(other["networks"], first["networks"], "another recipe, another folder");
    assert_eq!(std::fs::read_dir(&out).unwrap().count(), 2);
}
