use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    ConvNet,
    Mlp,
    LeNet,
    AlexNet,
    Vgg11,
    ResNet18,
    /// ResNet18 with stride-1 convolutions followed by 2x2 average pooling ("AP").
    ResNet18Ap,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Act {
    Relu,
    Sigmoid,
    LeakyRelu,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NormKind {
    None,
    Instance,
    Batch,
    Layer,
    Group,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PoolKind {
    None,
    Avg,
    Max,
}

/// A network architecture and its variant, named as in the DC code (`ConvNet`, `ConvNetW64`,
/// `ConvNetD4`, `ConvNetAS`, `ConvNetBN`, `ConvNetMP`, `MLP`, `LeNet`, `AlexNet`, `VGG11BN`,
/// `ResNet18BN`, `ResNet18BN_AP`, ...; case-insensitive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelSpec {
    pub arch: Arch,
    /// ConvNet channels per block.
    pub width: usize,
    /// ConvNet blocks.
    pub depth: usize,
    pub act: Act,
    pub norm: NormKind,
    pub pool: PoolKind,
}

impl ModelSpec {
    /// Whether the network has batch-norm layers (the MLP and LeNet have no norm layers).
    pub fn has_batch_norm(&self) -> bool {
        self.norm == NormKind::Batch && self.arch != Arch::Mlp && self.arch != Arch::LeNet
    }

    /// The reference ConvNet: width 128, depth 3, relu, instance norm, average pooling.
    pub const CONVNET: ModelSpec =
        ModelSpec { arch: Arch::ConvNet, width: 128, depth: 3, act: Act::Relu, norm: NormKind::Instance, pool: PoolKind::Avg };

    /// The widest ConvNet accepted: 32 times the reference's; one of its layers holds 150M
    /// parameters, beyond what condensation on any one device can use.
    pub const MAX_WIDTH: usize = 4096;

    pub fn with_arch(arch: Arch, norm: NormKind) -> ModelSpec {
        ModelSpec { arch, norm, ..ModelSpec::CONVNET }
    }

    pub fn known_names() -> &'static str {
        "ConvNet, ConvNetW32/W64/W128/W256, ConvNetD1-D4, ConvNetAS/AR/AL (sigmoid/relu/leaky relu), \
         ConvNetNN/BN/LN/IN/GN (norms), ConvNetNP/MP/AP (pools), MLP, LeNet, AlexNet, AlexNetBN, VGG11, \
         VGG11BN, ResNet18, ResNet18BN, ResNet18BN_AP"
    }
}

#[derive(Debug, thiserror::Error)]
#[error("unknown model `{name}`{why}; known models: {known}", why = self.why.as_ref().map(|w| format!(" ({w})")).unwrap_or_default(), known = ModelSpec::known_names())]
pub struct UnknownModel {
    pub name: String,
    /// What is wrong with a name of a known pattern.
    pub why: Option<String>,
}

impl UnknownModel {
    fn new(name: &str) -> UnknownModel {
        UnknownModel { name: name.to_string(), why: None }
    }

    fn because(name: &str, why: String) -> UnknownModel {
        UnknownModel { name: name.to_string(), why: Some(why) }
    }
}

impl FromStr for ModelSpec {
    type Err = UnknownModel;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.to_ascii_lowercase().replace('-', "_");
        let convnet = ModelSpec::CONVNET;
        let spec = match lower.as_str() {
            "mlp" => ModelSpec::with_arch(Arch::Mlp, NormKind::None),
            "lenet" => ModelSpec::with_arch(Arch::LeNet, NormKind::None),
            "alexnet" => ModelSpec::with_arch(Arch::AlexNet, NormKind::None),
            "alexnetbn" => ModelSpec::with_arch(Arch::AlexNet, NormKind::Batch),
            "vgg11" => ModelSpec::with_arch(Arch::Vgg11, NormKind::Instance),
            "vgg11bn" => ModelSpec::with_arch(Arch::Vgg11, NormKind::Batch),
            "resnet18" => ModelSpec::with_arch(Arch::ResNet18, NormKind::Instance),
            "resnet18bn" => ModelSpec::with_arch(Arch::ResNet18, NormKind::Batch),
            "resnet18bn_ap" => ModelSpec::with_arch(Arch::ResNet18Ap, NormKind::Batch),
            "convnet" => convnet,
            other => {
                let variant = other.strip_prefix("convnet").ok_or_else(|| UnknownModel::new(s))?;
                let unknown = || UnknownModel::new(s);
                match variant {
                    "as" => ModelSpec { act: Act::Sigmoid, ..convnet },
                    "ar" => ModelSpec { act: Act::Relu, ..convnet },
                    "al" => ModelSpec { act: Act::LeakyRelu, ..convnet },
                    "nn" => ModelSpec { norm: NormKind::None, ..convnet },
                    "bn" => ModelSpec { norm: NormKind::Batch, ..convnet },
                    "ln" => ModelSpec { norm: NormKind::Layer, ..convnet },
                    "in" => ModelSpec { norm: NormKind::Instance, ..convnet },
                    "gn" => ModelSpec { norm: NormKind::Group, ..convnet },
                    "np" => ModelSpec { pool: PoolKind::None, ..convnet },
                    "mp" => ModelSpec { pool: PoolKind::Max, ..convnet },
                    "ap" => ModelSpec { pool: PoolKind::Avg, ..convnet },
                    v if v.starts_with('w') => {
                        let width: usize = v[1..].parse().map_err(|_| unknown())?;
                        if !(1..=ModelSpec::MAX_WIDTH).contains(&width) {
                            return Err(UnknownModel::because(
                                s,
                                format!("width {width}: a ConvNet's width is 1 to {}, the reference's 128", ModelSpec::MAX_WIDTH),
                            ));
                        }
                        ModelSpec { width, ..convnet }
                    }
                    v if v.starts_with('d') => {
                        let depth: usize = v[1..].parse().map_err(|_| unknown())?;
                        if !(1..=5).contains(&depth) {
                            return Err(unknown());
                        }
                        ModelSpec { depth, ..convnet }
                    }
                    _ => return Err(unknown()),
                }
            }
        };
        Ok(spec)
    }
}

impl fmt::Display for ModelSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let norm_suffix = match self.norm {
            NormKind::Batch => "BN",
            _ => "",
        };
        match self.arch {
            Arch::Mlp => write!(f, "MLP"),
            Arch::LeNet => write!(f, "LeNet"),
            Arch::AlexNet => write!(f, "AlexNet{norm_suffix}"),
            Arch::Vgg11 => write!(f, "VGG11{norm_suffix}"),
            Arch::ResNet18 => write!(f, "ResNet18{norm_suffix}"),
            Arch::ResNet18Ap => write!(f, "ResNet18BN_AP"),
            Arch::ConvNet => {
                let base = ModelSpec::CONVNET;
                let mut name = String::from("ConvNet");
                if self.width != base.width {
                    name += &format!("W{}", self.width);
                }
                if self.depth != base.depth {
                    name += &format!("D{}", self.depth);
                }
                name += match self.act {
                    Act::Relu => "",
                    Act::Sigmoid => "AS",
                    Act::LeakyRelu => "AL",
                };
                name += match self.norm {
                    NormKind::Instance => "",
                    NormKind::None => "NN",
                    NormKind::Batch => "BN",
                    NormKind::Layer => "LN",
                    NormKind::Group => "GN",
                };
                name += match self.pool {
                    PoolKind::Avg => "",
                    PoolKind::None => "NP",
                    PoolKind::Max => "MP",
                };
                f.write_str(&name)
            }
        }
    }
}

impl Serialize for ModelSpec {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for ModelSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}
