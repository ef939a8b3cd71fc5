//! Image sets from files, ours and other tools': gradmatch's safetensors (with metadata), a plain
//! safetensors with `images` and `labels`, the result files of DC / DSA / DM (`res_*.pt`: a dict
//! whose `data` is a list of `[images, labels]`, one pair per experiment) and MTT's
//! `images_best.pt` + `labels_best.pt` (+ `lr_best.pt`). PyTorch files are parsed by candle's pickle
//! reader and read from their zip archive with the `zip` crate.
//!
//! Each format is in its tool's normalisation ([`Normalisation`]): [`read_as_ours`] converts the
//! images to gradmatch's, and [`export_for`] writes a set in another tool's.

mod normalisation;

use crate::provenance::Provenance;
use anyhow::{bail, Context, Result};
use candle_core::pickle::{Object, Stack, TensorInfo};
use candle_core::{DType, Device, Tensor};
use gradmatch_core::host;
use gradmatch_data::DatasetName;
use gradmatch_engine::SyntheticSet;
use gradmatch_plugins::Plugins;
pub use normalisation::Normalisation;
use std::collections::HashMap;
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
    /// The normalisation the images are in: the format's tool's as read (a plain safetensors:
    /// gradmatch's; ours: its `normalisation` metadata, else gradmatch's), gradmatch's after
    /// [`read_as_ours`].
    pub normalisation: Normalisation,
    /// What [`read_as_ours`] did to the images, for the user: the tool and both sets of constants.
    pub conversion: Option<String>,
    /// The learning rate the set was distilled for: MTT's learned `syn_lr` (`lr_best.pt`), when saved.
    pub learning_rate: Option<f64>,
    /// How the stored images were decoded into those the networks train on, when not plain pixels.
    pub decoding: Option<String>,
}

/// Where sets are read to, and the plug-ins that decode a set by its provenance.
#[derive(Clone, Copy)]
pub struct Reader<'a> {
    pub device: &'a Device,
    pub plugins: &'a Plugins,
}

/// What the user says about a file that the file cannot say (`evaluate`'s flags).
#[derive(Debug, Clone, Copy, Default)]
pub struct Declared {
    /// `--dataset`: required when the file names none; must agree when it does.
    pub dataset: Option<DatasetName>,
    /// `--normalisation`: the images are in this tool's normalisation, whatever the format says.
    pub normalisation: Option<Normalisation>,
    /// `--not-zca`: an MTT set was distilled without `--zca` (MTT's files do not say).
    pub not_zca: bool,
}

/// What `evaluate` reads: every set of `path` in gradmatch's normalisation of its dataset (the file's,
/// or `--dataset`), converted from the normalisation its format (or `declared`) says it is in; the
/// conversion, if any, is described in [`SetFile::conversion`].
pub fn read_as_ours(path: &Path, at: Reader, declared: &Declared) -> Result<(SetFile, DatasetName)> {
    let mut file = read(path, at, declared)?;
    let dataset = dataset_of(&file, declared.dataset)?;
    let from = declared.normalisation.unwrap_or(file.normalisation);
    let mut converted = false;
    for set in &mut file.sets {
        if let Some(images) = normalisation::convert(&set.images, dataset, from, Normalisation::Gradmatch)? {
            set.images = images;
            converted = true;
        }
    }
    if converted {
        let why = match declared.normalisation {
            Some(n) => format!("--normalisation {n}"),
            None if file.format == SetFormat::Gradmatch => "its `normalisation` metadata".to_string(),
            None => format!("as a {} is saved", file.format),
        };
        file.conversion = Some(format!(
            "images read in {} ({why}) and converted to {}",
            from.describe(dataset),
            Normalisation::Gradmatch.describe(dataset)
        ));
    }
    file.normalisation = Normalisation::Gradmatch;
    file.dataset = Some(dataset);
    Ok((file, dataset))
}

