//! Evaluation recipes as the reference tools run them: the protocols, their learning-rate schedules,
//! the per-dataset and per-model choices of DC's `get_daparam`, and the resolved [`Recipe`] that
//! every accuracy is recorded with.

use crate::optim::Sgd;
use crate::seed::{derive_seed, stream};
use candle_core::Tensor;
use gradmatch_augment::{CutMix, DcAugmentation};
use gradmatch_data::DatasetName;
use gradmatch_models::{Arch, ModelSpec, NormKind};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// A named evaluation recipe. Numbers from different recipes cannot be compared, so every
/// accuracy the runner prints or stores names the recipe it was measured under.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    strum::Display,
    strum::EnumString,
    strum::VariantNames,
    strum::VariantArray,
)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase", ascii_case_insensitive)]
pub enum Protocol {
    /// Jiang et al.'s `evaluate_synset` (this paper's tables): augmentation and epochs per dataset and
    /// model as DC's `get_daparam` chooses them (MNIST: `crop_scale_rotate`, 1000 epochs; ConvNetBN: `crop_noise`,
    /// 1000 epochs; otherwise none, 300 epochs), [`Schedule::MultiStep`], 20 networks.
    #[default]
    Dc,
    /// The `evaluate_synset` of DSA, DM, MTT and DC-BENCH: 1000 (+1) epochs, DSA on every training
    /// batch, [`Schedule::Restart`], 5 networks.
    Dsa,
    /// IDC's `test.py` as its `argument.py` resolves it outside ImageNet (snu-mllab/
    /// Efficient-Dataset-Condensation): 1000 epochs, batch 64, [`Schedule::Idc`], IDC's `DiffAug` on
    /// every training batch, per image (`idc`: its default strategy without the cutout, which CutMix
    /// replaces, and without the flip on MNIST and SVHN), CutMix with probability 0.5 and beta 1; 3
    /// networks (the `--repeat 3` of its README).
    Idc,
}

impl Protocol {
    /// The protocol's fields that do not depend on the dataset: SGD lr 0.01, momentum 0.9, weight
    /// decay 5e-4, batch 256, and its number of networks. Epochs, augmentation and schedule are
    /// resolved per dataset and model by [`EvalConfig::resolve`].
    pub fn recipe(self) -> EvalConfig {
        EvalConfig {
            protocol: self,
            epochs: None,
            lr: 0.01,
            momentum: 0.9,
            weight_decay: 5e-4,
            batch_size: if self == Protocol::Idc { 64 } else { 256 },
            augment: None,
            // Written for DSA, whose schedule changed when it became the reference's: its configs
            // (ablation ids) then differ from those made before.
            schedule: (self == Protocol::Dsa).then_some(Schedule::Restart),
            test_limit: None,
            cutmix: (self == Protocol::Idc).then_some(CutMix { p: 0.5, beta: 1.0 }),
            networks_at_once: None,
            num_eval: match self {
                Protocol::Dc => 20,
                Protocol::Dsa => 5,
                Protocol::Idc => 3,
            },
            models: Vec::new(),
        }
    }

    fn schedule(self) -> Schedule {
        match self {
            Protocol::Dc => Schedule::MultiStep,
            Protocol::Dsa => Schedule::Restart,
            Protocol::Idc => Schedule::Idc,
        }
    }

    /// `get_daparam`'s strategy (DC), DSA's or IDC's, for `dataset` and evaluation network `model`.
    fn augment(self, dataset: DatasetName, model: &ModelSpec) -> String {
        match self {
            Protocol::Dsa => "dsa".into(),
            // `remove_aug(dsa_strategy, 'flip')` for MNIST and SVHN; 'cutout' under CutMix.
            Protocol::Idc if matches!(dataset, DatasetName::Mnist | DatasetName::Svhn) => "idc:color_crop_scale_rotate".into(),
            Protocol::Idc => "idc:color_crop_flip_scale_rotate".into(),
            Protocol::Dc if *model == ModelSpec::with_arch(Arch::ConvNet, NormKind::Batch) => DcAugmentation::BATCH_NORM.into(),
            Protocol::Dc if dataset == DatasetName::Mnist => DcAugmentation::MNIST.into(),
            Protocol::Dc => NO_AUGMENTATION.into(),
        }
    }

    /// DC trains 1000 epochs with augmentation and 300 without; DSA's recipe 1000.
    fn epochs(self, augment: &str) -> usize {
        match self {
            Protocol::Dc if augment == NO_AUGMENTATION => 300,
            _ => 1000,
        }
    }
}

/// The name of the identity augmentation.
pub const NO_AUGMENTATION: &str = "none";

/// How the learning rate drops once, x0.1, in the middle of training.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    strum::Display,
    strum::EnumString,
    strum::VariantNames,
    strum::VariantArray,
)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase", ascii_case_insensitive)]
pub enum Schedule {
    /// Jiang et al.'s: `epochs` epochs, `MultiStepLR(milestones=[epochs // 2])` stepped
    /// after every epoch, one optimiser throughout (momentum kept).
    MultiStep,
    /// DC's own repository's (DC, DSA, DM), MTT's and DC-BENCH's: `epochs + 1` epochs; after epoch `epochs // 2 + 1` a new
    /// SGD optimiser at lr x0.1 (the momentum starts from zero again).
    Restart,
    /// IDC's `train.py`: `epochs` epochs, `MultiStepLR(milestones=[2 * epochs // 3, 5 * epochs // 6],
    /// gamma=0.2)` stepped after every epoch, one optimiser throughout.
    Idc,
}

