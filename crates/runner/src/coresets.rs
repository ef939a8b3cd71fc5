//! Coresets: networks trained on the whole training split, kept by what made them and found again
//! (`train-real`'s "whole dataset" column, and the features and forgetting counts that selections
//! read), and the coreset a selection chooses with them (`coreset`, and grid cells with `[coreset]`).

use crate::commands::write_json;
use crate::global::machine;
use crate::pipeline::eval_seed;
use crate::provenance::short_key;
use anyhow::{Context, Result};
use candle_core::{DType, Device, Tensor};
use gradmatch_core::rand::{RngCore, SeedableRng};
use gradmatch_core::{Augmentation, SelectContext, Selection};
use gradmatch_data::{Dataset, DatasetName};
use gradmatch_engine::{test_accuracy, train_counting_forgetting, DeviceData, EvalConfig, EvalTask, Recipe, SyntheticSet};
use gradmatch_models::{Mode, ModelSpec, Network};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// What makes a trained network, and nothing else (not how many networks, nor how they are
/// tested): its key names the folder that keeps it, so `train-real` and a coreset that train
/// alike share their networks.
#[derive(Serialize)]
struct Making<'a> {
    dataset: DatasetName,
    model: &'a ModelSpec,
    recipe: &'a Recipe,
    momentum: f64,
    weight_decay: f64,
    batch_size: usize,
    train_images: usize,
    seed: u64,
}

impl Making<'_> {
    fn folder(&self, out: &Path) -> PathBuf {
        let key = short_key(&serde_json::to_string(self).expect("serialises"));
        out.join(format!("{}-{}-{key}", self.dataset, self.model))
    }
}

/// How a coreset's feature network trains, in the command and in grids alike (so that they, and
/// `train-real --epochs N --eval-augment none`, keep one network): `epochs` at lr 0.01, no augmentation.
pub fn feature_training(epochs: usize, test_limit: Option<usize>) -> EvalConfig {
    EvalConfig { epochs: Some(epochs), augment: Some("none".into()), test_limit, ..EvalConfig::default() }
}

/// One network as its folder keeps it beside its parameters.
#[derive(Serialize, Deserialize)]
pub struct Kept {
    pub accuracy: f64,
    pub final_train_loss: f64,
    pub train_seconds: f64,
    pub machine: String,
    /// Forgetting events of every training image while it trained, by training-split index.
    pub forgetting_events: Vec<u32>,
}

/// Networks trained on the first `images` training images of a dataset under a recipe, kept in
/// their folder under `out` and found there again.
pub struct WholeSplit<'a> {
    pub dataset: &'a Dataset,
    pub model: &'a ModelSpec,
    pub cfg: &'a EvalConfig,
    pub recipe: &'a Recipe,
    pub augment: &'a dyn Augmentation,
    pub images: usize,
    pub seed: u64,
    pub out: &'a Path,
}

impl WholeSplit<'_> {
    /// Where its networks are kept.
    pub fn folder(&self) -> PathBuf {
        let making = Making {
            dataset: self.dataset.name,
            model: self.model,
            recipe: self.recipe,
            momentum: self.cfg.momentum,
            weight_decay: self.cfg.weight_decay,
            batch_size: self.cfg.batch_size,
            train_images: self.images,
            seed: self.seed,
        };
        making.folder(self.out)
    }

    /// Network `index`: loaded with its record when kept, else trained (counting forgetting events),
    /// tested and kept; whether it was trained now.
    pub fn network(&self, index: usize, device: &Device, test: &DeviceData) -> Result<(Network, Kept, bool)> {
        let path = self.folder().join(format!("network-{index}.safetensors"));
        let ds = self.dataset;
        if let Some(kept) = read_kept(&path)? {
            let net = Network::new(self.model, ds.shape(), ds.num_classes(), 0, DType::F32, device)?;
            net.load_params(&path)?;
            let accuracy = test_accuracy(&net, test, self.cfg.test_limit)?;
            return Ok((net, Kept { accuracy, ..kept }, false));
        }
        std::fs::create_dir_all(self.folder()).with_context(|| format!("creating {}", self.folder().display()))?;
        let train_split = DeviceData::new(&ds.train, ds.shape(), DType::F32, device)?;
        let (images, labels) = (train_split.rows(0, self.images)?, ds.train.gather_labels(&(0..self.images).collect::<Vec<_>>()));
        let task = EvalTask {
            spec: self.model,
            images: &images,
            labels: &labels,
            test,
            num_classes: ds.num_classes(),
            augment: self.augment,
            seed: eval_seed(self.seed, index),
        };
        let (trained, forgetting_events) = train_counting_forgetting(&task, self.cfg, self.recipe)?;
        let accuracy = test_accuracy(&trained.net, test, self.cfg.test_limit)?;
        trained.net.save(&path)?;
        let kept = Kept {
            accuracy,
            final_train_loss: trained.final_train_loss,
            train_seconds: trained.train_seconds,
            machine: machine(device),
            forgetting_events,
        };
        write_json(&path.with_extension("json"), &kept)?;
        Ok((trained.net, kept, true))
    }
}

