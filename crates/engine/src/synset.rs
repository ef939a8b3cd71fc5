use crate::config::RunIdentity;
use candle_core::safetensors::Load;
use candle_core::{DType, Device, Result, Tensor};
use gradmatch_core::{host, Parameterisation};
use safetensors::tensor::Dtype as StDtype;
use std::collections::HashMap;
use std::path::Path;

/// Crate version and git commit, recorded in every file this crate writes.
pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), "+", env!("GRADMATCH_COMMIT"));

const FORMAT: &str = "gradmatch-synthetic-set/1";

/// A synthetic (or any) labelled image set with its provenance, stored as safetensors:
/// `images` (N, C, H, W) float32 in normalised space, `labels` (N,) int64, and string metadata
/// (`dataset`, `mean`, `std`, `ipc`, `config`, `iterations`, `seed`, `version`, ...). PyTorch users
/// read it with `safetensors.torch.load_file` and `safe_open(...).metadata()`, no code of ours.
#[derive(Debug, Clone)]
pub struct SyntheticSet {
    pub images: Tensor,
    pub labels: Vec<u32>,
    pub metadata: HashMap<String, String>,
    /// Image-optimiser momentum, present in checkpoints only (stored as `momentum`).
    pub momentum: Option<Tensor>,
}

fn io_error(path: &Path, e: impl std::fmt::Display) -> candle_core::Error {
    candle_core::Error::Msg(format!("{}: {e}", path.display()))
}

/// The file with its JSON header's keys in sorted order: safetensors writes the metadata from a
/// hash map, in an order that changes from run to run, and two identical runs must give identical
/// bytes (so that a checksum confirms a reproduction). Same keys, same length: the offsets hold.
fn with_sorted_header(mut bytes: Vec<u8>) -> Vec<u8> {
    let n = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).expect("safetensors wrote a JSON header");
    // serde_json's maps are ordered by key (the `preserve_order` feature is off).
    let sorted = serde_json::to_vec(&header).expect("a JSON value serialises");
    assert!(sorted.len() <= n, "the same keys and values, reordered, are no longer");
    bytes[8..8 + sorted.len()].copy_from_slice(&sorted);
    bytes[8 + sorted.len()..8 + n].fill(b' ');
    bytes
}

/// Whether a safetensors file is as long as its header says, in the user's words: the library's
/// own error for a cut file is "incomplete metadata, file not fully covered".
pub fn check_length(bytes: &[u8]) -> std::result::Result<(), String> {
    let Some(prefix) = bytes.get(..8) else {
        return Err(format!(
            "this file is truncated or not a safetensors file: {} bytes, fewer than the 8 of its header length",
            bytes.len()
        ));
    };
    let n = u64::from_le_bytes(prefix.try_into().expect("8 bytes"));
    const MAX_HEADER: u64 = 100 << 20;
    if n > MAX_HEADER {
        return Err(format!("not a safetensors file: its first 8 bytes give a header of {n} bytes"));
    }
    let header_end = 8 + n as usize;
    let Some(header) = bytes.get(8..header_end) else {
        return Err(format!("this file is truncated: {} bytes, fewer than the {header_end} of its header alone", bytes.len()));
    };
    let header: serde_json::Value =
        serde_json::from_slice(header).map_err(|e| format!("not a safetensors file: its header is not JSON ({e})"))?;
    let data_end = header.as_object().into_iter().flatten().filter_map(|(_, t)| t.get("data_offsets")?.get(1)?.as_u64()).max();
    let expected = header_end + data_end.unwrap_or(0) as usize;
    match bytes.len() < expected {
        true => Err(format!("this file is truncated: {} of its {expected} bytes (an interrupted copy or download?)", bytes.len())),
        false => Ok(()),
    }
}

