use crate::device::DeviceData;
use crate::forgetting::ForgettingCounter;
use crate::optim::Sgd;
use crate::recipe::{EvalConfig, Recipe};
use crate::seed::{derive_seed, stream};
use candle_core::{DType, Result, Tensor};
use gradmatch_core::host::{self, ReadMeter, RoundReads};
use gradmatch_core::Augmentation;
use gradmatch_models::{correct_counts, one_hot, Mode, ModelSpec, Network};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::time::Instant;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EvalOutcome {
    /// Test accuracy in [0, 1].
    pub accuracy: f64,
    pub final_train_loss: f64,
    pub train_seconds: f64,
    pub test_seconds: f64,
}

/// One evaluation network: what it trains on and how its batches are augmented.
#[derive(Clone, Copy)]
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

/// Refuses a set whose accuracy would mean nothing: no images, or values that are not numbers.
pub fn check_images(images: &Tensor, labels: &[u32]) -> Result<()> {
    if labels.is_empty() {
        candle_core::bail!("the set has no images: there is nothing to train an evaluation network on")
    }
    let total = host::scalar_f64(&images.sum_all()?)?;
    if !total.is_finite() {
        candle_core::bail!("the set's images hold values that are not finite numbers (NaN or infinity): it cannot be evaluated")
    }
    Ok(())
}

/// Trains a fresh network on the task's images under `recipe` (with `cfg`'s momentum, weight decay,
/// batch size and test subset), then measures its accuracy on the test set.
pub fn evaluate(task: &EvalTask, cfg: &EvalConfig, recipe: &Recipe) -> Result<EvalOutcome> {
    let trained = train(task, cfg, recipe)?;
    let (started, mut reads) = (Instant::now(), ReadMeter::start());
    let accuracy = test_accuracy(&trained.net, task.test, cfg.test_limit)?;
    report_reads(1, &trained.host_reads, reads.lap());
    Ok(EvalOutcome {
        accuracy,
        final_train_loss: trained.final_train_loss,
        train_seconds: trained.train_seconds,
        test_seconds: started.elapsed().as_secs_f64(),
    })
}

/// With `GRADMATCH_HOST_READS` set, an evaluation's host reads: per training epoch, and in its test pass.
pub(crate) fn report_reads(networks: usize, epochs: &RoundReads, test: u64) {
    if host::reporting() {
        eprintln!("host reads, evaluation of {networks} network(s): training {epochs} (epochs), test pass {test}");
    }
}

/// A network trained by [`train`].
pub struct Trained {
    pub net: Network,
    pub final_train_loss: f64,
    pub train_seconds: f64,
    /// Reads into host memory, per epoch.
    pub host_reads: RoundReads,
}

/// Trains a fresh network on the task's images under `recipe` (with `cfg`'s momentum, weight decay
/// and batch size): the training half of [`evaluate`].
pub fn train(task: &EvalTask, cfg: &EvalConfig, recipe: &Recipe) -> Result<Trained> {
    train_watching(task, cfg, recipe, None)
}

/// Trains as [`train`] does and counts, for every training image, its forgetting events: how often
/// the prediction on its training batch was wrong right after being right (Toneva et al., 2019).
/// One more forward pass per batch.
pub fn train_counting_forgetting(task: &EvalTask, cfg: &EvalConfig, recipe: &Recipe) -> Result<(Trained, Vec<u32>)> {
    let mut counter = ForgettingCounter::new(task.labels.len());
    let trained = train_watching(task, cfg, recipe, Some(&mut counter))?;
    Ok((trained, counter.events().to_vec()))
}

