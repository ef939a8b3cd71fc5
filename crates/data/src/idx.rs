//! IDX files (MNIST, FashionMNIST), plain or gzipped.

use crate::{read_file, DataError, DatasetName, Result};
use flate2::read::GzDecoder;
use std::io::Read;
use std::path::{Path, PathBuf};

pub const IMAGES_MAGIC: u32 = 0x0000_0803;
pub const LABELS_MAGIC: u32 = 0x0000_0801;

pub const TRAIN_IMAGES: &str = "train-images-idx3-ubyte";
pub const TRAIN_LABELS: &str = "train-labels-idx1-ubyte";
pub const TEST_IMAGES: &str = "t10k-images-idx3-ubyte";
pub const TEST_LABELS: &str = "t10k-labels-idx1-ubyte";
pub const FILES: [&str; 4] = [TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS];

/// Decoded IDX image file: `pixels` holds `count * rows * cols` bytes, row-major.
#[derive(Clone, Debug)]
pub struct IdxImages {
    pub count: usize,
    pub rows: usize,
    pub cols: usize,
    pub pixels: Vec<u8>,
}

/// `dir/name` if it exists, else `dir/name.gz` if that exists.
pub fn resolve(dir: &Path, name: &str) -> Option<PathBuf> {
    let plain = dir.join(name);
    if plain.is_file() {
        return Some(plain);
    }
    let gz = dir.join(format!("{name}.gz"));
    gz.is_file().then_some(gz)
}

/// Whether all four IDX files (plain or gzipped) are in `dir`.
pub fn files_present(dir: &Path) -> bool {
    FILES.iter().all(|f| resolve(dir, f).is_some())
}

/// Reads a file, gunzipping it when it starts with the gzip magic (whatever its name).
fn read_maybe_gz(path: &Path, expected: &str, hint: &str) -> Result<Vec<u8>> {
    let raw = read_file(path, expected, hint)?;
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        GzDecoder::new(&raw[..]).read_to_end(&mut out).map_err(|e| DataError::io(path, e, hint))?;
        Ok(out)
    } else {
        Ok(raw)
    }
}

fn be_u32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn check_len(path: &Path, bytes: &[u8], expected: usize, what: &str, hint: &str) -> Result<()> {
    if bytes.len() != expected {
        return Err(DataError::Length {
            path: path.to_path_buf(),
            expected: format!("{expected} bytes ({what})"),
            found: bytes.len() as u64,
            hint: hint.to_string(),
        });
    }
    Ok(())
}

fn check_magic(path: &Path, bytes: &[u8], expected: u32, header: usize, hint: &str) -> Result<()> {
    if bytes.len() < header {
        return Err(DataError::Length {
            path: path.to_path_buf(),
            expected: format!("at least the {header}-byte IDX header"),
            found: bytes.len() as u64,
            hint: hint.to_string(),
        });
    }
    let found = be_u32(bytes, 0);
    if found != expected {
        return Err(DataError::BadMagic { path: path.to_path_buf(), expected, found, hint: hint.to_string() });
    }
    Ok(())
}

/// Reads an IDX3 image file (magic 0x00000803, big-endian dims N, rows, cols).
pub fn read_images(path: &Path, hint: &str) -> Result<IdxImages> {
    let bytes = read_maybe_gz(path, "an IDX image file (magic 0x00000803)", hint)?;
    check_magic(path, &bytes, IMAGES_MAGIC, 16, hint)?;
    let (count, rows, cols) = (be_u32(&bytes, 4) as usize, be_u32(&bytes, 8) as usize, be_u32(&bytes, 12) as usize);
    let what = format!("16-byte header + {count} images of {rows}x{cols}");
    check_len(path, &bytes, 16 + count * rows * cols, &what, hint)?;
    let mut pixels = bytes;
    pixels.drain(..16);
    Ok(IdxImages { count, rows, cols, pixels })
}

/// Reads an IDX1 label file (magic 0x00000801, big-endian count N).
pub fn read_labels(path: &Path, hint: &str) -> Result<Vec<u8>> {
    let bytes = read_maybe_gz(path, "an IDX label file (magic 0x00000801)", hint)?;
    check_magic(path, &bytes, LABELS_MAGIC, 8, hint)?;
    let count = be_u32(&bytes, 4) as usize;
    check_len(path, &bytes, 8 + count, &format!("8-byte header + {count} labels"), hint)?;
    Ok(bytes[8..].to_vec())
}

/// Reads one image/label file pair, checking the image size, the counts and the label range.
/// Returns raw pixels (CHW with C = 1) and labels.
pub fn load_pair(images_path: &Path, labels_path: &Path, name: DatasetName, hint: &str) -> Result<(Vec<u8>, Vec<u32>)> {
    let images = read_images(images_path, hint)?;
    let (_, h, w) = name.shape();
    if (images.rows, images.cols) != (h, w) {
        return Err(DataError::Format {
            path: images_path.to_path_buf(),
            expected: format!("{h}x{w} images"),
            found: format!("{}x{} images", images.rows, images.cols),
            hint: hint.to_string(),
        });
    }
    let labels = read_labels(labels_path, hint)?;
    if labels.len() != images.count {
        return Err(DataError::CountMismatch {
            images_path: images_path.to_path_buf(),
            images: images.count,
            labels_path: labels_path.to_path_buf(),
            labels: labels.len(),
            hint: hint.to_string(),
        });
    }
    let classes = name.num_classes();
    if let Some(index) = labels.iter().position(|&l| l as usize >= classes) {
        return Err(DataError::LabelOutOfRange {
            path: labels_path.to_path_buf(),
            index,
            found: labels[index].to_string(),
            expected: format!("0..={}", classes - 1),
            hint: hint.to_string(),
        });
    }
    Ok((images.pixels, labels.into_iter().map(u32::from).collect()))
}

type RawSplit = (Vec<u8>, Vec<u32>);

/// Loads the train and test pairs of an MNIST-style folder.
pub fn load_dir(dir: &Path, name: DatasetName, hint: &str) -> Result<(RawSplit, RawSplit)> {
    let path = |f: &str| -> Result<PathBuf> {
        resolve(dir, f).ok_or_else(|| DataError::Missing {
            path: dir.join(f),
            expected: format!("the IDX file {f} or {f}.gz"),
            hint: hint.to_string(),
        })
    };
    let train = load_pair(&path(TRAIN_IMAGES)?, &path(TRAIN_LABELS)?, name, hint)?;
    let test = load_pair(&path(TEST_IMAGES)?, &path(TEST_LABELS)?, name, hint)?;
    Ok((train, test))
}
