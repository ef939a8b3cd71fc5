//! A fixed matching context on real MNIST images and its finite-difference check.

use candle_core::{DType, Device, Result, Tensor, Var};
use gradmatch_core::{MatchContext, Parameterisation};
use gradmatch_data::{Dataset, DatasetName};
use gradmatch_models::{one_hot, Mode, ModelSpec, Network};
use std::fmt;
use std::path::Path;
use std::sync::OnceLock;

const CLASSES: usize = 3;
const REAL_PER_CLASS: usize = 8;
const SYN_PER_CLASS: usize = 2;
/// Central difference step: f64 round-off and the curvature error are both far below the tolerance.
const STEP: f64 = 1e-6;
/// Every 397th pixel of a class's two images: a spread over both, corners and centres.
const PIXEL_STRIDE: usize = 397;

/// Host copies of the images per class, read once per test binary: reading MNIST dominates a check.
struct Images {
    real: Vec<Vec<f32>>,
    syn: Vec<Vec<f32>>,
}

/// MNIST, read once per test binary from the workspace's `data/` (fetched there on first use).
pub(crate) fn mnist() -> &'static Dataset {
    static MNIST: OnceLock<Dataset> = OnceLock::new();
    MNIST.get_or_init(|| {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data");
        gradmatch_data::load(DatasetName::Mnist, &dir)
            .unwrap_or_else(|e| panic!("gradmatch-testkit reads MNIST from {}: {e}", dir.display()))
    })
}

fn images() -> &'static Images {
    static IMAGES: OnceLock<Images> = OnceLock::new();
    IMAGES.get_or_init(|| {
        let ds = mnist();
        let pick = |c: usize, from: usize, n: usize| ds.train.gather(&ds.train.class_indices(c)[from..from + n]);
        // The synthetic images start as other real images of their class, as the engine initialises them.
        Images {
            real: (0..CLASSES).map(|c| pick(c, 0, REAL_PER_CLASS)).collect(),
            syn: (0..CLASSES).map(|c| pick(c, 100, SYN_PER_CLASS)).collect(),
        }
    })
}

/// A deterministic [`MatchContext`]: 3 MNIST classes, 8 real and 2 synthetic images per class, a
/// ConvNet of width 4 and depth 2 in f64 (seed 3). Real gradients are computed once (the network
/// never changes); the "shuffled" synthetic batch has a fixed order, so every loss is a function of
/// the synthetic images that finite differences can probe.
pub struct MnistContext {
    net: Network,
    real_class: Vec<Vec<Tensor>>,
    real_mixed: Vec<Tensor>,
    syn: Vec<Var>,
    /// What [`MatchContext::iteration`] reports: levels may alternate by its parity.
    pub iteration: usize,
}

/// `n` images of `pixels` as an f64 batch `(n, 1, 28, 28)`.
fn batch(pixels: &[f32]) -> Result<Tensor> {
    Tensor::from_slice(pixels, (pixels.len() / (28 * 28), 1, 28, 28), &Device::Cpu)?.to_dtype(DType::F64)
}

/// Labels of contiguous class blocks of `per_class` images, classes in `order`.
fn labels(order: impl Iterator<Item = usize>, per_class: usize) -> Vec<u32> {
    order.flat_map(|c| vec![c as u32; per_class]).collect()
}

impl MnistContext {
    /// Reads MNIST (once per process), builds the network and computes the real gradients.
    pub fn new() -> Result<MnistContext> {
        let spec = ModelSpec { width: 4, depth: 2, ..ModelSpec::CONVNET };
        let net = Network::new(&spec, (1, 28, 28), CLASSES, 3, DType::F64, &Device::Cpu)?;
        let images = images();
        let real = Tensor::cat(&images.real.iter().map(|p| batch(p)).collect::<Result<Vec<_>>>()?, 0)?;
        let real_labels = labels(0..CLASSES, REAL_PER_CLASS);
        let detach = |g: Vec<Vec<Tensor>>| g.into_iter().map(|g| g.into_iter().map(|t| t.detach()).collect()).collect::<Vec<_>>();
        let real_class = detach(grads(&net, &real, &real_labels, CLASSES)?);
        let real_mixed = detach(grads(&net, &real, &real_labels, 1)?).remove(0);
        let syn = images.syn.iter().map(|p| Var::from_tensor(&batch(p)?)).collect::<Result<_>>()?;
        Ok(MnistContext { net, real_class, real_mixed, syn, iteration: 0 })
    }

    /// The synthetic images of each class, `(2, 1, 28, 28)` f64: what the checks differentiate by.
    pub fn syn(&self) -> &[Var] {
        &self.syn
    }

