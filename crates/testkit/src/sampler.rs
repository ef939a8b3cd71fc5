//! Samplers: batches of the right class and size, the same for the same seed, on real MNIST images
//! seen through a real network.

use crate::mnist::mnist;
use candle_core::{DType, Device, Result, Tensor};
use gradmatch_core::rand::{RngCore, SeedableRng};
use gradmatch_core::{SampleContext, Sampler};
use gradmatch_data::Split;
use gradmatch_models::{Mode, ModelSpec, Network};
use std::sync::OnceLock;

/// Training images the kit samples from: the first of MNIST's, about 100 per class.
const IMAGES: usize = 1000;
/// Matching steps each check runs on one network: more than DREAM's interval of 10.
const STEPS: usize = 12;

/// Checks that the sampler, on the first 1000 MNIST training images seen through a small ConvNet:
/// * gives every class at every matching step a batch of `batch size` images of that class (each
///   index in range and labelled with the class), and all of the class's images, once each, when
///   the batch size is more than it has;
/// * gives `n` images of the class to start the synthetic set from;
/// * draws the same batches and initial images for the same seed (its only randomness is the run's
///   stream), on a fresh network's batches every time.
///
/// Panics naming the law that fails.
pub fn check_sampler(sampler: &dyn Sampler) {
    let split = subset();
    let net =
        Network::new(&ModelSpec { width: 8, ..ModelSpec::CONVNET }, (1, 28, 28), 10, 3, DType::F32, &Device::Cpu).expect("a small ConvNet");
    let class_size = |c: usize| split.class_indices(c).len();
    let largest = (0..10).map(class_size).max().unwrap_or(0);
    for batch_size in [16, largest + 1] {
        let draws = |seed: u64| draw_all(sampler, &KitContext::new(split, &net, batch_size, seed));
        let (first, again) = (draws(5), draws(5));
        assert!(first == again, "check_sampler: the same seed gave other batches or initial images (batch size {batch_size})");
        for (step, batches) in first.batches.iter().enumerate() {
            for (class, batch) in batches.iter().enumerate() {
                let want = batch_size.min(class_size(class));
                assert_eq!(batch.len(), want, "check_sampler: class {class}'s batch at step {step} has {} images, not {want}", batch.len());
                of_class(split, batch, class, &format!("batch at step {step}"));
                if batch_size > class_size(class) {
                    let mut sorted = batch.clone();
                    sorted.sort_unstable();
                    assert_eq!(sorted, split.class_indices(class), "check_sampler: a batch larger than class {class} is all of its images");
                }
            }
        }
        for (class, initial) in first.initial.iter().enumerate() {
            assert_eq!(initial.len(), 3, "check_sampler: class {class}'s initial images: {} when 3 were asked", initial.len());
            of_class(split, initial, class, "initial images");
        }
    }
}

fn of_class(split: &Split, indices: &[usize], class: usize, what: &str) {
    for &i in indices {
        let label = split.labels.get(i).unwrap_or_else(|| panic!("check_sampler: class {class}'s {what}: index {i} is out of range"));
        assert_eq!(*label as usize, class, "check_sampler: class {class}'s {what}: image {i} is of class {label}");
    }
}

/// Every batch of [`STEPS`] matching steps on one network, then 3 initial images per class.
#[derive(PartialEq)]
struct Drawn {
    batches: Vec<Vec<Vec<usize>>>,
    initial: Vec<Vec<usize>>,
}

fn draw_all(sampler: &dyn Sampler, template: &KitContext) -> Drawn {
    let mut ctx = template.fresh();
    let mut source = sampler.for_network();
    let mut batches = Vec::new();
    for step in 0..STEPS {
        ctx.step = step;
        batches.push((0..10).map(|c| source.batch(&mut ctx, c).unwrap_or_else(|e| panic!("check_sampler: batch failed: {e}"))).collect());
    }
    let initial =
        (0..10).map(|c| sampler.initial(&mut ctx, c, 3).unwrap_or_else(|e| panic!("check_sampler: initial failed: {e}"))).collect();
    Drawn { batches, initial }
}

pub(crate) fn subset() -> &'static Split {
    static SUBSET: OnceLock<Split> = OnceLock::new();
    SUBSET.get_or_init(|| {
        let train = &mnist().train;
        let n = IMAGES.min(train.len());
        Split::new(train.images[..n * train.image_len()].to_vec(), train.labels[..n].to_vec(), train.image_len(), 10)
    })
}

/// A [`SampleContext`] on the kit's images and network.
struct KitContext<'a> {
    split: &'a Split,
    net: &'a Network,
    batch_size: usize,
    seed: u64,
    step: usize,
    rng: rand_chacha::ChaCha8Rng,
}

impl<'a> KitContext<'a> {
    fn new(split: &'a Split, net: &'a Network, batch_size: usize, seed: u64) -> Self {
        KitContext { split, net, batch_size, seed, step: 0, rng: rand_chacha::ChaCha8Rng::seed_from_u64(seed) }
    }

    fn fresh(&self) -> KitContext<'a> {
        KitContext::new(self.split, self.net, self.batch_size, self.seed)
    }
}

impl SampleContext for KitContext<'_> {
    fn class_indices(&self, class: usize) -> &[usize] {
        self.split.class_indices(class)
    }

    fn batch_size(&self) -> usize {
        self.batch_size
    }

    fn iteration(&self) -> usize {
        0
    }

    fn step(&self) -> usize {
        self.step
    }

    fn rng(&mut self) -> &mut dyn RngCore {
        &mut self.rng
    }

    fn uniform(&mut self, class: usize, n: usize) -> Vec<usize> {
        self.split.sample_class(class, n, &mut self.rng)
    }

    fn features(&mut self, indices: &[usize]) -> Result<Tensor> {
        let images = Tensor::from_vec(self.split.gather(indices), (indices.len(), 1, 28, 28), &Device::Cpu)?;
        self.net.embed(&images, Mode::Eval)
    }
}