/// The record kept beside a trained network's parameters; `None` when the network is not there
/// (or only in part: a kill between the two files trains it again).
fn read_kept(path: &Path) -> Result<Option<Kept>> {
    let record = path.with_extension("json");
    if !path.exists() || !record.exists() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&record).with_context(|| format!("reading {}", record.display()))?;
    Ok(Some(
        serde_json::from_str(&text).with_context(|| format!("{}: not a train-real record (delete it to train again)", record.display()))?,
    ))
}

/// A coreset: `ipc` images of every class that `selection` chooses among the whole split's first
/// images (features and forgetting counts from its network 0, trained on first use), drawn from the
/// stream of `seed`; the chosen training-split indices class by class, and the set with its metadata.
pub fn select(
    selection: &dyn Selection,
    whole: &WholeSplit,
    device: &Device,
    test: &DeviceData,
    ipc: usize,
    seed: u64,
) -> Result<(Vec<Vec<usize>>, SyntheticSet)> {
    let mut ctx = Candidates::new(whole, device, test, seed);
    let chosen: Vec<Vec<usize>> =
        (0..whole.dataset.num_classes()).map(|c| selection.select(&mut ctx, c, ipc)).collect::<candle_core::Result<_>>()?;
    let flat: Vec<usize> = chosen.iter().flatten().copied().collect();
    let train = DeviceData::new(&whole.dataset.train, whole.dataset.shape(), DType::F32, device)?;
    let mut metadata = HashMap::new();
    metadata.insert("dataset".into(), whole.dataset.name.to_string());
    metadata.insert("ipc".into(), ipc.to_string());
    metadata.insert("seed".into(), seed.to_string());
    metadata.insert("model".into(), whole.model.to_string());
    metadata.insert("indices".into(), serde_json::to_string(&flat)?);
    if ctx.network.is_some() {
        metadata.insert("feature_network".into(), whole.folder().join("network-0.safetensors").display().to_string());
    }
    let set = SyntheticSet { images: train.select(&flat)?, labels: whole.dataset.train.gather_labels(&flat), metadata, momentum: None };
    Ok((chosen, set))
}

/// What a selection sees: the first `images` training images of the whole split, the Random
/// baseline's stream, and, when it asks for them, features and forgetting counts of the kept network
/// (trained on first use: `random` needs none).
struct Candidates<'a> {
    whole: &'a WholeSplit<'a>,
    device: &'a Device,
    test: &'a DeviceData<'a>,
    classes: Vec<Vec<usize>>,
    rng: ChaCha8Rng,
    network: Option<(Network, Kept)>,
}

impl<'a> Candidates<'a> {
    fn new(whole: &'a WholeSplit<'a>, device: &'a Device, test: &'a DeviceData<'a>, seed: u64) -> Self {
        let split = &whole.dataset.train;
        let classes = (0..whole.dataset.num_classes())
            .map(|c| split.class_indices(c).iter().copied().filter(|&i| i < whole.images).collect())
            .collect();
        Candidates { whole, device, test, classes, rng: ChaCha8Rng::seed_from_u64(seed), network: None }
    }

    /// The kept feature network, found or trained on first use.
    fn network(&mut self) -> candle_core::Result<&(Network, Kept)> {
        if self.network.is_none() {
            let (net, kept, _) = self.whole.network(0, self.device, self.test).map_err(|e| candle_core::Error::Msg(format!("{e:#}")))?;
            println!("feature network: {} ({:.2} % on test) in {}", self.whole.model, 100.0 * kept.accuracy, self.whole.folder().display());
            self.network = Some((net, kept));
        }
        Ok(self.network.as_ref().expect("set above"))
    }
}

impl SelectContext for Candidates<'_> {
    fn class_indices(&self, class: usize) -> &[usize] {
        &self.classes[class]
    }

    fn rng(&mut self) -> &mut dyn RngCore {
        &mut self.rng
    }

    fn uniform(&mut self, class: usize, n: usize) -> Vec<usize> {
        let pool = &self.classes[class];
        gradmatch_core::rand::seq::index::sample(&mut self.rng, pool.len(), n.min(pool.len())).into_iter().map(|i| pool[i]).collect()
    }

    fn features(&mut self, indices: &[usize]) -> candle_core::Result<Tensor> {
        let (split, shape, device) = (&self.whole.dataset.train, self.whole.dataset.shape(), self.device.clone());
        let (net, _) = self.network()?;
        let chunks = indices
            .chunks(256)
            .map(|chunk| {
                let x = Tensor::from_vec(split.gather(chunk), (chunk.len(), shape.0, shape.1, shape.2), &device)?;
                net.embed(&x, Mode::Eval)?.flatten_from(1)?.to_dtype(DType::F32)?.to_device(&Device::Cpu)
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        Tensor::cat(&chunks, 0)
    }

    fn forgetting_events(&mut self, indices: &[usize]) -> candle_core::Result<Vec<u32>> {
        let (_, kept) = self.network()?;
        Ok(indices.iter().map(|&i| kept.forgetting_events[i]).collect())
    }
}
