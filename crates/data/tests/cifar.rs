//! CIFAR-10 / CIFAR-100 binary batches written here in the exact record format.

use gradmatch_data::{fetch, load, DataError, DatasetName};
use std::path::Path;

/// Pixel (c, h, w) of record `r`.
fn pixel(r: usize, c: usize, h: usize, w: usize) -> u8 {
    ((c * 80 + h * 3 + w + r * 11) % 256) as u8
}

/// Records `first..first+n`, with `label_of(r)` as the label byte(s).
fn batch(first: usize, n: usize, label_of: impl Fn(usize) -> Vec<u8>) -> Vec<u8> {
    let mut b = Vec::new();
    for r in first..first + n {
        b.extend(label_of(r));
        for c in 0..3 {
            for h in 0..32 {
                for w in 0..32 {
                    b.push(pixel(r, c, h, w));
                }
            }
        }
    }
    b
}

fn check_pixels(name: DatasetName, images: &[f32], local: usize, record: usize) {
    let (m, s) = (name.mean(), name.std());
    for (c, h, w) in [(0, 0, 0), (0, 5, 31), (1, 17, 2), (2, 31, 31), (2, 0, 9)] {
        let got = images[local * 3072 + c * 1024 + h * 32 + w];
        let want = (pixel(record, c, h, w) as f32 / 255.0 - m[c]) / s[c];
        assert!((got - want).abs() < 1e-6, "record {record} ({c},{h},{w}): {got} vs {want}");
    }
}

fn write_cifar10(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    for b in 0..5 {
        let bytes = batch(b * 2, 2, |r| vec![(r % 10) as u8]);
        std::fs::write(dir.join(format!("data_batch_{}.bin", b + 1)), bytes).unwrap();
    }
    std::fs::write(dir.join("test_batch.bin"), batch(100, 3, |r| vec![(r % 7) as u8])).unwrap();
}

#[test]
fn cifar10_loads_chw_and_normalises() {
    let tmp = tempfile::tempdir().unwrap();
    write_cifar10(&tmp.path().join("cifar10"));
    let ds = load(DatasetName::Cifar10, tmp.path()).unwrap();
    assert_eq!(ds.shape(), (3, 32, 32));
    assert_eq!(ds.train.len(), 10);
    assert_eq!(ds.test.len(), 3);
    assert_eq!(ds.train.labels, (0..10).collect::<Vec<u32>>());
    assert_eq!(ds.test.labels, vec![2, 3, 4]);
    for r in [0, 3, 9] {
        check_pixels(DatasetName::Cifar10, &ds.train.images, r, r);
    }
    check_pixels(DatasetName::Cifar10, &ds.test.images, 2, 102);
    assert_eq!(fetch(DatasetName::Cifar10, tmp.path()).unwrap(), tmp.path().join("cifar10"));
}

#[test]
fn cifar100_uses_fine_labels_and_subfolder() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cifar100").join("cifar-100-binary");
    std::fs::create_dir_all(&dir).unwrap();
    // Coarse label first (r % 20), fine second (r * 9 % 100).
    let labels = |r: usize| vec![(r % 20) as u8, (r * 9 % 100) as u8];
    std::fs::write(dir.join("train.bin"), batch(0, 12, labels)).unwrap();
    std::fs::write(dir.join("test.bin"), batch(50, 4, labels)).unwrap();
    let ds = load(DatasetName::Cifar100, tmp.path()).unwrap();
    assert_eq!(ds.num_classes(), 100);
    assert_eq!(ds.train.labels, (0..12).map(|r| (r * 9 % 100) as u32).collect::<Vec<_>>());
    assert_eq!(ds.test.labels, (50..54).map(|r| (r * 9 % 100) as u32).collect::<Vec<_>>());
    check_pixels(DatasetName::Cifar100, &ds.train.images, 11, 11);
    check_pixels(DatasetName::Cifar100, &ds.test.images, 1, 51);
    assert_eq!(ds.train.class_indices(18), &[2]);
}

#[test]
fn wrong_length_is_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cifar10");
    write_cifar10(&dir);
    let mut b = std::fs::read(dir.join("data_batch_3.bin")).unwrap();
    b.push(0);
    std::fs::write(dir.join("data_batch_3.bin"), &b).unwrap();
    let err = load(DatasetName::Cifar10, tmp.path()).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, DataError::Length { found: 6147, .. }), "{err:?}");
    assert!(msg.contains("data_batch_3.bin") && msg.contains("3073") && msg.contains("6147"), "{msg}");
    assert!(msg.contains("cifar-10-binary.tar.gz"), "{msg}");
}

#[test]
fn label_out_of_range_is_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cifar10");
    write_cifar10(&dir);
    std::fs::write(dir.join("test_batch.bin"), batch(0, 2, |r| vec![if r == 1 { 10 } else { 0 }])).unwrap();
    let err = load(DatasetName::Cifar10, tmp.path()).unwrap_err();
    assert!(matches!(err, DataError::LabelOutOfRange { index: 1, .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("test_batch.bin") && msg.contains("10") && msg.contains("0..=9"), "{msg}");
}

#[test]
fn missing_files_say_where_to_put_them() {
    let tmp = tempfile::tempdir().unwrap();
    let msg = load(DatasetName::Cifar10, tmp.path()).unwrap_err().to_string();
    assert!(msg.contains("data_batch_1.bin") && msg.contains("cifar-10-binary.tar.gz"), "{msg}");
    let msg = load(DatasetName::Cifar100, tmp.path()).unwrap_err().to_string();
    assert!(msg.contains("train.bin") && msg.contains("cifar-100-binary"), "{msg}");
    for name in [DatasetName::Svhn, DatasetName::Cifar10, DatasetName::Cifar100] {
        let err = fetch(name, tmp.path()).unwrap_err();
        assert!(matches!(err, DataError::Unavailable { .. }), "{err:?}");
        assert!(err.to_string().contains(&tmp.path().join(name.to_string()).display().to_string()), "{err}");
    }
}
