//! `gradmatch coreset` on real MNIST: `random` is the Random baseline's first subset (same images,
//! same network, the same accuracy); herding and k-center read one kept feature network, trained once,
//! the one `train-real` trains alike.

mod common;

use common::gradmatch;
use std::path::Path;

fn run(args: &[&str]) -> serde_json::Value {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("s.json");
    let output = gradmatch(&[args, &["--json", json.to_str().unwrap()]].concat()).output().unwrap();
    assert!(output.status.success(), "{args:?}: {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_str(&std::fs::read_to_string(json).unwrap()).unwrap()
}

const RECIPE: [&str; 8] = ["--num-eval", "1", "--epochs", "10", "--eval-augment", "none", "--test-limit", "300"];

#[test]
fn a_random_coreset_is_the_random_baselines_first_subset() {
    let dir = tempfile::tempdir().unwrap();
    let (nets, out) = (dir.path().join("nets"), dir.path().join("set"));
    let coreset = run(&[
        &["coreset", "--method", "random", "--model", "ConvNetW4", "--ipc", "2"][..],
        &RECIPE,
        &["--networks", nets.to_str().unwrap(), "--out", out.to_str().unwrap(), "--export-for", "dc"],
    ]
    .concat());
    assert!(out.join("synthetic.dc.safetensors").exists(), "exported for DC's tools as condensed sets are");
    let baseline = run(&[&["random-baseline", "--model", "ConvNetW4", "--ipc", "2"][..], &RECIPE].concat());
    assert_eq!(coreset["results"][0]["accuracies"], baseline["accuracies"], "the same images, the same network");
    assert!(!nets.exists(), "random reads no features: no network was trained");
}

#[test]
fn feature_selections_share_one_kept_network_and_write_sets_of_their_classes() {
    let dir = tempfile::tempdir().unwrap();
    let nets = dir.path().join("nets");
    let coreset = |method: &str, out: &Path| {
        let features = ["--model", "ConvNetW4", "--feature-epochs", "5", "--train-limit", "1000", "--ipc", "3"];
        let places = ["--networks", nets.to_str().unwrap(), "--out", out.to_str().unwrap()];
        run(&[&["coreset", "--method", method][..], &features, &RECIPE, &places].concat())
    };
    let trained = run(&[
        &["train-real", "--model", "ConvNetW4", "--epochs", "5", "--eval-augment", "none", "--train-limit", "1000"][..],
        &["--test-limit", "300", "--out", nets.to_str().unwrap()],
    ]
    .concat());
    let herding = coreset("herding", &dir.path().join("herding"));
    let network = herding["feature_network"].as_str().unwrap().to_string();
    assert_eq!(trained["networks"][0].as_str(), Some(network.as_str()), "train-real's network, trained alike, is the feature network");
    let written = std::fs::metadata(&network).unwrap().modified().unwrap();
    let k_center = coreset("k-center", &dir.path().join("k-center"));
    assert_eq!(k_center["feature_network"], herding["feature_network"]);
    assert_eq!(std::fs::metadata(&network).unwrap().modified().unwrap(), written, "the kept network, not trained again");
    for (summary, method) in [(&herding, "herding"), (&k_center, "k-center")] {
        let indices: Vec<Vec<u64>> = serde_json::from_value(summary["indices"].clone()).unwrap();
        assert_eq!(indices.len(), 10);
        assert!(indices.iter().flatten().all(|&i| i < 1000), "{method}: among the first 1000 images only");
        let set = gradmatch_engine::SyntheticSet::load(&dir.path().join(method).join("synthetic.safetensors"), &candle_core::Device::Cpu)
            .unwrap();
        assert_eq!(set.labels, (0..10).flat_map(|c| [c; 3]).collect::<Vec<u32>>(), "{method}: 3 images per class, class-major");
        assert_eq!(set.metadata["coreset"], method);
    }
    assert_ne!(herding["indices"], k_center["indices"], "two selections, two coresets");
}
