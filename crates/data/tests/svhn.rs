//! SVHN loader on real MATLAB v5 files written by a minimal MAT writer below.

use gradmatch_data::{load, DataError, DatasetName};
use std::path::Path;

// MAT v5 data types and array classes (MATLAB "MAT-File Format" reference).
const MI_INT8: u32 = 1;
const MI_UINT8: u32 = 2;
const MI_INT32: u32 = 5;
const MI_UINT32: u32 = 6;
const MI_DOUBLE: u32 = 9;
const MI_MATRIX: u32 = 14;
const MX_DOUBLE_CLASS: u32 = 6;
const MX_UINT8_CLASS: u32 = 9;

fn pad8(b: &mut Vec<u8>) {
    b.resize(b.len().next_multiple_of(8), 0);
}

/// A tagged data element in the long format, padded to 8 bytes.
fn element(ty: u32, data: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&ty.to_le_bytes());
    b.extend_from_slice(&(data.len() as u32).to_le_bytes());
    b.extend_from_slice(data);
    pad8(&mut b);
    b
}

/// The array name; names of up to 4 bytes use the small element format, as MATLAB writes them.
fn name_element(name: &str) -> Vec<u8> {
    if name.len() <= 4 {
        let mut b = ((name.len() as u32) << 16 | MI_INT8).to_le_bytes().to_vec();
        b.extend_from_slice(name.as_bytes());
        pad8(&mut b);
        b
    } else {
        element(MI_INT8, name.as_bytes())
    }
}

/// An uncompressed miMATRIX element: array flags, dimensions, name, real part.
fn matrix(name: &str, class: u32, dims: &[u32], real_type: u32, real: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    let flags: Vec<u8> = [class, 0].iter().flat_map(|v: &u32| v.to_le_bytes()).collect();
    body.extend(element(MI_UINT32, &flags));
    let dims: Vec<u8> = dims.iter().flat_map(|d| (*d as i32).to_le_bytes()).collect();
    body.extend(element(MI_INT32, &dims));
    body.extend(name_element(name));
    body.extend(element(real_type, real));
    element(MI_MATRIX, &body)
}

fn header() -> Vec<u8> {
    let mut text = b"MATLAB 5.0 MAT-file, Platform: GLNXA64, Created on: Thu Jan  1 00:00:00 2015".to_vec();
    text.resize(116, b' ');
    text.extend_from_slice(&[0; 8]); // subsystem data offset: none
    text.extend_from_slice(&0x0100u16.to_le_bytes());
    text.extend_from_slice(b"IM"); // written little-endian
    assert_eq!(text.len(), 128);
    text
}

/// Pixel (h, w, c) of image n.
fn pixel(n: usize, h: usize, w: usize, c: usize) -> u8 {
    ((h * 7 + w * 3 + c * 50 + n * 20) % 256) as u8
}

enum Labels<'a> {
    Double(&'a [f64]),
    UInt8(&'a [u8]),
}

fn write_mat(path: &Path, n: usize, labels: Labels) {
    let mut x = vec![0u8; 3072 * n];
    for i in 0..n {
        for c in 0..3 {
            for w in 0..32 {
                for h in 0..32 {
                    x[h + 32 * w + 1024 * c + 3072 * i] = pixel(i, h, w, c);
                }
            }
        }
    }
    let mut file = header();
    file.extend(matrix("X", MX_UINT8_CLASS, &[32, 32, 3, n as u32], MI_UINT8, &x));
    file.extend(match labels {
        Labels::Double(y) => {
            let bytes: Vec<u8> = y.iter().flat_map(|v| v.to_le_bytes()).collect();
            matrix("y", MX_DOUBLE_CLASS, &[y.len() as u32, 1], MI_DOUBLE, &bytes)
        }
        // MATLAB stores integer-valued doubles compactly; the class stays double.
        Labels::UInt8(y) => matrix("y", MX_DOUBLE_CLASS, &[y.len() as u32, 1], MI_UINT8, y),
    });
    std::fs::write(path, file).unwrap();
}

fn check_pixels(images: &[f32], n: usize) {
    let (m, s) = (DatasetName::Svhn.mean(), DatasetName::Svhn.std());
    for (h, w, c) in [(0, 0, 0), (1, 0, 0), (0, 1, 0), (31, 2, 1), (4, 30, 2), (31, 31, 2)] {
        let got = images[n * 3072 + c * 1024 + h * 32 + w];
        let want = (pixel(n, h, w, c) as f32 / 255.0 - m[c]) / s[c];
        assert!((got - want).abs() < 1e-6, "image {n} (h{h},w{w},c{c}): {got} vs {want}");
    }
}

#[test]
fn svhn_mat_loads_with_label_10_as_0() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("svhn");
    std::fs::create_dir_all(&dir).unwrap();
    write_mat(&dir.join("train_32x32.mat"), 3, Labels::Double(&[10.0, 1.0, 5.0]));
    write_mat(&dir.join("test_32x32.mat"), 2, Labels::UInt8(&[3, 10]));
    let ds = load(DatasetName::Svhn, tmp.path()).unwrap();
    assert_eq!(ds.train.labels, vec![0, 1, 5]);
    assert_eq!(ds.test.labels, vec![3, 0]);
    assert_eq!(ds.train.image_len(), 3072);
    for n in 0..3 {
        check_pixels(&ds.train.images, n);
    }
    check_pixels(&ds.test.images, 1);
    assert_eq!(ds.train.class_indices(0), &[0]);
}

#[test]
fn svhn_bad_label_is_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("svhn");
    std::fs::create_dir_all(&dir).unwrap();
    write_mat(&dir.join("train_32x32.mat"), 2, Labels::Double(&[3.0, 11.0]));
    write_mat(&dir.join("test_32x32.mat"), 1, Labels::Double(&[1.0]));
    let err = load(DatasetName::Svhn, tmp.path()).unwrap_err();
    assert!(matches!(err, DataError::LabelOutOfRange { index: 1, .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("train_32x32.mat") && msg.contains("11") && msg.contains("1..=10"), "{msg}");
}

#[test]
fn svhn_count_mismatch_and_garbage_are_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("svhn");
    std::fs::create_dir_all(&dir).unwrap();
    write_mat(&dir.join("train_32x32.mat"), 2, Labels::Double(&[3.0, 1.0, 2.0]));
    std::fs::write(dir.join("test_32x32.mat"), b"not a mat file").unwrap();
    let err = load(DatasetName::Svhn, tmp.path()).unwrap_err();
    assert!(matches!(err, DataError::CountMismatch { images: 2, labels: 3, .. }), "{err:?}");

    write_mat(&dir.join("train_32x32.mat"), 1, Labels::Double(&[3.0]));
    let err = load(DatasetName::Svhn, tmp.path()).unwrap_err();
    assert!(matches!(err, DataError::Format { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("test_32x32.mat") && msg.contains("MATLAB v5"), "{msg}");
    assert!(msg.contains("housenumbers"), "{msg}");
}
