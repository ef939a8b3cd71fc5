//! Whose normalisation a set's images are in, and the conversion between two tools'.
//!
//! Every tool of the field feeds its networks `x = (p - mean_c) / std_c` per channel, for pixels `p`
//! in [0, 1], but not with the same constants. The table below holds each tool's constants as its
//! own code writes them (`get_dataset` of each repository):
//!
//! | dataset | gradmatch (Jiang et al.) | DC / DSA / DM, DC-BENCH | MTT, DD-Ranking |
//! |---|---|---|---|
//! | MNIST, FashionMNIST, SVHN | ours | = ours | no such dataset in their code: DC's (= ours) |
//! | CIFAR-10 | std (0.2470, 0.2435, 0.2616) | std (0.2023, 0.1994, 0.2010) | = DC's |
//! | CIFAR-100 | (0.5071, 0.4867, 0.4408) / (0.2675, 0.2565, 0.2761) | (0.5071, 0.4866, 0.4409) / (0.2673, 0.2564, 0.2762) | CIFAR-10's DC constants |
//!
//! (CIFAR-10's means agree everywhere: 0.4914, 0.4822, 0.4465.) DC-BENCH's evaluator normalises
//! CIFAR-10/100 with DC's constants; DD-Ranking's `get_dataset` with MTT's.

use anyhow::Result;
use candle_core::{DType, Tensor};
use gradmatch_data::DatasetName;

/// A family of tools that share one table of normalisation constants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Normalisation {
    /// gradmatch and Jiang et al.'s code: [`DatasetName::mean`] / [`DatasetName::std`].
    Gradmatch,
    /// DC, DSA and DM (VICO-UoE/DatasetCondensation) and DC-BENCH.
    Dc,
    /// MTT (GeorgeCazenavette/mtt-distillation) and DD-Ranking.
    Mtt,
}

/// Per-channel mean and standard deviation of the [0, 1]-scaled images.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Constants {
    pub mean: &'static [f32],
    pub std: &'static [f32],
}

const DC_MNIST: Constants = Constants { mean: &[0.1307], std: &[0.3081] };
const DC_FASHION_MNIST: Constants = Constants { mean: &[0.2861], std: &[0.3530] };
const DC_SVHN: Constants = Constants { mean: &[0.4377, 0.4438, 0.4728], std: &[0.1980, 0.2010, 0.1970] };
const DC_CIFAR10: Constants = Constants { mean: &[0.4914, 0.4822, 0.4465], std: &[0.2023, 0.1994, 0.2010] };
const DC_CIFAR100: Constants = Constants { mean: &[0.5071, 0.4866, 0.4409], std: &[0.2673, 0.2564, 0.2762] };

impl Normalisation {
    #[cfg(test)]
    pub const ALL: [Normalisation; 3] = [Normalisation::Gradmatch, Normalisation::Dc, Normalisation::Mtt];

    /// The name `--normalisation` and `--export-for` take (and the files' `normalisation` metadata).
    pub fn name(self) -> &'static str {
        match self {
            Normalisation::Gradmatch => "gradmatch",
            Normalisation::Dc => "dc",
            Normalisation::Mtt => "mtt",
        }
    }

    /// The tools that normalise this way, for messages.
    pub fn tools(self) -> &'static str {
        match self {
            Normalisation::Gradmatch => "gradmatch (Jiang et al.)",
            Normalisation::Dc => "DC/DSA/DM (and DC-BENCH)",
            Normalisation::Mtt => "MTT (and DD-Ranking)",
        }
    }

    pub fn constants(self, dataset: DatasetName) -> Constants {
        use DatasetName::*;
        match (self, dataset) {
            (Normalisation::Gradmatch, _) => Constants { mean: dataset.mean(), std: dataset.std() },
            // MTT's and DD-Ranking's code has no MNIST, FashionMNIST or SVHN; forks that add them
            // copy DC's `get_dataset`.
            (Normalisation::Dc | Normalisation::Mtt, Mnist) => DC_MNIST,
            (Normalisation::Dc | Normalisation::Mtt, FashionMnist) => DC_FASHION_MNIST,
            (Normalisation::Dc | Normalisation::Mtt, Svhn) => DC_SVHN,
            (Normalisation::Dc | Normalisation::Mtt, Cifar10) => DC_CIFAR10,
            (Normalisation::Dc, Cifar100) => DC_CIFAR100,
            // MTT and DD-Ranking normalise CIFAR-100 with CIFAR-10's constants.
            (Normalisation::Mtt, Cifar100) => DC_CIFAR10,
        }
    }

    /// "MTT (and DD-Ranking)'s normalisation of cifar100 (mean [..], std [..])".
    pub fn describe(self, dataset: DatasetName) -> String {
        let c = self.constants(dataset);
        format!("{}'s normalisation of {dataset} (mean {}, std {})", self.tools(), list(c.mean), list(c.std))
    }
}

fn list(values: &[f32]) -> String {
    format!("[{}]", values.iter().map(|v| format!("{v:.4}")).collect::<Vec<_>>().join(", "))
}

impl std::fmt::Display for Normalisation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Normalisation {
    type Err = String;