impl SyntheticSet {
    pub fn save(&self, path: &Path) -> Result<()> {
        let host = |t: &Tensor| t.to_dtype(DType::F32)?.to_device(&Device::Cpu);
        let labels: Vec<i64> = self.labels.iter().map(|&l| l as i64).collect();
        let mut tensors = vec![("images", host(&self.images)?), ("labels", Tensor::from_vec(labels, self.labels.len(), &Device::Cpu)?)];
        if let Some(momentum) = &self.momentum {
            tensors.push(("momentum", host(momentum)?));
        }
        let mut metadata = self.metadata.clone();
        metadata.insert("format".into(), FORMAT.into());
        metadata.entry("version".into()).or_insert_with(|| VERSION.into());
        // candle's tensors are safetensors views; write then rename: a crash never leaves a
        // half-written checkpoint under the final name.
        let bytes = safetensors::serialize(tensors, Some(metadata)).map_err(|e| io_error(path, e))?;
        // Its folder made if missing: a long run's prefix set must not fail on a folder removed
        // while it ran.
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| io_error(dir, e))?;
        }
        let tmp = path.with_extension("safetensors.tmp");
        std::fs::write(&tmp, with_sorted_header(bytes)).map_err(|e| io_error(&tmp, e))?;
        std::fs::rename(&tmp, path).map_err(|e| io_error(path, e))
    }

    pub fn load(path: &Path, device: &Device) -> Result<SyntheticSet> {
        let data = std::fs::read(path).map_err(|e| io_error(path, e))?;
        check_length(&data).map_err(|e| io_error(path, e))?;
        let (_, meta) = safetensors::SafeTensors::read_metadata(&data).map_err(|e| io_error(path, e))?;
        let st = safetensors::SafeTensors::deserialize(&data).map_err(|e| io_error(path, e))?;
        let images = st.tensor("images").map_err(|e| io_error(path, format!("{e} (expected a tensor `images`)")))?;
        let labels = st.tensor("labels").map_err(|e| io_error(path, format!("{e} (expected a tensor `labels`)")))?;
        if images.dtype() != StDtype::F32 || labels.dtype() != StDtype::I64 || images.shape().len() != 4 {
            return Err(io_error(path, "expected `images` float32 (N, C, H, W) and `labels` int64 (N,)"));
        }
        let momentum = st.tensor("momentum").ok().map(|m| m.load(device)).transpose()?;
        let labels: Vec<u32> = host::vec1::<i64>(&labels.load(&Device::Cpu)?)?.into_iter().map(|l| l as u32).collect();
        let images = images.load(device)?;
        if images.dim(0)? != labels.len() {
            return Err(io_error(path, format!("{} images but {} labels", images.dim(0)?, labels.len())));
        }
        Ok(SyntheticSet { images, labels, metadata: meta.metadata().clone().unwrap_or_default(), momentum })
    }

    /// The set as networks see it: its images decoded by `parameterisation`, the labels repeated
    /// alike; the metadata kept but the run's identity (a decoded set is neither the run's
    /// checkpoint nor to be decoded again).
    pub fn decoded(&self, parameterisation: &dyn Parameterisation) -> Result<SyntheticSet> {
        let (images, labels) = parameterisation.decode_set(&self.images, &self.labels)?;
        let mut metadata = self.metadata.clone();
        metadata.retain(|k, _| k != RunIdentity::KEY && k != RunIdentity::PROVENANCE);
        Ok(SyntheticSet { images, labels, metadata, momentum: None })
    }

    /// A PNG grid: one row per class, `ipc` columns, de-normalised with `mean`/`std` and clipped to
    /// [0, 1]; each image is drawn at `zoom` x its size with a 2-pixel white gap.
    pub fn save_grid(&self, path: &Path, mean: &[f32], std: &[f32], classes: usize, zoom: usize) -> Result<()> {
        let (n, c, h, w) = self.images.dims4()?;
        let values = host::vec1::<f32>(&self.images.to_dtype(DType::F32)?.flatten_all()?)?;
        let per_class = n.div_ceil(classes.max(1));
        let gap = 2;
        let (cell_h, cell_w) = (h * zoom + gap, w * zoom + gap);
        let mut img =
            image::RgbImage::from_pixel((per_class * cell_w + gap) as u32, (classes * cell_h + gap) as u32, image::Rgb([255, 255, 255]));
        let mut column = vec![0usize; classes];
        for (i, &label) in self.labels.iter().enumerate().take(n) {
            let (row, col) = (label as usize, column[label as usize]);
            column[row] += 1;
            for y in 0..h * zoom {
                for x in 0..w * zoom {
                    let mut rgb = [0u8; 3];
                    for (k, px) in rgb.iter_mut().enumerate() {
                        let ch = k.min(c - 1);
                        let v = values[((i * c + ch) * h + y / zoom) * w + x / zoom] * std[ch] + mean[ch];
                        *px = (v.clamp(0.0, 1.0) * 255.0).round() as u8;
                    }
                    img.put_pixel((gap + col * cell_w + x) as u32, (gap + row * cell_h + y) as u32, image::Rgb(rgb));
                }
            }
        }
        img.save(path).map_err(|e| io_error(path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_set_is_saved_into_a_folder_that_is_missing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cells/gone/e0/synthetic.safetensors");
        set().save(&path).unwrap();
        assert_eq!(SyntheticSet::load(&path, &Device::Cpu).unwrap().labels, set().labels);
    }

    fn set() -> SyntheticSet {
        let metadata = (0..20).map(|i| (format!("key{i}"), format!("value {i}"))).collect();
        let images = Tensor::arange(0f32, 12.0, &Device::Cpu).unwrap().reshape((3, 1, 2, 2)).unwrap();
        SyntheticSet { images, labels: vec![0, 1, 2], metadata, momentum: None }
    }

    #[test]
    fn the_same_set_gives_the_same_bytes_and_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.safetensors"), dir.path().join("b.safetensors"));
        set().save(&a).unwrap();
        // A fresh map: another iteration order of the same keys.
        set().save(&b).unwrap();
        assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
        let back = SyntheticSet::load(&a, &Device::Cpu).unwrap();
        assert_eq!(back.labels, [0, 1, 2]);
        assert_eq!(back.metadata["key7"], "value 7");
        assert_eq!(back.images.flatten_all().unwrap().to_vec1::<f32>().unwrap()[11], 11.0);
    }

    #[test]
    fn a_cut_file_is_called_truncated_with_its_sizes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("set.safetensors");
        set().save(&path).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 10]).unwrap();
        let err = SyntheticSet::load(&path, &Device::Cpu).unwrap_err().to_string();
        let expected = format!("this file is truncated: {} of its {} bytes", bytes.len() - 10, bytes.len());
        assert!(err.contains(&expected) && err.contains("set.safetensors"), "{err}");
        assert!(check_length(&bytes[..5]).unwrap_err().contains("5 bytes"));
        assert!(check_length(&bytes[..100]).unwrap_err().contains("of its header alone"));
    }
}
