//! SVHN cropped digits, MATLAB v5 `.mat` files: `X` uint8 of shape 32x32x3xN (column-major),
//! `y` Nx1 with labels 1..=10 where 10 means digit 0.

use crate::{read_file, DataError, Result};
use matfile::{MatFile, NumericData};
use std::path::Path;

pub const TRAIN: &str = "train_32x32.mat";
pub const TEST: &str = "test_32x32.mat";

fn format_err(path: &Path, expected: &str, found: String, hint: &str) -> DataError {
    DataError::Format { path: path.to_path_buf(), expected: expected.to_string(), found, hint: hint.to_string() }
}

fn class_name(data: &NumericData) -> &'static str {
    match data {
        NumericData::Int8 { .. } => "int8",
        NumericData::UInt8 { .. } => "uint8",
        NumericData::Int16 { .. } => "int16",
        NumericData::UInt16 { .. } => "uint16",
        NumericData::Int32 { .. } => "int32",
        NumericData::UInt32 { .. } => "uint32",
        NumericData::Int64 { .. } => "int64",
        NumericData::UInt64 { .. } => "uint64",
        NumericData::Single { .. } => "single",
        NumericData::Double { .. } => "double",
    }
}

/// Label values as f64 whatever numeric class `y` was saved with.
fn as_f64(data: &NumericData) -> Vec<f64> {
    match data {
        NumericData::Int8 { real, .. } => real.iter().map(|&v| v as f64).collect(),
        NumericData::UInt8 { real, .. } => real.iter().map(|&v| v as f64).collect(),
        NumericData::Int16 { real, .. } => real.iter().map(|&v| v as f64).collect(),
        NumericData::UInt16 { real, .. } => real.iter().map(|&v| v as f64).collect(),
        NumericData::Int32 { real, .. } => real.iter().map(|&v| v as f64).collect(),
        NumericData::UInt32 { real, .. } => real.iter().map(|&v| v as f64).collect(),
        NumericData::Int64 { real, .. } => real.iter().map(|&v| v as f64).collect(),
        NumericData::UInt64 { real, .. } => real.iter().map(|&v| v as f64).collect(),
        NumericData::Single { real, .. } => real.iter().map(|&v| v as f64).collect(),
        NumericData::Double { real, .. } => real.clone(),
    }
}

/// Reads one SVHN `.mat` file into CHW pixels and labels 0..=9.
pub fn read_mat(path: &Path, hint: &str) -> Result<(Vec<u8>, Vec<u32>)> {
    const EXPECTED: &str = "a MATLAB v5 .mat file with uint8 X [32,32,3,N] and y [N,1]";
    let bytes = read_file(path, EXPECTED, hint)?;
    let mat = MatFile::parse(&bytes[..]).map_err(|e| {
        format_err(
            path,
            EXPECTED,
            format!("a file matfile cannot parse ({e}; MATLAB v7.3/HDF5 files are not supported, re-save with -v7)"),
            hint,
        )
    })?;
    let x = mat.find_by_name("X").ok_or_else(|| format_err(path, EXPECTED, "no numeric variable X".into(), hint))?;
    let y = mat.find_by_name("y").ok_or_else(|| format_err(path, EXPECTED, "no numeric variable y".into(), hint))?;

    let dims = x.size();
    if dims.len() != 4 || dims[..3] != [32, 32, 3] {
        return Err(format_err(path, "X of shape [32,32,3,N]", format!("X of shape {dims:?}"), hint));
    }
    let n = dims[3];
    let src = match x.data() {
        NumericData::UInt8 { real, .. } => real,
        other => {
            let found = format!("X of class {}", class_name(other));
            return Err(format_err(path, "X of class uint8", found, hint));
        }
    };
    if src.len() != n * 3072 {
        return Err(DataError::Length {
            path: path.to_path_buf(),
            expected: format!("{} values in X ({n} images of 32x32x3)", n * 3072),
            found: src.len() as u64,
            hint: hint.to_string(),
        });
    }

    let ydims = y.size();
    let labels_raw = as_f64(y.data());
    if labels_raw.len() != n || ydims.iter().product::<usize>() != n {
        return Err(DataError::CountMismatch {
            images_path: path.join("X"),
            images: n,
            labels_path: path.join("y"),
            labels: labels_raw.len(),
            hint: hint.to_string(),
        });
    }
    let mut labels = Vec::with_capacity(n);
    for (index, &v) in labels_raw.iter().enumerate() {
        if v.fract() != 0.0 || !(1.0..=10.0).contains(&v) {
            return Err(DataError::LabelOutOfRange {
                path: path.to_path_buf(),
                index,
                found: v.to_string(),
                expected: "1..=10 (10 meaning digit 0)".into(),
                hint: hint.to_string(),
            });
        }
        labels.push(v as u32 % 10);
    }

    // Column-major (h, w, c, n) lives at h + 32w + 1024c + 3072n; CHW wants c*1024 + 32h + w.
    let mut pixels = vec![0u8; n * 3072];
    for (img, dst) in pixels.chunks_exact_mut(3072).enumerate() {
        let s = &src[img * 3072..(img + 1) * 3072];
        for c in 0..3 {
            for h in 0..32 {
                for w in 0..32 {
                    dst[c * 1024 + h * 32 + w] = s[h + 32 * w + 1024 * c];
                }
            }
        }
    }
    Ok((pixels, labels))
}

type RawSplit = (Vec<u8>, Vec<u32>);

pub fn load_dir(dir: &Path, hint: &str) -> Result<(RawSplit, RawSplit)> {
    Ok((read_mat(&dir.join(TRAIN), hint)?, read_mat(&dir.join(TEST), hint)?))
}
