//! Image sets from files, ours and other tools': gradmatch's safetensors (with metadata), a plain
//! safetensors with `images` and `labels`, the result files of DC / DSA / DM (`res_*.pt`: a dict
//! whose `data` is a list of `[images, labels]`, one pair per experiment) and MTT's
//! `images_best.pt` + `labels_best.pt`. PyTorch files are parsed by candle's pickle reader and read
//! from their zip archive with the `zip` crate.

use anyhow::{bail, Context, Result};
use candle_core::pickle::{Object, Stack, TensorInfo};
use candle_core::{DType, Device, Tensor};
use gradmatch_data::DatasetName;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Where a set file came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetFormat {
    /// Written by `gradmatch condense`: safetensors with `dataset` and the rest of its provenance.
    Gradmatch,
    /// Any safetensors with `images` (N, C, H, W) and `labels` (N,), without metadata.
    Safetensors,
    /// DC / DSA / DM `res_<method>_<dataset>_<model>_<ipc>ipc.pt`.
    DcResults,
    /// MTT's `images_best.pt` with `labels_best.pt` beside it.
    Mtt,
}

impl std::fmt::Display for SetFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SetFormat::Gradmatch => "gradmatch safetensors",
            SetFormat::Safetensors => "plain safetensors",
            SetFormat::DcResults => "DC/DSA/DM results (res_*.pt)",
            SetFormat::Mtt => "MTT images_best.pt + labels_best.pt",
        })
    }
}

/// One labelled image set, images in the dataset's normalised space.
pub struct LabelledImages {
    /// `experiment k` for result files holding several sets, else the file name.
    pub name: String,
    pub images: Tensor,
    pub labels: Vec<u32>,
}

/// The sets of one file and the dataset it names, if any.
pub struct SetFile {
    pub path: PathBuf,
    pub format: SetFormat,
    pub dataset: Option<DatasetName>,
    pub sets: Vec<LabelledImages>,
}

/// Reads every set of `path` (a file, or MTT's folder) onto `device`; errors name the file, what was
/// found and what was expected.
pub fn read(path: &Path, device: &Device) -> Result<SetFile> {
    let mtt_folder = path.is_dir().then(|| path.join("images_best.pt"));
    let file = mtt_folder.as_deref().unwrap_or(path);
    let name = file.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    let read = match file.extension().and_then(|e| e.to_str()) {
        Some("safetensors") => read_safetensors(file, &name, device),
        Some("pt" | "pth") if name == "images_best.pt" => read_mtt(file, device),
        Some("pt" | "pth") => read_dc_results(file, &name, device),
        _ => Err(anyhow::anyhow!("expected a .safetensors file, a res_*.pt file or MTT's images_best.pt (or its folder)")),
    };
    read.with_context(|| format!("reading the image set {}", path.display()))
}

fn read_safetensors(path: &Path, name: &str, device: &Device) -> Result<SetFile> {
    let bytes = std::fs::read(path)?;
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes)?;
    let metadata = header.metadata().clone().unwrap_or_default();
    let tensors = candle_core::safetensors::load_buffer(&bytes, &Device::Cpu)?;
    let get = |key: &str| {
        tensors.get(key).with_context(|| {
            format!("no tensor `{key}`; found {:?}, expected `images` (N, C, H, W) and `labels` (N,)", tensors.keys().collect::<Vec<_>>())
        })
    };
    let set = labelled(name.to_string(), get("images")?, get("labels")?, device)?;
    let (format, dataset) = match metadata.get("dataset") {
        Some(d) => (SetFormat::Gradmatch, Some(d.parse().map_err(|e| anyhow::anyhow!("metadata `dataset`: {e}"))?)),
        None => (SetFormat::Safetensors, None),
    };
    Ok(SetFile { path: path.to_path_buf(), format, dataset, sets: vec![set] })
}

fn read_dc_results(path: &Path, name: &str, device: &Device) -> Result<SetFile> {
    let archive = PthArchive::open(path)?;
    let Object::Dict(entries) = archive.root.clone() else {
        bail!("expected a dict with a `data` list (DC/DSA/DM results), found {}", describe(&archive.root));
    };
    let data = entries
        .into_iter()
        .find(|(k, _)| *k == Object::Unicode("data".into()))
        .map(|(_, v)| v)
        .context("expected a key `data` (a list of [images, labels] pairs), found none")?;
    let Object::List(pairs) = data else { bail!("`data`: expected a list of [images, labels] pairs, found {}", describe(&data)) };
    let mut sets = Vec::new();
    for (k, pair) in pairs.into_iter().enumerate() {
        let (Object::List(mut items) | Object::Tuple(mut items)) = pair else {
            bail!("`data[{k}]`: expected an [images, labels] pair, found another object")
        };
        anyhow::ensure!(items.len() == 2, "`data[{k}]`: expected an [images, labels] pair, found {} items", items.len());
        let labels = archive.tensor(items.pop().expect("two items"), &format!("data[{k}][1]"))?;
        let images = archive.tensor(items.pop().expect("two items"), &format!("data[{k}][0]"))?;
        sets.push(labelled(format!("experiment {k}"), &images, &labels, device).with_context(|| format!("`data[{k}]`"))?);
    }
    anyhow::ensure!(!sets.is_empty(), "`data` is an empty list: the run saved no set");
    Ok(SetFile { path: path.to_path_buf(), format: SetFormat::DcResults, dataset: dataset_of_results_name(name), sets })
}