/// The file's dataset, or `--dataset` when the file names none (they must agree when both do).
fn dataset_of(file: &SetFile, flag: Option<DatasetName>) -> Result<DatasetName> {
    match (file.dataset, flag) {
        (Some(named), Some(given)) if named != given => {
            bail!("{}: the file is a set of {named}, but --dataset {given} was given", file.path.display())
        }
        (Some(d), _) | (None, Some(d)) => Ok(d),
        (None, None) => bail!(
            "{}: a {} does not name its dataset; give --dataset ({})",
            file.path.display(),
            file.format,
            DatasetName::all().map(|d| d.as_str()).join(", ")
        ),
    }
}

/// Writes `set` (images in gradmatch's normalisation of `dataset`, as `condense` saves them) to `path`
/// as a gradmatch safetensors whose images are in `tool`'s normalisation: metadata `normalisation`
/// names it, `mean` and `std` are its constants. [`read_as_ours`] converts it back.
pub fn export_for(set: &SyntheticSet, dataset: DatasetName, tool: Normalisation, path: &Path) -> Result<()> {
    let images = normalisation::convert(&set.images, dataset, Normalisation::Gradmatch, tool)?.unwrap_or_else(|| set.images.clone());
    let mut metadata = set.metadata.clone();
    let constants = tool.constants(dataset);
    metadata.insert("dataset".into(), dataset.to_string());
    metadata.insert("normalisation".into(), tool.name().into());
    metadata.insert("mean".into(), serde_json::to_string(constants.mean)?);
    metadata.insert("std".into(), serde_json::to_string(constants.std)?);
    let exported = SyntheticSet { images, labels: set.labels.clone(), metadata, momentum: None };
    exported.save(path).with_context(|| format!("writing {}", path.display()))
}

/// Reads every set of `path` (a file, or MTT's folder) onto `device` as saved, in its tool's
/// normalisation; errors name the file, what was found and what was expected.
pub fn read(path: &Path, at: Reader, declared: &Declared) -> Result<SetFile> {
    let mtt_folder = path.is_dir().then(|| path.join("images_best.pt"));
    let file = mtt_folder.as_deref().unwrap_or(path);
    let name = file.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    let read = match file.extension().and_then(|e| e.to_str()) {
        Some("safetensors") => read_safetensors(file, &name, at),
        Some("pt" | "pth") if name == "images_best.pt" => read_mtt(file, at.device, declared.not_zca),
        Some("pt" | "pth") => read_dc_results(file, &name, at.device),
        _ => Err(anyhow::anyhow!("expected a .safetensors file, a res_*.pt file or MTT's images_best.pt (or its folder)")),
    };
    read.with_context(|| format!("reading the image set {}", path.display()))
}

fn read_safetensors(path: &Path, name: &str, at: Reader) -> Result<SetFile> {
    let bytes = std::fs::read(path)?;
    gradmatch_engine::check_safetensors_length(&bytes).map_err(anyhow::Error::msg)?;
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes)?;
    let metadata = header.metadata().clone().unwrap_or_default();
    let tensors = candle_core::safetensors::load_buffer(&bytes, &Device::Cpu)?;
    let get = |key: &str| {
        tensors.get(key).with_context(|| {
            format!("no tensor `{key}`; found {:?}, expected `images` (N, C, H, W) and `labels` (N,)", tensors.keys().collect::<Vec<_>>())
        })
    };
    let mut set = labelled(name.to_string(), get("images")?, get("labels")?, at.device)?;
    let decoding = decode_by_provenance(&mut set, &metadata, at.plugins)?;
    let (format, dataset) = match metadata.get("dataset") {
        Some(d) => (SetFormat::Gradmatch, Some(d.parse().map_err(|e| anyhow::anyhow!("metadata `dataset`: {e}"))?)),
        None => (SetFormat::Safetensors, None),
    };
    // Written by `condense --export-for`; anything else is in ours.
    let normalisation = match metadata.get("normalisation") {
        Some(n) => n.parse().map_err(|e| anyhow::anyhow!("metadata `normalisation`: {e}"))?,
        None => Normalisation::Gradmatch,
    };
    Ok(SetFile {
        path: path.to_path_buf(),
        format,
        dataset,
        sets: vec![set],
        normalisation,
        conversion: None,
        learning_rate: None,
        decoding,
    })
}

