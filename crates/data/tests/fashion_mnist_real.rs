//! The real FashionMNIST from the Debian package, when this machine has it or can install it.

use gradmatch_data::{load, DatasetName};

#[test]
fn real_fashion_mnist_loads() {
    let available = std::path::Path::new("/usr/share/datasets/fashion-mnist").is_dir()
        || std::fs::read_to_string("/proc/self/status")
            .is_ok_and(|s| s.lines().any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0")));
    if !available {
        eprintln!("skipping: dataset-fashion-mnist not installed and not root");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let ds = load(DatasetName::FashionMnist, tmp.path()).unwrap();
    assert_eq!((ds.train.len(), ds.test.len()), (60_000, 10_000));
    for c in 0..10 {
        assert_eq!(ds.train.class_indices(c).len(), 6000);
        assert_eq!(ds.test.class_indices(c).len(), 1000);
    }
    let n = ds.train.images.len() as f64;
    let mean = ds.train.images.iter().map(|&v| v as f64).sum::<f64>() / n;
    assert!(mean.abs() < 0.02, "mean {mean}");
}
