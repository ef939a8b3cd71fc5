//! `evaluate` and `random-baseline` as a user runs them (the real binary on real MNIST): sets written
//! by PyTorch in other tools' layouts are evaluated, `--compare` sets them against random real
//! subsets, and every accuracy names its protocol, epochs and augmentation.

mod common;

use common::gradmatch;
use serde_json::Value;
use std::path::{Path, PathBuf};

fn fixture(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/foreign").join(name).to_string_lossy().to_string()
}

/// Runs `gradmatch <args> --json <tmp>` on 300 test images and returns the summary.
fn summary(args: &[&str]) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let json: PathBuf = dir.path().join("summary.json");
    let out = gradmatch(&[args, &["--test-limit", "300", "--json", json.to_str().unwrap()]].concat()).output().unwrap();
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_str(&std::fs::read_to_string(json).unwrap()).unwrap()
}

fn assert_recipe(accuracy: &Value, protocol: &str, epochs: u64, augment: &str) {
    assert_eq!(
        (accuracy["protocol"].as_str(), accuracy["epochs"].as_u64(), accuracy["augment"].as_str()),
        (Some(protocol), Some(epochs), Some(augment)),
        "{accuracy}"
    );
}

#[test]
fn dc_results_are_evaluated_per_experiment_and_compared_with_random_subsets() {
    let s = summary(&["evaluate", &fixture("res_DC_MNIST_ConvNet_1ipc.pt"), "--epochs", "15", "--num-eval", "1", "--compare"]);
    assert_eq!((s["dataset"].as_str(), s["format"].as_str()), (Some("mnist"), Some("DC/DSA/DM results (res_*.pt)")));
    let sets = s["sets"].as_array().unwrap();
    assert_eq!(sets.len(), 2, "one set per experiment of the file");
    for set in sets {
        let (ours, random) = (&set["evaluations"][0], &set["random_subsets"][0]);
        assert_recipe(ours, "dc", 15, "crop_scale_rotate");
        assert_recipe(random, "dc", 15, "crop_scale_rotate");
        // One real image per class trains a network far above chance (10 %).
        assert!(ours["mean"].as_f64().unwrap() > 0.3 && random["mean"].as_f64().unwrap() > 0.2, "{set}");
        assert_eq!(set["images_per_class"], serde_json::json!([1, 1, 1, 1, 1, 1, 1, 1, 1, 1]));
        // One network a side: the count and what it is over, no interval, and so no interval of the gain.
        assert_eq!((ours["count"].as_u64(), &ours["over"]), (Some(1), &serde_json::json!({"sets": 1, "networks": 1})), "{set}");
        assert!(ours["ci95"].is_null() && random["ci95"].is_null(), "{set}");
        assert!(set["gains_over_random"][0]["difference"].is_null(), "{set}");
    }
}

#[test]
fn the_dsa_protocol_augments_every_batch_and_says_so() {
    let s = summary(&[
        "evaluate",
        &fixture("mtt"),
        "--dataset",
        "mnist",
        "--not-zca",
        "--protocol",
        "dsa",
        "--epochs",
        "10",
        "--num-eval",
        "2",
    ]);
    let ours = &s["sets"][0]["evaluations"][0];
    assert_recipe(ours, "dsa", 10, "dsa");
    assert_eq!(ours["accuracies"].as_array().unwrap().len(), 2);
    assert!(ours["mean"].as_f64().unwrap() > 0.2, "{ours}");
    let b = summary(&["random-baseline", "--ipc", "1", "--protocol", "dsa", "--epochs", "4", "--num-eval", "1"]);
    assert_recipe(&b, "dsa", 4, "dsa");
    assert_eq!(b["evaluation"]["protocol"], "dsa");
}

#[test]
fn a_set_that_names_no_dataset_needs_one() {
    let out = gradmatch(&["evaluate", &fixture("plain.safetensors")]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("plain.safetensors") && err.contains("give --dataset"), "{err}");
    let out = gradmatch(&["evaluate", &fixture("plain.safetensors"), "--dataset", "mnist", "--eval-augment", "dsx"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("did you mean `dsa`"), "{err}");
}

#[test]
fn mtt_sets_must_be_declared_not_zca_and_train_at_their_learned_lr() {
    let out = gradmatch(&["evaluate", &fixture("mtt"), "--dataset", "mnist"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("ZCA-whitened") && err.contains("pass --not-zca"), "{err}");
    // MNIST images with the lr_best.pt of the CIFAR-10 fixture (a 0-dim float32 tensor, 0.0123).
    let dir = tempfile::tempdir().unwrap();
    for (from, name) in [("mtt", "images_best.pt"), ("mtt", "labels_best.pt"), ("cifar/mtt-cifar10", "lr_best.pt")] {
        std::fs::copy(Path::new(&fixture(from)).join(name), dir.path().join(name)).unwrap();
    }
    let set = dir.path().to_str().unwrap();
    let json = dir.path().join("summary.json");
    let args = ["evaluate", set, "--dataset", "mnist", "--not-zca", "--epochs", "2", "--num-eval", "1", "--test-limit", "100"];
    let out = gradmatch(&[&args[..], &["--json", json.to_str().unwrap()]].concat()).stdout(std::process::Stdio::piped()).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("lr 0.0123: MTT's learned syn_lr from lr_best.pt"), "{stdout}");
    let s: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(s["evaluation"]["lr"].as_f64(), Some(0.0123));
    let s = summary(&[&args[..9], &["--lr", "0.02"]].concat());
    assert_eq!(s["evaluation"]["lr"].as_f64(), Some(0.02));
}
