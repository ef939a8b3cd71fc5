//! The crate's error type. Every message names the file, what was expected, what was found,
//! and ends with a hint on how to obtain the data.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("missing file {path} (expected {expected}). {hint}")]
    Missing { path: PathBuf, expected: String, hint: String },

    #[error("cannot read {path}: {source}. {hint}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
        hint: String,
    },

    #[error("wrong length: {path} holds {found} bytes, expected {expected} (truncated or not the right file). {hint}")]
    Length { path: PathBuf, expected: String, found: u64, hint: String },

    #[error("bad magic number in {path}: expected {expected:#010x}, found {found:#010x}. {hint}")]
    BadMagic { path: PathBuf, expected: u32, found: u32, hint: String },

    #[error("bad format in {path}: expected {expected}, found {found}. {hint}")]
    Format { path: PathBuf, expected: String, found: String, hint: String },

    #[error("label out of range in {path}: record {index} has label {found}, expected {expected}. {hint}")]
    LabelOutOfRange { path: PathBuf, index: usize, found: String, expected: String, hint: String },

    #[error("image and label counts differ: {images_path} holds {images} images, expected the {labels} labels of {labels_path}. {hint}")]
    CountMismatch { images_path: PathBuf, images: usize, labels_path: PathBuf, labels: usize, hint: String },

    #[error("command `{command}` (in {dir}) failed: expected exit status 0, found {status}; stderr:\n{stderr}\n{hint}")]
    Command { command: String, dir: PathBuf, status: String, stderr: String, hint: String },

    #[error("checksum mismatch for {path}: expected md5 {expected}, found {found}. {hint}")]
    Checksum { path: PathBuf, expected: String, found: String, hint: String },

    #[error("{dataset} cannot be fetched on this machine: expected its files in {dir}, found none. {hint}")]
    Unavailable { dataset: String, dir: PathBuf, hint: String },

    #[error("unknown dataset {found:?}: expected one of {expected}")]
    UnknownDataset { found: String, expected: String },
}

impl DataError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error, hint: &str) -> Self {
        DataError::Io { path: path.into(), source, hint: hint.to_string() }
    }
}

pub type Result<T, E = DataError> = std::result::Result<T, E>;