/// Decodes a set written by `condense` by the parameterisation its provenance names (its images are
/// the stored ones); says so when that is not plain pixels.
fn decode_by_provenance(set: &mut LabelledImages, metadata: &HashMap<String, String>, plugins: &Plugins) -> Result<Option<String>> {
    let Some(provenance) = Provenance::of_set(metadata)? else { return Ok(None) };
    let spec = &provenance.method.parameterisation;
    let parameterisation =
        plugins.method.parameterisation.build(&spec.name, &spec.options).context("metadata `provenance`, its parameterisation")?;
    let stored = set.labels.len();
    (set.images, set.labels) = parameterisation.decode_set(&set.images, &set.labels)?;
    Ok((!spec.is_pixels()).then(|| format!("its {stored} stored images decoded by `{}` into {} images", spec.name, set.labels.len())))
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
    let dataset = dataset_of_results_name(name);
    Ok(SetFile {
        path: path.to_path_buf(),
        format: SetFormat::DcResults,
        dataset,
        sets,
        normalisation: Normalisation::Dc,
        conversion: None,
        decoding: None,
        learning_rate: None,
    })
}

/// The dataset of `res_<method>_<dataset>_<model>_<ipc>ipc.pt`, as DC, DSA and DM name their files.
fn dataset_of_results_name(name: &str) -> Option<DatasetName> {
    name.strip_prefix("res_")?.split('_').nth(1)?.parse().ok()
}

/// Why gradmatch cannot evaluate a ZCA-whitened set, for the errors below.
const ZCA_WHY: &str = "gradmatch cannot evaluate a ZCA-whitened set: un-whitening it, or whitening the test images the \
     same way, needs the ZCA transform that MTT fitted on the whole real training set, and the training set cannot be \
     fetched here to fit it again";

fn read_mtt(path: &Path, device: &Device, not_zca: bool) -> Result<SetFile> {
    // MTT's distill.py writes images_zca_<iteration>.pt (the un-whitened images) beside its sets only
    // under --zca: evidence no declaration overrides. Nothing else it saves tells ZCA apart.
    let folder = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    if let Some(zca) = std::fs::read_dir(folder)?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().to_string())
        .find(|n| n.strip_prefix("images_zca_").and_then(|rest| rest.strip_suffix(".pt")).is_some_and(|it| it.parse::<u64>().is_ok()))
    {
        bail!(
            "this MTT set is ZCA-whitened: {zca} beside it is written by MTT's distill.py only under --zca{}. {ZCA_WHY}. \
             (If {zca} belongs to another run, move it away.)",
            if not_zca { ", whatever --not-zca says" } else { "" }
        );
    }
    anyhow::ensure!(
        not_zca,
        "MTT may save its sets ZCA-whitened (distill.py --zca, as its CIFAR settings do), and neither images_best.pt nor \
         labels_best.pt says whether this one is; {ZCA_WHY}. If the set was distilled without --zca, pass --not-zca"
    );
    let labels_path = path.with_file_name("labels_best.pt");
    anyhow::ensure!(labels_path.exists(), "MTT's images_best.pt needs labels_best.pt beside it: {} does not exist", labels_path.display());
    let images = PthArchive::open(path)?.root_tensor().context("images_best.pt")?;
    let labels = PthArchive::open(&labels_path)?.root_tensor().with_context(|| labels_path.display().to_string())?;
    let set = labelled("images_best.pt".into(), &images, &labels, device)?;
    let lr_path = path.with_file_name("lr_best.pt");
    let learning_rate =
        if lr_path.exists() { Some(read_learning_rate(&lr_path).with_context(|| lr_path.display().to_string())?) } else { None };
    Ok(SetFile {
        path: path.to_path_buf(),
        format: SetFormat::Mtt,
        dataset: None,
        sets: vec![set],
        normalisation: Normalisation::Mtt,
        conversion: None,
        decoding: None,
        learning_rate,
    })
}

