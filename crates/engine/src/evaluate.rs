use crate::augment::MnistAugmentation;
use crate::device::DeviceData;
use crate::optim::Sgd;
use crate::seed::{derive_seed, stream};
use candle_core::{Result, Tensor};
use gradmatch_core::Augmentation;
use gradmatch_models::{accuracy_count, one_hot, Mode, ModelSpec, Network};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::time::Instant;

/// A named evaluation recipe. Numbers from different recipes cannot be compared, so every
/// accuracy the runner prints or stores names the protocol it was measured under.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// DC's recipe (Zhao et al. 2021): 300 epochs, no augmentation (the MNIST augmentation of the
    /// reference code as an option: `augment = "mnist"`), 20 networks.
    #[default]
    Dc,
    /// The recipe of DSA, DM, MTT, DC-BENCH and DD-Ranking: 1000 epochs, DSA on every training
    /// batch, 5 networks.
    Dsa,
}

impl Protocol {
    pub const ALL: [Protocol; 2] = [Protocol::Dc, Protocol::Dsa];

    /// The protocol's recipe; both train with SGD lr 0.01 (x0.1 at half the epochs), momentum 0.9,
    /// weight decay 5e-4, batch 256.
    pub fn recipe(self) -> EvalConfig {
        let (epochs, augment, num_eval) = match self {
            Protocol::Dc => (300, "none", 20),
            Protocol::Dsa => (1000, "dsa", 5),
        };
        EvalConfig {
            protocol: self,
            epochs,
            lr: 0.01,
            momentum: 0.9,
            weight_decay: 5e-4,
            batch_size: 256,
            augment: augment.to_string(),
            test_limit: None,
            num_eval,
            models: Vec::new(),
        }
    }

    fn is_dc(&self) -> bool {
        *self == Protocol::Dc
    }
}

impl std::fmt::Display for Protocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Protocol::Dc => "dc",
            Protocol::Dsa => "dsa",
        })
    }
}

impl std::str::FromStr for Protocol {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Protocol, String> {
        Protocol::ALL
            .into_iter()
            .find(|p| p.to_string() == s.to_ascii_lowercase())
            .ok_or_else(|| format!("unknown evaluation protocol `{s}`; the protocols are: dc, dsa"))
    }
}

/// The evaluation protocol: train a fresh network on the (synthetic) set, test on the full test set.
/// In a file, `protocol` picks the recipe and any field given overrides it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "EvalFile")]
pub struct EvalConfig {
    /// The recipe the other fields started from; left out of the serialised config when `dc`, so
    /// that configs (ablation ids) made before protocols existed stay as they were.
    #[serde(skip_serializing_if = "Protocol::is_dc")]
    pub protocol: Protocol,
    /// Training epochs; the learning rate drops x0.1 at half of them.
    pub epochs: usize,
    pub lr: f64,
    pub momentum: f64,
    pub weight_decay: f64,
    pub batch_size: usize,
    /// What every training batch goes through: `none`, `mnist` (the reference's MNIST augmentation,
    /// one transform per image) or a registered augmentation plug-in such as `dsa`. Serialised as
    /// `false` / `true` for `none` / `mnist`, as before names existed.
    #[serde(serialize_with = "augment_as_written")]
    pub augment: String,
    /// Test on the first `n` test images only (for quick checks; `None` = the full test set).
    pub test_limit: Option<usize>,
    /// Networks trained per set (each with its own seed); results are reported as mean +- std.
    pub num_eval: usize,
    /// Architectures to evaluate on (cross-architecture tables); empty = the condensing model.
    pub models: Vec<ModelSpec>,
}

impl Default for EvalConfig {
    fn default() -> Self {
        Protocol::Dc.recipe()
    }
}

impl EvalConfig {
    /// The recipe of `protocol` with this config's choice of networks, models and test subset.
    pub fn with_protocol(&self, protocol: Protocol) -> EvalConfig {
        EvalConfig { test_limit: self.test_limit, models: self.models.clone(), ..protocol.recipe() }
    }
}

/// `[evaluation]` as written: every field optional, filled from the protocol's recipe.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EvalFile {
    protocol: Option<Protocol>,
    epochs: Option<usize>,
    lr: Option<f64>,
    momentum: Option<f64>,
    weight_decay: Option<f64>,
    batch_size: Option<usize>,
    augment: Option<AugmentField>,
    test_limit: Option<usize>,
    num_eval: Option<usize>,
    models: Option<Vec<ModelSpec>>,
}

/// `augment = true` (the MNIST augmentation, as before names existed) or a name.
#[derive(Deserialize)]
#[serde(untagged)]
enum AugmentField {
    Flag(bool),
    Name(String),
}