    /// A family's name or one of its tools': `gradmatch` (`jiang`), `dc` (`dsa`, `dm`, `dc-bench`),
    /// `mtt` (`dd-ranking`).
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.trim().to_ascii_lowercase().replace('_', "-").as_str() {
            "gradmatch" | "jiang" => Ok(Normalisation::Gradmatch),
            "dc" | "dsa" | "dm" | "dc-bench" | "dcbench" => Ok(Normalisation::Dc),
            "mtt" | "dd-ranking" | "ddranking" => Ok(Normalisation::Mtt),
            _ => Err(format!("unknown normalisation `{s}`; expected gradmatch (or jiang), dc (or dsa, dm, dc-bench), mtt (or dd-ranking)")),
        }
    }
}

/// `images` (N, C, H, W), normalised as `from` normalises `dataset`, in `to`'s normalisation:
/// `x_to = (x_from * std_from + mean_from - mean_to) / std_to` per channel, on the images' device.
/// `None` when both use the same constants.
pub fn convert(images: &Tensor, dataset: DatasetName, from: Normalisation, to: Normalisation) -> Result<Option<Tensor>> {
    let (f, t) = (from.constants(dataset), to.constants(dataset));
    if f == t {
        return Ok(None);
    }
    let channels = images.dim(1)?;
    anyhow::ensure!(channels == t.mean.len(), "{channels} channels, but {dataset} images have {}", t.mean.len());
    // x_to = x_from * scale + shift, with scale and shift computed in f64.
    let scale: Vec<f32> = (0..channels).map(|c| (f.std[c] as f64 / t.std[c] as f64) as f32).collect();
    let shift: Vec<f32> = (0..channels).map(|c| ((f.mean[c] as f64 - t.mean[c] as f64) / t.std[c] as f64) as f32).collect();
    let per_channel = |v: Vec<f32>| Tensor::from_vec(v, (1, channels, 1, 1), images.device());
    let x = images.to_dtype(DType::F32)?;
    Ok(Some(x.broadcast_mul(&per_channel(scale)?)?.broadcast_add(&per_channel(shift)?)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn the_tools_disagree_on_cifar_only() {
        for ds in [DatasetName::Mnist, DatasetName::FashionMnist, DatasetName::Svhn] {
            for n in Normalisation::ALL {
                assert_eq!(n.constants(ds), Normalisation::Gradmatch.constants(ds), "{n} {ds}");
            }
        }
        let std = |n: Normalisation, ds| n.constants(ds).std;
        assert_eq!(std(Normalisation::Gradmatch, DatasetName::Cifar10), [0.2470, 0.2435, 0.2616]);
        assert_eq!(std(Normalisation::Dc, DatasetName::Cifar10), [0.2023, 0.1994, 0.2010]);
        assert_eq!(Normalisation::Mtt.constants(DatasetName::Cifar10), Normalisation::Dc.constants(DatasetName::Cifar10));
        assert_eq!(Normalisation::Mtt.constants(DatasetName::Cifar100), Normalisation::Dc.constants(DatasetName::Cifar10));
        assert_eq!(std(Normalisation::Dc, DatasetName::Cifar100), [0.2673, 0.2564, 0.2762]);
        assert_eq!(Normalisation::Dc.constants(DatasetName::Cifar100).mean, [0.5071, 0.4866, 0.4409]);
    }

    #[test]
    fn names_of_every_tool_parse_and_unknown_ones_are_listed() {
        for (s, n) in [
            ("DSA", Normalisation::Dc),
            ("dc-bench", Normalisation::Dc),
            ("DD_Ranking", Normalisation::Mtt),
            ("jiang", Normalisation::Gradmatch),
        ] {
            assert_eq!(s.parse::<Normalisation>(), Ok(n), "{s}");
        }
        for n in Normalisation::ALL {
            assert_eq!(n.name().parse::<Normalisation>(), Ok(n));
        }
        let err = "kip".parse::<Normalisation>().unwrap_err();
        assert!(err.contains("`kip`") && err.contains("dd-ranking"), "{err}");
    }

    #[test]
    fn conversion_is_the_per_channel_affine_map_and_inverts() {
        let pixels: Vec<f32> = (0..2 * 3 * 4).map(|i| (i * 37 % 256) as f32 / 255.0).collect();
        let normalise =
            |c: Constants| -> Vec<f32> { pixels.iter().enumerate().map(|(i, p)| (p - c.mean[i / 4 % 3]) / c.std[i / 4 % 3]).collect() };
        let ds = DatasetName::Cifar10;
        let theirs = Tensor::from_vec(normalise(Normalisation::Dc.constants(ds)), (2, 3, 2, 2), &Device::Cpu).unwrap();
        let ours = convert(&theirs, ds, Normalisation::Dc, Normalisation::Gradmatch).unwrap().unwrap();
        let flat = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let worst = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
        assert!(worst(&flat(&ours), &normalise(Normalisation::Gradmatch.constants(ds))) < 1e-6);
        let back = convert(&ours, ds, Normalisation::Gradmatch, Normalisation::Dc).unwrap().unwrap();
        assert!(worst(&flat(&back), &flat(&theirs)) < 1e-6);
        assert!(convert(&theirs, ds, Normalisation::Dc, Normalisation::Mtt).unwrap().is_none(), "same constants: nothing to do");
    }
}