    /// d loss / d(synthetic images) by autodiff against central finite differences, at every 397th
    /// pixel of each class plus that class's steepest one. The error is relative to the class's
    /// largest autodiff entry (at least 1e-4); a class the loss does not reach counts as 0.
    pub fn finite_difference_mismatch(&mut self, loss: &mut dyn FnMut(&mut MnistContext) -> Result<Tensor>) -> Result<Mismatch> {
        let grads = loss(self)?.backward()?;
        let mut worst = Mismatch { error: 0.0, class: 0, pixel: 0, autodiff: 0.0, numeric: 0.0 };
        for class in 0..CLASSES {
            let original = self.syn[class].flatten_all()?.to_vec1::<f64>()?;
            let autodiff = match grads.get(&self.syn[class]) {
                Some(g) => g.flatten_all()?.to_vec1::<f64>()?,
                None => vec![0.0; original.len()],
            };
            let scale = autodiff.iter().fold(1e-4f64, |m, v| m.max(v.abs()));
            let steepest = (0..autodiff.len()).max_by(|&a, &b| autodiff[a].abs().total_cmp(&autodiff[b].abs())).unwrap_or(0);
            for pixel in (0..original.len()).step_by(PIXEL_STRIDE).chain([steepest]) {
                let mut at = |delta: f64| {
                    let mut moved = original.clone();
                    moved[pixel] += delta;
                    self.set_syn(class, moved)?;
                    loss(self)?.to_scalar::<f64>()
                };
                let numeric = (at(STEP)? - at(-STEP)?) / (2.0 * STEP);
                let error = (numeric - autodiff[pixel]).abs() / scale;
                if error.is_nan() || error > worst.error {
                    worst = Mismatch { error, class, pixel, autodiff: autodiff[pixel], numeric };
                }
            }
            self.set_syn(class, original)?;
        }
        Ok(worst)
    }

    /// Per-class gradients of the synthetic images as `parameterisation` decodes them (the stored
    /// images are [`MnistContext::syn`]), with their graph.
    pub fn decoded_class_grads(&self, parameterisation: &dyn Parameterisation) -> Result<Vec<Vec<Tensor>>> {
        let decoded = self.syn.iter().map(|v| parameterisation.decode(v.as_tensor())).collect::<Result<Vec<_>>>()?;
        let per_class = SYN_PER_CLASS * parameterisation.images_per_stored();
        grads(&self.net, &Tensor::cat(&decoded, 0)?, &labels(0..CLASSES, per_class), CLASSES)
    }

    fn set_syn(&mut self, class: usize, values: Vec<f64>) -> Result<()> {
        self.syn[class].set(&Tensor::from_vec(values, self.syn[class].shape(), &Device::Cpu)?)
    }
}

/// Per-group parameter gradients of the mean cross-entropy of `x` (groups: equal contiguous blocks).
fn grads(net: &Network, x: &Tensor, labels: &[u32], groups: usize) -> Result<Vec<Vec<Tensor>>> {
    let targets = one_hot(labels, CLASSES, DType::F64, &Device::Cpu)?;
    let (_, grads) = net.loss_and_grads(x, &targets, Mode::Train, groups)?;
    (0..groups).map(|g| grads.iter().map(|t| t.get(g)).collect()).collect()
}

/// The pixel where autodiff and finite differences disagree most.
#[derive(Debug, Clone, Copy)]
pub struct Mismatch {
    /// |numeric - autodiff| relative to the class's largest autodiff entry (NaN if either is).
    pub error: f64,
    pub class: usize,
    /// Index into the class's flattened `(2, 1, 28, 28)` images.
    pub pixel: usize,
    pub autodiff: f64,
    pub numeric: f64,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let Mismatch { error, class, pixel, autodiff, numeric } = self;
        write!(f, "relative error {error:e} at class {class}, pixel {pixel} (autodiff {autodiff:e}, finite differences {numeric:e})")
    }
}

impl MatchContext for MnistContext {
    fn num_classes(&self) -> usize {
        CLASSES
    }
    fn iteration(&self) -> usize {
        self.iteration
    }
    fn real_class_grads(&mut self) -> Result<Vec<Vec<Tensor>>> {
        Ok(self.real_class.clone())
    }
    fn syn_class_grads(&mut self) -> Result<Vec<Vec<Tensor>>> {
        let x = Tensor::cat(&self.syn.iter().map(|v| v.as_tensor()).collect::<Vec<_>>(), 0)?;
        grads(&self.net, &x, &labels(0..CLASSES, SYN_PER_CLASS), CLASSES)
    }
    /// All 24 real images, whatever `n`.
    fn real_mixed_grads(&mut self, _n: usize) -> Result<Vec<Tensor>> {
        Ok(self.real_mixed.clone())
    }
    /// The first `max` synthetic images in a fixed order (classes reversed) instead of a shuffle.
    fn syn_mixed_grads(&mut self, max: usize) -> Result<Vec<Tensor>> {
        let x = Tensor::cat(&self.syn.iter().rev().map(|v| v.as_tensor()).collect::<Vec<_>>(), 0)?;
        let n = max.min(x.dim(0)?);
        let labels = labels((0..CLASSES).rev(), SYN_PER_CLASS);
        Ok(grads(&self.net, &x.narrow(0, 0, n)?, &labels[..n], 1)?.remove(0))
    }
}