/// The learned learning rate of `lr_best.pt`: `syn_lr.detach().cpu()` (a float tensor of one
/// element, as DATM and FTD save it) or `syn_lr.item()` (a Python float). MTT's own distill.py logs
/// `syn_lr` to wandb without saving it.
fn read_learning_rate(path: &Path) -> Result<f64> {
    let archive = PthArchive::open(path)?;
    let lr = match &archive.root {
        Object::Float(lr) => *lr,
        _ => {
            let t = archive.root_tensor()?;
            anyhow::ensure!(t.dtype().is_float() && t.elem_count() == 1, "expected one float, found {:?} {:?}", t.dtype(), t.dims());
            match t.dtype() {
                // The learned f32 as PyTorch prints it (0.0120 rather than 0.012000000104308128).
                DType::F64 => host::vec1::<f64>(&t.flatten_all()?)?[0],
                _ => host::vec1::<f32>(&t.to_dtype(DType::F32)?.flatten_all()?)?[0].to_string().parse()?,
            }
        }
    };
    anyhow::ensure!(lr.is_finite() && lr > 0.0, "the learning rate is {lr}, expected a positive number");
    Ok(lr)
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
    let labels: Vec<i64> = host::vec1(&labels.to_dtype(DType::I64)?)?;
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

    static PLUGINS: std::sync::LazyLock<Plugins> = std::sync::LazyLock::new(Plugins::builtin);

    fn cpu() -> Reader<'static> {
        Reader { device: &Device::Cpu, plugins: &PLUGINS }
    }

    /// What `evaluate --not-zca` declares: enough to read every fixture as saved.
    const NOT_ZCA: Declared = Declared { dataset: None, normalisation: None, not_zca: true };

    fn error_of(path: &Path) -> String {
        error_with(path, &NOT_ZCA)
    }

    fn error_with(path: &Path, declared: &Declared) -> String {
        match read_as_ours(path, cpu(), declared) {
            Ok(_) => panic!("{} should not read", path.display()),
            Err(e) => format!("{e:#}"),
        }
    }

    #[test]
    fn dc_results_hold_one_set_per_experiment_and_name_the_dataset() {
        let file = read(&fixture("res_DC_MNIST_ConvNet_1ipc.pt"), cpu(), &NOT_ZCA).unwrap();
        assert_eq!((file.format, file.dataset, file.sets.len()), (SetFormat::DcResults, Some(DatasetName::Mnist), 2));
        assert_is_kth(&file.sets[0], 0);
        assert_is_kth(&file.sets[1], 1);
        assert_eq!(file.sets[1].name, "experiment 1");
    }

    #[test]
    fn mtt_sets_read_from_the_folder_or_the_images_file() {
        for path in [fixture("mtt"), fixture("mtt/images_best.pt")] {
            let file = read(&path, cpu(), &NOT_ZCA).unwrap();
            assert_eq!((file.format, file.dataset, file.sets.len()), (SetFormat::Mtt, None, 1));
            assert_is_kth(&file.sets[0], 0);
        }
    }

    #[test]
    fn plain_safetensors_read_without_metadata() {
        let file = read(&fixture("plain.safetensors"), cpu(), &NOT_ZCA).unwrap();
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
        let err = error_with(&fixture("plain.safetensors"), &Declared::default());
        assert!(err.contains("plain.safetensors") && err.contains("give --dataset"), "{err}");
        let mnist = Declared { dataset: Some(DatasetName::Cifar10), ..NOT_ZCA };
        let err = error_with(&fixture("res_DC_MNIST_ConvNet_1ipc.pt"), &mnist);
        assert!(err.contains("a set of mnist, but --dataset cifar10"), "{err}");
    }

    /// The fixture's image in gradmatch's normalisation of `dataset`, as PyTorch computed it.
    fn expected(dataset: DatasetName) -> Vec<f32> {
        let tensors = candle_core::safetensors::load(fixture("cifar/expected.safetensors"), &Device::Cpu).unwrap();
        tensors[&format!("ours_{dataset}")].flatten_all().unwrap().to_vec1().unwrap()
    }

    fn assert_lands_on_ours(file: &SetFile, dataset: DatasetName) {
        assert_eq!((file.dataset, file.normalisation, file.sets.len()), (Some(dataset), Normalisation::Gradmatch, 1));
        let set = &file.sets[0];
        assert_eq!((set.labels.as_slice(), set.images.dims()), (&[3u32][..], &[1, 3, 32, 32][..]));
        let ours = set.images.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let worst = expected(dataset).iter().zip(&ours).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(worst < 1e-5, "{}: pixels differ from ours by up to {worst}", file.path.display());
    }

    fn read_ours(path: &str, declared: &Declared) -> SetFile {
        read_as_ours(&fixture(path), cpu(), declared).unwrap().0
    }

    /// Done means: `gradmatch evaluate` of a DSA-normalised CIFAR-10 file gives the same pixels as ours
    /// (`read_as_ours` is what `evaluate` reads with).
    #[test]
    fn a_dsa_normalised_cifar10_result_file_lands_on_our_pixels() {
        let file = read_ours("cifar/res_DSA_CIFAR10_ConvNet_1ipc.pt", &Declared::default());
        assert_lands_on_ours(&file, DatasetName::Cifar10);
        let note = file.conversion.as_deref().unwrap();
        for needle in ["DC/DSA/DM", "std [0.2023, 0.1994, 0.2010]", "gradmatch", "std [0.2470, 0.2435, 0.2616]", "cifar10"] {
            assert!(note.contains(needle), "{needle}: {note}");
        }
        assert_eq!(file.learning_rate, None);
    }

    #[test]
    fn dm_cifar100_results_are_read_with_dcs_cifar100_constants() {
        let file = read_ours("cifar/res_DM_CIFAR100_ConvNet_1ipc.pt", &Declared::default());
        assert_lands_on_ours(&file, DatasetName::Cifar100);
        assert!(file.conversion.unwrap().contains("mean [0.5071, 0.4866, 0.4409], std [0.2673, 0.2564, 0.2762]"));
    }

    #[test]
    fn mtt_cifar_sets_land_on_our_pixels_with_their_learned_learning_rate() {
        // `syn_lr.item()` is the float32 widened: the file holds 0.032099999487400055.
        for (folder, dataset, lr) in
            [("cifar/mtt-cifar10", DatasetName::Cifar10, 0.0123), ("cifar/mtt-cifar100", DatasetName::Cifar100, 0.0321f32 as f64)]
        {
            let file = read_ours(folder, &Declared { dataset: Some(dataset), ..NOT_ZCA });
            assert_lands_on_ours(&file, dataset);
            assert!(file.conversion.as_deref().unwrap().contains("MTT"), "{folder}");
            // lr_best.pt: a 0-dim float32 tensor (CIFAR-10's) or a Python float (CIFAR-100's).
            assert_eq!(file.learning_rate, Some(lr), "{folder}");
        }
        // MTT normalises CIFAR-100 with CIFAR-10's constants.
        let file = read_ours("cifar/mtt-cifar100", &Declared { dataset: Some(DatasetName::Cifar100), ..NOT_ZCA });
        assert!(file.conversion.unwrap().contains("std [0.2023, 0.1994, 0.2010]) (as a MTT"));
    }

    #[test]
    fn a_plain_safetensors_is_ours_unless_declared_otherwise() {
        let dd_ranking = "cifar/plain_cifar100_dd-ranking.safetensors";
        let cifar100 = Declared { dataset: Some(DatasetName::Cifar100), ..Declared::default() };
        let as_is = read_ours(dd_ranking, &cifar100);
        assert!(as_is.conversion.is_none());
        let declared = Declared { normalisation: Some("dd-ranking".parse().unwrap()), ..cifar100 };
        let file = read_ours(dd_ranking, &declared);
        assert_lands_on_ours(&file, DatasetName::Cifar100);
        assert!(file.conversion.unwrap().contains("(--normalisation mtt)"));
        // The same images read as DC's CIFAR-100 would be off: the declaration matters.
        let wrong = read_ours(dd_ranking, &Declared { normalisation: Some(Normalisation::Dc), ..cifar100 });
        let ours = wrong.sets[0].images.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let worst = expected(DatasetName::Cifar100).iter().zip(&ours).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(worst > 0.1, "{worst}");
    }

    #[test]
    fn a_set_exported_for_another_tool_is_in_its_normalisation_and_reads_back_to_the_same_pixels() {
        let dir = tempfile::tempdir().unwrap();
        let ours = Tensor::from_vec(expected(DatasetName::Cifar100), (1, 3, 32, 32), &Device::Cpu).unwrap();
        let metadata =
            std::collections::HashMap::from([("dataset".to_string(), "cifar100".to_string()), ("ipc".to_string(), "1".to_string())]);
        let set = SyntheticSet { images: ours, labels: vec![3], metadata, momentum: None };
        let flat = |file: &SetFile| file.sets[0].images.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let worst = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
        for (tool, theirs) in [(Normalisation::Dc, "cifar/res_DM_CIFAR100_ConvNet_1ipc.pt"), (Normalisation::Mtt, "cifar/mtt-cifar100")] {
            let path = dir.path().join(format!("synthetic.{tool}.safetensors"));
            export_for(&set, DatasetName::Cifar100, tool, &path).unwrap();
            // As saved: the tool's own pixels, the same as its files' (made by PyTorch).
            let exported = read(&path, cpu(), &NOT_ZCA).unwrap();
            assert_eq!((exported.format, exported.normalisation), (SetFormat::Gradmatch, tool));
            let tool_file = read(&fixture(theirs), cpu(), &NOT_ZCA).unwrap();
            assert!(worst(&flat(&exported), &flat(&tool_file)) < 1e-5, "{tool}");
            let (_, meta) = safetensors::SafeTensors::read_metadata(&std::fs::read(&path).unwrap()).unwrap();
            let meta = meta.metadata().clone().unwrap();
            assert_eq!((meta["normalisation"].as_str(), meta["ipc"].as_str()), (tool.name(), "1"));
            assert_eq!(meta["std"], serde_json::to_string(tool.constants(DatasetName::Cifar100).std).unwrap());
            // Read back: our pixels.
            let back = read_as_ours(&path, cpu(), &Declared::default()).unwrap().0;
            assert_lands_on_ours(&back, DatasetName::Cifar100);
            assert!(back.conversion.unwrap().contains("(its `normalisation` metadata)"), "{tool}");
        }
    }

    #[test]
    fn mtt_sets_are_refused_unless_declared_not_zca_and_always_with_zca_evidence() {
        let err = error_with(&fixture("cifar/mtt-cifar10"), &Declared { dataset: Some(DatasetName::Cifar10), ..Declared::default() });
        assert!(err.contains("ZCA-whitened") && err.contains("pass --not-zca") && err.contains("cannot be fetched"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        for name in ["images_best.pt", "labels_best.pt"] {
            std::fs::copy(fixture("cifar/mtt-cifar10").join(name), dir.path().join(name)).unwrap();
        }
        std::fs::write(dir.path().join("images_zca_5000.pt"), "").unwrap();
        let err = error_with(dir.path(), &Declared { dataset: Some(DatasetName::Cifar10), ..NOT_ZCA });
        assert!(err.contains("is ZCA-whitened: images_zca_5000.pt") && err.contains("whatever --not-zca says"), "{err}");
    }

    #[test]
    fn result_file_names_give_the_dataset() {
        assert_eq!(dataset_of_results_name("res_DSA_FashionMNIST_ConvNet_10ipc.pt"), Some(DatasetName::FashionMnist));
        assert_eq!(dataset_of_results_name("res_DM_CIFAR10_ConvNet_50ipc.pt"), Some(DatasetName::Cifar10));
        assert_eq!(dataset_of_results_name("res_DC_ImageNet_ConvNet_1ipc.pt"), None);
        assert_eq!(dataset_of_results_name("synthetic.pt"), None);
    }
}