fn train_watching(task: &EvalTask, cfg: &EvalConfig, recipe: &Recipe, mut counter: Option<&mut ForgettingCounter>) -> Result<Trained> {
    let EvalTask { spec, images, labels, test, num_classes, augment, seed } = *task;
    cfg.check().map_err(|e| candle_core::Error::Msg(e.to_string()))?;
    check_images(images, labels)?;
    let (dtype, device) = (images.dtype(), images.device());
    let net = Network::new(spec, test.shape, num_classes, derive_seed(seed, stream::NETWORK, 0), dtype, device)?;
    let mut opt = Sgd::new(net.vars(), recipe.lr, cfg.momentum, cfg.weight_decay);
    let phases = recipe.schedule.phases(recipe.epochs);
    let mut rng = ChaCha8Rng::seed_from_u64(derive_seed(seed, stream::EVALUATION, 0));
    let targets = one_hot(labels, num_classes, dtype, device)?;
    let n = labels.len();
    let mut order: Vec<u32> = (0..n as u32).collect();
    let started = Instant::now();
    let mut last_loss = Tensor::zeros((), dtype, device)?;
    let mut batches = 0u64;
    let (mut reads, mut host_reads) = (ReadMeter::start(), RoundReads::default());
    for epoch in 0..phases.total {
        phases.before_epoch(epoch, &mut opt);
        order.shuffle(&mut rng);
        // One upload of the epoch's order; each batch's indices are a view of it.
        let order_on_device = Tensor::from_slice(&order, n, device)?;
        for (b, chunk) in order.chunks(cfg.batch_size).enumerate() {
            let idx = order_on_device.narrow(0, b * cfg.batch_size, chunk.len())?;
            let x = augment.augment_each(&images.index_select(&idx, 0)?, derive_seed(seed, stream::EVAL_AUGMENT, batches))?.detach();
            let (x, batch_targets) = recipe.mix(x, targets.index_select(&idx, 0)?, seed, batches)?;
            batches += 1;
            if let Some(counter) = counter.as_deref_mut() {
                let predicted = host::vec1::<u32>(&net.forward(&x, Mode::Train)?.argmax(1)?)?;
                for (&image, guess) in chunk.iter().zip(predicted) {
                    counter.visit(image as usize, guess == labels[image as usize]);
                }
            }
            let (loss, grads) = net.loss_and_grads(&x, &batch_targets, Mode::Train, 1)?;
            opt.step_all(&grads)?;
            last_loss = loss;
        }
        // One host sync per epoch: catches divergence without stalling every step on a GPU.
        if epoch % 25 == 0 || epoch + 1 == phases.total {
            let l = host::scalar_f64(&last_loss)?;
            if !l.is_finite() {
                candle_core::bail!(
                    "evaluation of {spec}: training loss is {l} at epoch {epoch} (lr {}); the set or the learning rate diverges",
                    opt.lr
                )
            }
        }
        host_reads.add(reads.lap());
    }
    let train_seconds = started.elapsed().as_secs_f64();
    let final_train_loss = host::scalar_f64(&last_loss)?;
    Ok(Trained { net, final_train_loss, train_seconds, host_reads })
}

/// Accuracy of `net` on the first `limit` images of `test` (all when `None`).
pub fn test_accuracy(net: &Network, test: &DeviceData, limit: Option<usize>) -> Result<f64> {
    Ok(test_accuracy_of_members(net, test, limit)?[0])
}

/// Each network's accuracy on the first `limit` images of `test`, for a network or an ensemble
/// (every network sees the same test images).
pub(crate) fn test_accuracy_of_members(net: &Network, test: &DeviceData, limit: Option<usize>) -> Result<Vec<f64>> {
    let total = limit.unwrap_or(test.split.len()).min(test.split.len());
    let members = net.members();
    // Counted on the device and read once: a read per chunk would stall a GPU ~40 times per network.
    let mut correct = Tensor::zeros(members, DType::U32, test.labels.device())?;
    // 256 test images per pass in all: larger passes only add memory (the patches of 1000 images take 1.2 GB).
    let chunk = (256 / members).max(1);
    for start in (0..total).step_by(chunk) {
        let len = chunk.min(total - start);
        let x = test.rows(start, len)?;
        let x = if members == 1 { x } else { Tensor::cat(&vec![&x; members], 0)? };
        let logits = net.forward(&x, Mode::Eval)?;
        correct = (correct + correct_counts(&logits, &test.labels.narrow(0, start, len)?, members)?)?;
    }
    Ok(host::vec1::<u32>(&correct)?.into_iter().map(|c| c as f64 / total.max(1) as f64).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use gradmatch_data::{DatasetName, Split};
    use std::sync::Mutex;

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
        let images = test.rows(0, split.len()).unwrap();
        let recording = Recording(Mutex::new(Vec::new()));
        let spec = ModelSpec { width: 4, ..ModelSpec::CONVNET };
        let task =
            EvalTask { spec: &spec, images: &images, labels: &split.labels, test: &test, num_classes: 10, augment: &recording, seed: 3 };
        let cfg = EvalConfig { epochs: Some(3), batch_size: 8, ..EvalConfig::default() };
        evaluate(&task, &cfg, &cfg.resolve(DatasetName::Mnist, &spec)).unwrap();
        let seeds = recording.0.into_inner().unwrap();
        assert_eq!(seeds.len(), 3 * 4, "3 epochs of 4 batches (30 images, batches of 8)");
        let distinct: std::collections::HashSet<_> = seeds.iter().collect();
        assert_eq!(distinct.len(), seeds.len(), "a seed per batch");
    }
}