impl From<EvalFile> for EvalConfig {
    fn from(f: EvalFile) -> EvalConfig {
        let r = f.protocol.unwrap_or_default().recipe();
        EvalConfig {
            protocol: r.protocol,
            epochs: f.epochs.unwrap_or(r.epochs),
            lr: f.lr.unwrap_or(r.lr),
            momentum: f.momentum.unwrap_or(r.momentum),
            weight_decay: f.weight_decay.unwrap_or(r.weight_decay),
            batch_size: f.batch_size.unwrap_or(r.batch_size),
            augment: match f.augment {
                None => r.augment,
                Some(AugmentField::Flag(false)) => "none".into(),
                Some(AugmentField::Flag(true)) => MnistAugmentation::NAME.into(),
                Some(AugmentField::Name(name)) => name,
            },
            test_limit: f.test_limit.or(r.test_limit),
            num_eval: f.num_eval.unwrap_or(r.num_eval),
            models: f.models.unwrap_or(r.models),
        }
    }
}

fn augment_as_written<S: serde::Serializer>(name: &str, s: S) -> std::result::Result<S::Ok, S::Error> {
    match name {
        "none" => s.serialize_bool(false),
        MnistAugmentation::NAME => s.serialize_bool(true),
        other => s.serialize_str(other),
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EvalOutcome {
    /// Test accuracy in [0, 1].
    pub accuracy: f64,
    pub final_train_loss: f64,
    pub train_seconds: f64,
    pub test_seconds: f64,
}

/// One evaluation network: what it trains on and how its batches are augmented.
pub struct EvalTask<'a> {
    pub spec: &'a ModelSpec,
    /// `(n, C, H, W)` images with their labels.
    pub images: &'a Tensor,
    pub labels: &'a [u32],
    pub test: &'a DeviceData<'a>,
    pub num_classes: usize,
    /// Applied to every training batch: the augmentation that the config's `augment` names.
    pub augment: &'a dyn Augmentation,
    /// Seeds the network's weights, the batch order and the augmentation.
    pub seed: u64,
}

/// Trains a fresh network on the task's images under `cfg`, then measures its accuracy on the test set.
pub fn evaluate(task: &EvalTask, cfg: &EvalConfig) -> Result<EvalOutcome> {
    let EvalTask { spec, images, labels, test, num_classes, augment, seed } = *task;
    let (dtype, device) = (images.dtype(), images.device());
    let net = Network::new(spec, test.shape, num_classes, derive_seed(seed, stream::NETWORK, 0), dtype, device)?;
    let mut opt = Sgd::new(net.vars(), cfg.lr, cfg.momentum, cfg.weight_decay);
    let mut rng = ChaCha8Rng::seed_from_u64(derive_seed(seed, stream::EVALUATION, 0));
    let targets = one_hot(labels, num_classes, dtype, device)?;
    let n = labels.len();
    let mut order: Vec<u32> = (0..n as u32).collect();
    let started = Instant::now();
    let mut last_loss = Tensor::zeros((), dtype, device)?;
    let mut batches = 0u64;
    for epoch in 0..cfg.epochs {
        if epoch == cfg.epochs / 2 && epoch > 0 {
            opt.lr *= 0.1;
        }
        order.shuffle(&mut rng);
        for chunk in order.chunks(cfg.batch_size) {
            let idx = Tensor::from_slice(chunk, chunk.len(), device)?;
            let x = augment.augment_each(&images.index_select(&idx, 0)?, derive_seed(seed, stream::EVAL_AUGMENT, batches))?.detach();
            batches += 1;
            let (loss, grads) = net.loss_and_grads(&x, &targets.index_select(&idx, 0)?, Mode::Train, 1)?;
            opt.step_all(&grads)?;
            last_loss = loss;
        }
        // One host sync per epoch: catches divergence without stalling every step on a GPU.
        if epoch % 25 == 0 || epoch + 1 == cfg.epochs {
            let l = last_loss.to_dtype(candle_core::DType::F64)?.to_scalar::<f64>()?;
            if !l.is_finite() {
                candle_core::bail!(
                    "evaluation of {spec}: training loss is {l} at epoch {epoch} (lr {}); the set or the learning rate diverges",
                    opt.lr
                )
            }
        }
    }
    let train_seconds = started.elapsed().as_secs_f64();
    let started = Instant::now();
    Ok(EvalOutcome {
        accuracy: test_accuracy(&net, test, cfg.test_limit)?,
        final_train_loss: last_loss.to_dtype(candle_core::DType::F64)?.to_scalar::<f64>()?,
        train_seconds,
        test_seconds: started.elapsed().as_secs_f64(),
    })
}

/// Accuracy of `net` on the first `limit` images of `test` (all when `None`).
fn test_accuracy(net: &Network, test: &DeviceData, limit: Option<usize>) -> Result<f64> {
    let total = limit.unwrap_or(test.split.len()).min(test.split.len());
    let mut correct = 0;
    // 256 test images per pass: larger chunks only add memory (the patches of 1000 images take 1.2 GB).
    let chunk = 256;
    for start in (0..total).step_by(chunk) {
        let len = chunk.min(total - start);
        let logits = net.forward(&test.images.narrow(0, start, len)?, Mode::Eval)?;
        correct += accuracy_count(&logits, &test.labels.narrow(0, start, len)?)?;
    }
    Ok(correct as f64 / total.max(1) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use gradmatch_data::{DatasetName, Split};
    use std::sync::Mutex;

    fn parse(json: &str) -> EvalConfig {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn a_protocol_gives_its_recipe_and_fields_override_it() {
        let dsa = parse(r#"{"protocol": "dsa"}"#);
        assert_eq!((dsa.protocol, dsa.epochs, dsa.augment.as_str(), dsa.num_eval), (Protocol::Dsa, 1000, "dsa", 5));
        let dsa500 = parse(r#"{"protocol": "dsa", "epochs": 500, "augment": "none"}"#);
        assert_eq!((dsa500.epochs, dsa500.augment.as_str(), dsa500.lr), (500, "none", 0.01));
        assert_eq!(parse("{}"), EvalConfig::default());
        assert_eq!((EvalConfig::default().epochs, EvalConfig::default().augment.as_str()), (300, "none"));
        for cfg in [dsa, dsa500, parse(r#"{"augment": "mnist", "models": ["MLP"]}"#)] {
            assert_eq!(parse(&serde_json::to_string(&cfg).unwrap()), cfg, "round trip");
        }
    }

    #[test]
    fn configs_written_before_protocols_read_and_write_as_before() {
        let json = serde_json::to_string(&EvalConfig::default()).unwrap();
        assert!(!json.contains("protocol") && json.contains(r#""augment":false"#), "DC's config (ablation ids) changed: {json}");
        let mnist = parse(r#"{"augment": true, "epochs": 100}"#);
        assert_eq!((mnist.augment.as_str(), mnist.protocol), (MnistAugmentation::NAME, Protocol::Dc));
        assert!(serde_json::to_string(&mnist).unwrap().contains(r#""augment":true"#));
        assert!(serde_json::to_string(&Protocol::Dsa.recipe()).unwrap().contains(r#""protocol":"dsa""#));
    }

    #[test]
    fn unknown_fields_and_protocols_are_named() {
        let err = serde_json::from_str::<EvalConfig>(r#"{"epoch": 3}"#).unwrap_err().to_string();
        assert!(err.contains("epoch") && err.contains("epochs"), "{err}");
        let err = serde_json::from_str::<EvalConfig>(r#"{"protocol": "mtt"}"#).unwrap_err().to_string();
        assert!(err.contains("mtt") && err.contains("dsa"), "{err}");
        assert_eq!("DSA".parse::<Protocol>(), Ok(Protocol::Dsa));
        assert!("dm".parse::<Protocol>().unwrap_err().contains("dc, dsa"));
    }

    #[test]
    fn with_protocol_keeps_the_choice_of_models_and_test_images() {
        let mine = EvalConfig { test_limit: Some(100), models: vec![ModelSpec::CONVNET], epochs: 7, ..EvalConfig::default() };
        let dsa = mine.with_protocol(Protocol::Dsa);
        assert_eq!((dsa.test_limit, dsa.models.len(), dsa.epochs, dsa.augment.as_str()), (Some(100), 1, 1000, "dsa"));
    }

    /// Records the seed of every batch it augments.
    struct Recording(Mutex<Vec<u64>>);

    impl Augmentation for Recording {
        fn augment(&self, _: &Tensor, _: u64) -> Result<Tensor> {
            panic!("training batches are augmented per image (augment_each), never Siamese")
        }

        fn augment_each(&self, x: &Tensor, seed: u64) -> Result<Tensor> {
            self.0.lock().unwrap().push(seed);
            x.affine(1.0, 0.0)
        }
    }

    #[test]
    fn every_training_batch_is_augmented_with_its_own_seed() {
        let device = candle_core::Device::Cpu;
        let pixels: Vec<u8> = (0..30 * 784).map(|i| (i * 7 % 251) as u8).collect();
        let split = Split::from_pixels(DatasetName::Mnist, &pixels, (0..30).map(|i| i % 10).collect());
        let test = DeviceData::new(&split, (1, 28, 28), candle_core::DType::F32, &device).unwrap();
        let images = test.images.clone();
        let recording = Recording(Mutex::new(Vec::new()));
        let spec = ModelSpec { width: 4, ..ModelSpec::CONVNET };
        let task =
            EvalTask { spec: &spec, images: &images, labels: &split.labels, test: &test, num_classes: 10, augment: &recording, seed: 3 };
        let cfg = EvalConfig { epochs: 3, batch_size: 8, ..EvalConfig::default() };
        evaluate(&task, &cfg).unwrap();
        let seeds = recording.0.into_inner().unwrap();
        assert_eq!(seeds.len(), 3 * 4, "3 epochs of 4 batches (30 images, batches of 8)");
        let distinct: std::collections::HashSet<_> = seeds.iter().collect();
        assert_eq!(distinct.len(), seeds.len(), "a seed per batch");
    }
}