/// The dataset of `res_<method>_<dataset>_<model>_<ipc>ipc.pt`, as DC, DSA and DM name their files.
fn dataset_of_results_name(name: &str) -> Option<DatasetName> {
    name.strip_prefix("res_")?.split('_').nth(1)?.parse().ok()
}

fn read_mtt(path: &Path, device: &Device) -> Result<SetFile> {
    let labels_path = path.with_file_name("labels_best.pt");
    anyhow::ensure!(labels_path.exists(), "MTT's images_best.pt needs labels_best.pt beside it: {} does not exist", labels_path.display());
    let images = PthArchive::open(path)?.root_tensor().context("images_best.pt")?;
    let labels = PthArchive::open(&labels_path)?.root_tensor().with_context(|| labels_path.display().to_string())?;
    let set = labelled("images_best.pt".into(), &images, &labels, device)?;
    Ok(SetFile { path: path.to_path_buf(), format: SetFormat::Mtt, dataset: None, sets: vec![set] })
}

/// Checks shapes and types and moves the set to `device`: images (N, C, H, W) of any float type,
/// labels (N,) of any integer type.
fn labelled(name: String, images: &Tensor, labels: &Tensor, device: &Device) -> Result<LabelledImages> {
    anyhow::ensure!(
        images.rank() == 4 && images.dtype().is_float(),
        "`images`: expected a float (N, C, H, W) tensor, found {:?} {:?}",
        images.dtype(),
        images.dims()
    );
    anyhow::ensure!(
        labels.rank() == 1 && labels.dtype().is_int(),
        "`labels`: expected an integer (N,) tensor of class indices, found {:?} {:?} (soft labels are not supported)",
        labels.dtype(),
        labels.dims()
    );
    let labels: Vec<i64> = labels.to_dtype(DType::I64)?.to_vec1()?;
    anyhow::ensure!(labels.len() == images.dim(0)?, "{} images but {} labels", images.dim(0)?, labels.len());
    if let Some(bad) = labels.iter().find(|&&l| l < 0) {
        bail!("`labels`: found the negative class {bad}");
    }
    let images = images.to_dtype(DType::F32)?.to_device(device)?;
    Ok(LabelledImages { name, images, labels: labels.into_iter().map(|l| l as u32).collect() })
}

/// A file written by `torch.save`: a zip archive holding the pickled object and one entry per storage.
struct PthArchive {
    path: PathBuf,
    /// The folder of `data.pkl` inside the archive, where the storages are.
    folder: PathBuf,
    root: Object,
}

impl PthArchive {
    fn open(path: &Path) -> Result<PthArchive> {
        let mut zip = zip::ZipArchive::new(std::io::BufReader::new(std::fs::File::open(path)?))
            .context("not a PyTorch file (torch.save writes a zip archive)")?;
        let names: Vec<String> = zip.file_names().map(|f| f.map(|f| f.into_owned())).collect::<Result<_, _>>()?;
        let pickle = names.into_iter().find(|f| f.ends_with("data.pkl")).context("no data.pkl in the archive")?;
        let mut stack = Stack::empty();
        stack.read_loop(&mut std::io::BufReader::new(zip.by_name(&pickle)?))?;
        let folder = PathBuf::from(pickle.strip_suffix(".pkl").expect("ends with .pkl"));
        Ok(PthArchive { path: path.to_path_buf(), folder, root: stack.finalize()? })
    }

    fn root_tensor(&self) -> Result<Tensor> {
        self.tensor(self.root.clone(), "the saved object")
    }

    /// The tensor that `object` rebuilds (`what` names it in errors).
    fn tensor(&self, object: Object, what: &str) -> Result<Tensor> {
        let found = describe(&object);
        let info = object
            .into_tensor_info(Object::Unicode(what.to_string()), &self.folder)?
            .with_context(|| format!("{what}: expected a tensor, found {found}"))?;
        self.load(&info).with_context(|| format!("{what}: reading its storage"))
    }

    fn load(&self, info: &TensorInfo) -> Result<Tensor> {
        anyhow::ensure!(info.layout.is_contiguous(), "a non-contiguous tensor: save it with .contiguous()");
        let mut zip = zip::ZipArchive::new(std::io::BufReader::new(std::fs::File::open(&self.path)?))?;
        let mut reader = zip.by_name(&info.path)?;
        // candle keeps the storage offset in bytes.
        let skip = info.layout.start_offset() as u64;
        std::io::copy(&mut reader.by_ref().take(skip), &mut std::io::sink())?;
        let shape = info.layout.shape();
        let mut bytes = vec![0u8; shape.elem_count() * info.dtype.size_in_bytes()];
        reader.read_exact(&mut bytes).context("the storage is shorter than the tensor")?;
        Ok(Tensor::from_raw_buffer(&bytes, info.dtype, shape.dims(), &Device::Cpu)?)
    }
}

