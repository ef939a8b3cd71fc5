//! The real FashionMNIST from the Debian package `dataset-fashion-mnist` (CI installs it; as root the
//! loader installs it itself). Without it this test fails with the loader's message, which says how to
//! install it: a missing dataset is never a pass.

use gradmatch_data::{load, DatasetName};

#[test]
fn real_fashion_mnist_loads() {
    let tmp = tempfile::tempdir().unwrap();
    let ds = load(DatasetName::FashionMnist, tmp.path()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((ds.train.len(), ds.test.len()), (60_000, 10_000));
    for c in 0..10 {
        assert_eq!(ds.train.class_indices(c).len(), 6000);
        assert_eq!(ds.test.class_indices(c).len(), 1000);
    }
    assert_eq!(ds.train.smallest_class(), DatasetName::FashionMnist.smallest_class());
    let n = ds.train.images.len() as f64;
    let mean = ds.train.images.iter().map(|&v| v as f64).sum::<f64>() / n;
    assert!(mean.abs() < 0.02, "mean {mean}");
}
