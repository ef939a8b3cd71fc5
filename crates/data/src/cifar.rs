//! CIFAR-10 / CIFAR-100 binary batches. Each record is the label byte(s) followed by 3072 bytes:
//! the R, G and B planes of a row-major 32x32 image, i.e. already CHW.

use crate::{read_file, DataError, Result};
use std::path::{Path, PathBuf};

pub const IMAGE_BYTES: usize = 3 * 32 * 32;
pub const CIFAR10_TRAIN: [&str; 5] = ["data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin"];
pub const CIFAR10_TEST: &str = "test_batch.bin";
pub const CIFAR10_SUBDIR: &str = "cifar-10-batches-bin";
pub const CIFAR100_TRAIN: &str = "train.bin";
pub const CIFAR100_TEST: &str = "test.bin";
pub const CIFAR100_SUBDIR: &str = "cifar-100-binary";

/// Reads one batch file. `label_bytes` is 1 (CIFAR-10) or 2 (CIFAR-100: coarse, fine);
/// the last label byte is used. Appends pixels and labels to the output vectors.
pub fn read_batch(
    path: &Path,
    label_bytes: usize,
    num_classes: usize,
    hint: &str,
    pixels: &mut Vec<u8>,
    labels: &mut Vec<u32>,
) -> Result<()> {
    let record = label_bytes + IMAGE_BYTES;
    let bytes = read_file(path, &format!("a CIFAR binary batch of {record}-byte records"), hint)?;
    if bytes.is_empty() || bytes.len() % record != 0 {
        return Err(DataError::Length {
            path: path.to_path_buf(),
            expected: format!("a positive multiple of {record} bytes ({label_bytes} label byte(s) + {IMAGE_BYTES} pixels per record)"),
            found: bytes.len() as u64,
            hint: hint.to_string(),
        });
    }
    let first = labels.len();
    for (i, rec) in bytes.chunks_exact(record).enumerate() {
        let label = rec[label_bytes - 1];
        if label as usize >= num_classes {
            return Err(DataError::LabelOutOfRange {
                path: path.to_path_buf(),
                index: i,
                found: label.to_string(),
                expected: format!("0..={}", num_classes - 1),
                hint: hint.to_string(),
            });
        }
        labels.push(label as u32);
        pixels.extend_from_slice(&rec[label_bytes..]);
    }
    debug_assert_eq!(pixels.len(), labels.len() * IMAGE_BYTES, "from record {first}");
    Ok(())
}

/// `dir` if it holds `probe`, else `dir/subdir` if that does, else `dir` (so errors name it).
fn base_dir(dir: &Path, subdir: &str, probe: &str) -> PathBuf {
    if !dir.join(probe).is_file() && dir.join(subdir).join(probe).is_file() {
        dir.join(subdir)
    } else {
        dir.to_path_buf()
    }
}

type RawSplit = (Vec<u8>, Vec<u32>);

fn load_files(base: &Path, train: &[&str], test: &str, label_bytes: usize, classes: usize, hint: &str) -> Result<(RawSplit, RawSplit)> {
    let mut tr = (Vec::new(), Vec::new());
    for f in train {
        read_batch(&base.join(f), label_bytes, classes, hint, &mut tr.0, &mut tr.1)?;
    }
    let mut te = (Vec::new(), Vec::new());
    read_batch(&base.join(test), label_bytes, classes, hint, &mut te.0, &mut te.1)?;
    Ok((tr, te))
}

/// CIFAR-10 from `dir` or `dir/cifar-10-batches-bin/`.
pub fn load_cifar10(dir: &Path, hint: &str) -> Result<(RawSplit, RawSplit)> {
    let base = base_dir(dir, CIFAR10_SUBDIR, CIFAR10_TRAIN[0]);
    load_files(&base, &CIFAR10_TRAIN, CIFAR10_TEST, 1, 10, hint)
}

/// CIFAR-100 (fine labels) from `dir` or `dir/cifar-100-binary/`.
pub fn load_cifar100(dir: &Path, hint: &str) -> Result<(RawSplit, RawSplit)> {
    let base = base_dir(dir, CIFAR100_SUBDIR, CIFAR100_TRAIN);
    load_files(&base, &[CIFAR100_TRAIN], CIFAR100_TEST, 2, 100, hint)
}