/// A short description of a pickled object for error messages.
fn describe(object: &Object) -> String {
    match object {
        Object::Dict(entries) => {
            let keys: Vec<String> = entries.iter().map(|(k, _)| format!("{k:?}")).collect();
            format!("a dict with keys [{}]", keys.join(", "))
        }
        Object::List(items) => format!("a list of {} items", items.len()),
        Object::Tuple(items) => format!("a tuple of {} items", items.len()),
        Object::Reduce { callable, .. } | Object::Build { callable, .. } => match callable.as_ref() {
            Object::Class { module_name, class_name } => format!("a {module_name}.{class_name} object"),
            _ => "an object".into(),
        },
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/foreign").join(name)
    }

    /// The `k`-th training image of each class, as gradmatch's own loader reads MNIST.
    fn kth_of_each_class(k: usize) -> Vec<f32> {
        let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data");
        let train = gradmatch_data::load(DatasetName::Mnist, &data).unwrap().train;
        let len = train.image_len();
        (0..10).flat_map(|c| train.images[train.class_indices(c)[k] * len..][..len].to_vec()).collect()
    }

    fn assert_is_kth(set: &LabelledImages, k: usize) {
        assert_eq!(set.labels, (0..10).collect::<Vec<u32>>(), "{}", set.name);
        assert_eq!(set.images.dims(), [10, 1, 28, 28], "{}", set.name);
        let ours = kth_of_each_class(k);
        let theirs = set.images.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let worst = ours.iter().zip(&theirs).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(worst < 1e-5, "{}: pixels differ from MNIST's by up to {worst}", set.name);
    }

    fn error_of(path: &Path) -> String {
        match read(path, &Device::Cpu) {
            Ok(_) => panic!("{} should not read", path.display()),
            Err(e) => format!("{e:#}"),
        }
    }

    #[test]
    fn dc_results_hold_one_set_per_experiment_and_name_the_dataset() {
        let file = read(&fixture("res_DC_MNIST_ConvNet_1ipc.pt"), &Device::Cpu).unwrap();
        assert_eq!((file.format, file.dataset, file.sets.len()), (SetFormat::DcResults, Some(DatasetName::Mnist), 2));
        assert_is_kth(&file.sets[0], 0);
        assert_is_kth(&file.sets[1], 1);
        assert_eq!(file.sets[1].name, "experiment 1");
    }

    #[test]
    fn mtt_sets_read_from_the_folder_or_the_images_file() {
        for path in [fixture("mtt"), fixture("mtt/images_best.pt")] {
            let file = read(&path, &Device::Cpu).unwrap();
            assert_eq!((file.format, file.dataset, file.sets.len()), (SetFormat::Mtt, None, 1));
            assert_is_kth(&file.sets[0], 0);
        }
    }

    #[test]
    fn plain_safetensors_read_without_metadata() {
        let file = read(&fixture("plain.safetensors"), &Device::Cpu).unwrap();
        assert_eq!((file.format, file.dataset), (SetFormat::Safetensors, None));
        assert_is_kth(&file.sets[0], 1);
    }

    #[test]
    fn errors_name_the_file_what_was_found_and_what_was_expected() {
        let err = error_of(&fixture("mtt/labels_best.pt"));
        assert!(err.contains("labels_best.pt") && err.contains("`data` list") && err.contains("_rebuild_tensor_v2"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let lonely = dir.path().join("images_best.pt");
        std::fs::copy(fixture("mtt/images_best.pt"), &lonely).unwrap();
        let err = error_of(&lonely);
        assert!(err.contains("needs labels_best.pt beside it"), "{err}");
        let not_torch = dir.path().join("res_DC_MNIST_ConvNet_1ipc.pt");
        std::fs::write(&not_torch, "not a zip").unwrap();
        assert!(error_of(&not_torch).contains("torch.save writes a zip archive"));
        let no_labels = dir.path().join("set.safetensors");
        let images = Tensor::zeros((2, 1, 28, 28), DType::F32, &Device::Cpu).unwrap();
        candle_core::safetensors::save(&std::collections::HashMap::from([("pixels".to_string(), images)]), &no_labels).unwrap();
        let err = error_of(&no_labels);
        assert!(err.contains("set.safetensors") && err.contains("no tensor `images`") && err.contains("\"pixels\""), "{err}");
        assert!(error_of(&fixture("make.py")).contains("expected a .safetensors file"));
    }

    #[test]
    fn result_file_names_give_the_dataset() {
        assert_eq!(dataset_of_results_name("res_DSA_FashionMNIST_ConvNet_10ipc.pt"), Some(DatasetName::FashionMnist));
        assert_eq!(dataset_of_results_name("res_DM_CIFAR10_ConvNet_50ipc.pt"), Some(DatasetName::Cifar10));
        assert_eq!(dataset_of_results_name("res_DC_ImageNet_ConvNet_1ipc.pt"), None);
        assert_eq!(dataset_of_results_name("synthetic.pt"), None);
    }
}