/// The epochs a schedule trains and where its learning rate drops.
#[derive(Debug, Clone, PartialEq)]
pub struct Phases {
    /// Epochs trained in all.
    pub total: usize,
    /// The epochs from which the learning rate is multiplied by `factor`, in order (one at or past
    /// `total` never comes; an epoch given twice multiplies twice, as PyTorch's `MultiStepLR`).
    pub drops: Vec<usize>,
    pub factor: f64,
    /// Whether the momentum buffers are cleared where the learning rate drops.
    pub fresh_momentum: bool,
}

impl Phases {
    /// Sets `opt` up for `epoch`: lr x`factor` at each drop (momentum cleared there if fresh).
    pub fn before_epoch(&self, epoch: usize, opt: &mut Sgd) {
        for _ in self.drops.iter().filter(|&&d| d == epoch) {
            opt.lr *= self.factor;
            if self.fresh_momentum {
                opt.clear_momentum();
            }
        }
    }
}

impl Schedule {
    pub fn phases(self, epochs: usize) -> Phases {
        match self {
            Schedule::MultiStep => Phases { total: epochs, drops: vec![epochs / 2], factor: 0.1, fresh_momentum: false },
            Schedule::Restart => Phases { total: epochs + 1, drops: vec![epochs / 2 + 2], factor: 0.1, fresh_momentum: true },
            Schedule::Idc => Phases { total: epochs, drops: vec![2 * epochs / 3, 5 * epochs / 6], factor: 0.2, fresh_momentum: false },
        }
    }

    /// Records written before schedules were named all used the multistep schedule.
    fn before_schedules() -> Schedule {
        Schedule::MultiStep
    }
}

/// What an accuracy was measured under, resolved for its dataset and evaluation network: written
/// next to every accuracy the runner prints or stores.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recipe {
    pub protocol: Protocol,
    /// The recipe's epochs (the `restart` schedule trains one more).
    pub epochs: usize,
    /// The augmentation of every training batch.
    pub augment: String,
    #[serde(default = "Schedule::before_schedules")]
    pub schedule: Schedule,
    #[serde(default = "default_lr")]
    pub lr: f64,
    /// CutMix on every training batch (after its augmentation), as IDC trains; absent: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cutmix: Option<CutMix>,
    /// [`Recipe::REVISION`] for recipes resolved as the reference tools resolve them; 1 (absent)
    /// for records made before (`dc`: 300 epochs and no augmentation on every dataset; `dsa`:
    /// 1000 epochs with the multistep schedule).
    #[serde(default = "first_revision")]
    pub revision: u32,
}

fn default_lr() -> f64 {
    0.01
}

fn first_revision() -> u32 {
    1
}

impl Recipe {
    pub const REVISION: u32 = 2;

    /// The batch a network trains on after its augmentation: `images (n, c, h, w)` and their
    /// `targets (n, classes)` mixed by CutMix when the recipe has it (its draws from `seed`'s
    /// stream for training batch `batch`), else as they are.
    pub fn mix(&self, images: Tensor, targets: Tensor, seed: u64, batch: u64) -> candle_core::Result<(Tensor, Tensor)> {
        let Some(cutmix) = self.cutmix else { return Ok((images, targets)) };
        let mut rng = ChaCha8Rng::seed_from_u64(derive_seed(seed, stream::EVAL_MIX, batch));
        let (n, _, h, w) = images.dims4()?;
        match cutmix.draw(&mut rng, n, (h, w))? {
            Some(mix) => CutMix::apply(&images, &targets, &mix),
            None => Ok((images, targets)),
        }
    }
}

impl std::fmt::Display for Recipe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Phases { total, drops, factor, fresh_momentum } = self.schedule.phases(self.epochs);
        let revision = if self.revision < Recipe::REVISION { format!(" (gradmatch's recipe v{})", self.revision) } else { String::new() };
        write!(f, "protocol {}{revision}: {total} epochs, augment {}, lr {}", self.protocol, self.augment, self.lr)?;
        let drops: Vec<String> = drops.iter().filter(|&&d| d < total).map(usize::to_string).collect();
        if !drops.is_empty() {
            let at = match drops.len() {
                1 => format!("epoch {}", drops[0]),
                _ => format!("epochs {}", drops.join(", ")),
            };
            write!(f, " x{factor} from {at}{}", if fresh_momentum { " with a fresh optimiser" } else { "" })?;
        }
        if let Some(CutMix { p, beta }) = self.cutmix {
            write!(f, ", cutmix p {p} beta {beta}")?;
        }
        Ok(())
    }
}

