//! Small IDX files written here, plain and gzipped, and each kind of format error.

use flate2::{write::GzEncoder, Compression};
use gradmatch_data::{idx, load, DataError, DatasetName};
use std::io::Write;
use std::path::Path;

const N: usize = 20;

fn pixel(i: usize, k: usize) -> u8 {
    ((i * 13 + k * 7) % 256) as u8
}

fn images_bytes(n: usize, magic: u32) -> Vec<u8> {
    let mut b = Vec::new();
    for v in [magic, n as u32, 28, 28] {
        b.extend_from_slice(&v.to_be_bytes());
    }
    for i in 0..n {
        b.extend((0..784).map(|k| pixel(i, k)));
    }
    b
}

fn labels_bytes(labels: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&0x801u32.to_be_bytes());
    b.extend_from_slice(&(labels.len() as u32).to_be_bytes());
    b.extend_from_slice(labels);
    b
}

fn default_labels(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 10) as u8).collect()
}

fn write(path: &Path, bytes: &[u8], gz: bool) {
    if gz {
        let mut enc = GzEncoder::new(std::fs::File::create(path).unwrap(), Compression::fast());
        enc.write_all(bytes).unwrap();
        enc.finish().unwrap();
    } else {
        std::fs::write(path, bytes).unwrap();
    }
}

/// Writes a complete MNIST-style folder (train N images, test N/2) and returns it.
fn write_dir(dir: &Path, gz: bool) {
    std::fs::create_dir_all(dir).unwrap();
    let ext = if gz { ".gz" } else { "" };
    write(&dir.join(format!("{}{ext}", idx::TRAIN_IMAGES)), &images_bytes(N, 0x803), gz);
    write(&dir.join(format!("{}{ext}", idx::TRAIN_LABELS)), &labels_bytes(&default_labels(N)), gz);
    write(&dir.join(format!("{}{ext}", idx::TEST_IMAGES)), &images_bytes(N / 2, 0x803), gz);
    write(&dir.join(format!("{}{ext}", idx::TEST_LABELS)), &labels_bytes(&default_labels(N / 2)), gz);
}

fn check_loaded(name: DatasetName, data_dir: &Path) {
    let ds = load(name, data_dir).unwrap();
    assert_eq!(ds.train.len(), N);
    assert_eq!(ds.test.len(), N / 2);
    assert_eq!(ds.train.image_len(), 784);
    assert_eq!(ds.train.labels, default_labels(N).iter().map(|&l| l as u32).collect::<Vec<_>>());
    let (m, s) = (name.mean()[0], name.std()[0]);
    for i in [0, 7, N - 1] {
        for k in [0, 100, 783] {
            let want = (pixel(i, k) as f32 / 255.0 - m) / s;
            assert!((ds.train.images[i * 784 + k] - want).abs() < 1e-6, "image {i} pixel {k}");
        }
    }
    assert_eq!(ds.train.class_indices(3), &[3, 13]);
}

#[test]
fn plain_idx_loads() {
    let tmp = tempfile::tempdir().unwrap();
    write_dir(&tmp.path().join("mnist"), false);
    check_loaded(DatasetName::Mnist, tmp.path());
}

#[test]
fn gzipped_idx_loads() {
    let tmp = tempfile::tempdir().unwrap();
    write_dir(&tmp.path().join("fashion-mnist"), true);
    check_loaded(DatasetName::FashionMnist, tmp.path());
}

/// Writes a folder, lets `spoil` damage it, and returns the load error's message.
fn error_after(spoil: impl FnOnce(&Path)) -> (DataError, String) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("mnist");
    write_dir(&dir, false);
    spoil(&dir);
    let err = load(DatasetName::Mnist, tmp.path()).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("gradmatch data --dataset mnist"), "no fetch hint in: {msg}");
    (err, msg)
}

#[test]
fn bad_magic_is_reported() {
    let (err, msg) = error_after(|d| write(&d.join(idx::TRAIN_IMAGES), &images_bytes(N, 0x804), false));
    assert!(matches!(err, DataError::BadMagic { .. }), "{err:?}");
    assert!(msg.contains("train-images-idx3-ubyte") && msg.contains("0x00000803") && msg.contains("0x00000804"), "{msg}");
}

#[test]
fn truncated_file_is_reported() {
    let (err, msg) = error_after(|d| {
        let b = images_bytes(N / 2, 0x803);
        write(&d.join(idx::TEST_IMAGES), &b[..b.len() - 10], false);
    });
    assert!(matches!(err, DataError::Length { .. }), "{err:?}");
    let expected = 16 + N / 2 * 784;
    assert!(msg.contains("t10k-images-idx3-ubyte"), "{msg}");
    assert!(msg.contains(&expected.to_string()) && msg.contains(&(expected - 10).to_string()), "{msg}");
}

#[test]
fn truncated_gzip_is_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("fashion-mnist");
    write_dir(&dir, true);
    let path = dir.join(format!("{}.gz", idx::TRAIN_IMAGES));
    let b = std::fs::read(&path).unwrap();
    std::fs::write(&path, &b[..b.len() / 2]).unwrap();
    let msg = load(DatasetName::FashionMnist, tmp.path()).unwrap_err().to_string();
    assert!(msg.contains("train-images-idx3-ubyte.gz") && msg.contains("fashion-mnist"), "{msg}");
}

#[test]
fn label_out_of_range_is_reported() {
    let (err, msg) = error_after(|d| {
        let mut l = default_labels(N);
        l[5] = 12;
        write(&d.join(idx::TRAIN_LABELS), &labels_bytes(&l), false);
    });
    assert!(matches!(err, DataError::LabelOutOfRange { index: 5, .. }), "{err:?}");
    assert!(msg.contains("train-labels-idx1-ubyte") && msg.contains("12") && msg.contains("0..=9"), "{msg}");
}

#[test]
fn count_mismatch_is_reported() {
    let (err, msg) = error_after(|d| write(&d.join(idx::TRAIN_LABELS), &labels_bytes(&default_labels(N - 1)), false));
    assert!(matches!(err, DataError::CountMismatch { images: 20, labels: 19, .. }), "{err:?}");
    assert!(msg.contains("train-images-idx3-ubyte") && msg.contains("train-labels-idx1-ubyte"), "{msg}");
    assert!(msg.contains("20") && msg.contains("19"), "{msg}");
}

#[test]
fn wrong_image_size_is_reported() {
    let (err, msg) = error_after(|d| {
        let mut b = images_bytes(N, 0x803);
        b[8..12].copy_from_slice(&14u32.to_be_bytes());
        b[12..16].copy_from_slice(&56u32.to_be_bytes());
        write(&d.join(idx::TRAIN_IMAGES), &b, false);
    });
    assert!(matches!(err, DataError::Format { .. }), "{err:?}");
    assert!(msg.contains("28x28") && msg.contains("14x56"), "{msg}");
}

#[test]
fn missing_file_is_reported_without_fetching() {
    let tmp = tempfile::tempdir().unwrap();
    let hint = DatasetName::Mnist.fetch_hint(tmp.path());
    let err = idx::load_dir(tmp.path(), DatasetName::Mnist, &hint).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, DataError::Missing { .. }), "{err:?}");
    assert!(msg.contains("train-images-idx3-ubyte.gz") && msg.contains("gradmatch data --dataset mnist"), "{msg}");
}
