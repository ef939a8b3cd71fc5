use crate::augment::augment_batch;
use crate::device::DeviceData;
use crate::optim::Sgd;
use crate::seed::{derive_seed, stream};
use candle_core::{Result, Tensor};
use gradmatch_models::{accuracy_count, one_hot, Mode, ModelSpec, Network};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::time::Instant;

/// The evaluation protocol: train a fresh network on the (synthetic) set, test on the full test set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EvalConfig {
    /// Training epochs; the learning rate drops x0.1 at half of them.
    pub epochs: usize,
    pub lr: f64,
    pub momentum: f64,
    pub weight_decay: f64,
    pub batch_size: usize,
    /// The reference's MNIST augmentation (crop, scale, rotate), one per image per batch.
    pub augment: bool,
    /// Test on the first `n` test images only (for quick checks; `None` = the full test set).
    pub test_limit: Option<usize>,
    /// Networks trained per set (each with its own seed); results are reported as mean +- std.
    pub num_eval: usize,
    /// Architectures to evaluate on (cross-architecture tables); empty = the condensing model.
    pub models: Vec<ModelSpec>,
}

impl Default for EvalConfig {
    fn default() -> Self {
        EvalConfig {
            epochs: 300,
            lr: 0.01,
            momentum: 0.9,
            weight_decay: 5e-4,
            batch_size: 256,
            augment: false,
            test_limit: None,
            num_eval: 20,
            models: Vec::new(),
        }
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

/// Trains a fresh `spec` network (seeded by `seed`) on `images (n, C, H, W)` with `labels`, then
/// measures its accuracy on `test`.
pub fn evaluate(
    spec: &ModelSpec,
    images: &Tensor,
    labels: &[u32],
    test: &DeviceData,
    num_classes: usize,
    cfg: &EvalConfig,
    seed: u64,
) -> Result<EvalOutcome> {
    let (dtype, device) = (images.dtype(), images.device());
    let net = Network::new(spec, test.shape, num_classes, derive_seed(seed, stream::NETWORK, 0), dtype, device)?;
    let mut opt = Sgd::new(net.vars(), cfg.lr, cfg.momentum, cfg.weight_decay);
    let mut rng = ChaCha8Rng::seed_from_u64(derive_seed(seed, stream::EVALUATION, 0));
    let targets = one_hot(labels, num_classes, dtype, device)?;
    let n = labels.len();
    let mut order: Vec<u32> = (0..n as u32).collect();
    let started = Instant::now();
    let mut last_loss = Tensor::zeros((), dtype, device)?;
    for epoch in 0..cfg.epochs {
        if epoch == cfg.epochs / 2 && epoch > 0 {
            opt.lr *= 0.1;
        }
        order.shuffle(&mut rng);
        for chunk in order.chunks(cfg.batch_size) {
            let idx = Tensor::from_slice(chunk, chunk.len(), device)?;
            let mut x = images.index_select(&idx, 0)?;
            if cfg.augment {
                x = augmented(&x, test.shape, &mut rng)?;
            }
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

/// `x` (a batch on the device) with the MNIST augmentation applied on the host, one per image.
fn augmented(x: &Tensor, shape: (usize, usize, usize), rng: &mut ChaCha8Rng) -> Result<Tensor> {
    let mut host = x.flatten_all()?.to_dtype(candle_core::DType::F32)?.to_vec1::<f32>()?;
    augment_batch(&mut host, shape, rng);
    Tensor::from_vec(host, x.shape(), x.device())?.to_dtype(x.dtype())
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