/// The evaluation protocol: train a fresh network on the (synthetic) set, test on the full test set.
/// In a file, `protocol` picks the recipe and any field given overrides it; `epochs`, `augment` and
/// `schedule` left out are resolved per dataset and model ([`EvalConfig::resolve`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "EvalFile")]
pub struct EvalConfig {
    /// The recipe the other fields started from.
    pub protocol: Protocol,
    /// Training epochs (`None`: the protocol's for the dataset and model).
    pub epochs: Option<usize>,
    pub lr: f64,
    pub momentum: f64,
    pub weight_decay: f64,
    pub batch_size: usize,
    /// What every training batch goes through: `none`, a DC strategy (`crop_scale_rotate`,
    /// `crop_noise`, ...; `mnist` and `true` read as the first) or a registered augmentation plug-in
    /// such as `dsa` (`None`: the protocol's for the dataset and model).
    pub augment: Option<String>,
    /// `None`: the protocol's (DC: multistep, DSA: restart).
    pub schedule: Option<Schedule>,
    /// Test on the first `n` test images only (for quick checks; `None` = the full test set).
    pub test_limit: Option<usize>,
    /// CutMix on every training batch after its augmentation (`[evaluation.cutmix]` with `p` and
    /// `beta`, IDC's 0.5 and 1.0 for small images); `None`: none. Left out of the serialised config
    /// when absent, so that configs written before it keep their ids.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cutmix: Option<CutMix>,
    /// Networks trained per set (each with its own seed).
    pub num_eval: usize,
    /// Architectures to evaluate on (cross-architecture tables); empty = the condensing model.
    pub models: Vec<ModelSpec>,
    /// Networks trained at once as one ensemble (`None`: as many as the memory budget holds, at most
    /// 20). Results do not depend on it beyond float rounding, so it is never serialised: it takes
    /// no part in the experiment's provenance.
    #[serde(skip_serializing)]
    pub networks_at_once: Option<usize>,
}

impl Default for EvalConfig {
    fn default() -> Self {
        Protocol::Dc.recipe()
    }
}

impl EvalConfig {
    /// The recipe of `protocol` with this config's choice of networks, models and test subset.
    pub fn with_protocol(&self, protocol: Protocol) -> EvalConfig {
        EvalConfig {
            test_limit: self.test_limit,
            models: self.models.clone(),
            networks_at_once: self.networks_at_once,
            ..protocol.recipe()
        }
    }

    /// The recipe an evaluation network `model` trains under on `dataset`: the fields this config
    /// gives, the protocol's choice for the others.
    pub fn resolve(&self, dataset: DatasetName, model: &ModelSpec) -> Recipe {
        let augment = self.augment.clone().unwrap_or_else(|| self.protocol.augment(dataset, model));
        Recipe {
            protocol: self.protocol,
            epochs: self.epochs.unwrap_or_else(|| self.protocol.epochs(&augment)),
            augment,
            schedule: self.schedule.unwrap_or(self.protocol.schedule()),
            lr: self.lr,
            cutmix: self.cutmix,
            revision: Recipe::REVISION,
        }
    }

    /// This config as it was written before recipes were resolved per dataset (epochs and augment
    /// always given, no schedule), read back today: what the records of stores made then hold.
    pub fn as_first_revision(&self) -> EvalConfig {
        let (epochs, augment) = match self.protocol {
            Protocol::Dc => (300, NO_AUGMENTATION),
            Protocol::Dsa => (1000, "dsa"),
            // Made after per-dataset recipes: no record holds a first revision of it.
            Protocol::Idc => return self.clone(),
        };
        let augment = self.augment.clone().unwrap_or_else(|| augment.into());
        // No schedule was written then: one given now is the protocol's or another (never an old record's).
        let schedule = self.schedule.or(self.protocol.recipe().schedule);
        EvalConfig { epochs: Some(self.epochs.unwrap_or(epochs)), augment: Some(augment), schedule, ..self.clone() }
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
    schedule: Option<Schedule>,
    test_limit: Option<usize>,
    cutmix: Option<CutMix>,
    num_eval: Option<usize>,
    models: Option<Vec<ModelSpec>>,
    networks_at_once: Option<usize>,
}

/// `augment = true` (the MNIST strategy, as before names existed) or a name.
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
            epochs: f.epochs,
            lr: f.lr.unwrap_or(r.lr),
            momentum: f.momentum.unwrap_or(r.momentum),
            weight_decay: f.weight_decay.unwrap_or(r.weight_decay),
            batch_size: f.batch_size.unwrap_or(r.batch_size),
            augment: f.augment.map(|a| match a {
                AugmentField::Flag(false) => NO_AUGMENTATION.into(),
                AugmentField::Flag(true) => DcAugmentation::MNIST.into(),
                AugmentField::Name(name) => DcAugmentation::canonical(&name),
            }),
            schedule: f.schedule.or(r.schedule),
            test_limit: f.test_limit.or(r.test_limit),
            cutmix: f.cutmix.or(r.cutmix),
            num_eval: f.num_eval.unwrap_or(r.num_eval),
            models: f.models.unwrap_or(r.models),
            networks_at_once: f.networks_at_once,
        }
    }
}

#[cfg(test)]
mod tests;
