//! Selections: coresets of distinct images of the class, the same for the same seed, on real MNIST
//! images seen through a real network.

use crate::sampler::subset;
use candle_core::{DType, Device, Result, Tensor};
use gradmatch_core::rand::{RngCore, SeedableRng};
use gradmatch_core::{SelectContext, Selection};
use gradmatch_data::Split;
use gradmatch_models::{Mode, ModelSpec, Network};

/// Checks that the selection, on the first 1000 MNIST training images seen through a small ConvNet
/// (forgetting counts made up from the index):
/// * picks `n` distinct images of the class (each index in range and labelled with the class), and
///   all of them when `n` is the class's size;
/// * picks the same images for the same seed (its only randomness is the context's stream);
/// * refuses, with an error and no panic, more images than the class has.
///
/// Panics naming the law that fails.
pub fn check_selection(selection: &dyn Selection) {
    let split = subset();
    let net =
        Network::new(&ModelSpec { width: 8, ..ModelSpec::CONVNET }, (1, 28, 28), 10, 3, DType::F32, &Device::Cpu).expect("a small ConvNet");
    for class in [0, 7] {
        let size = split.class_indices(class).len();
        for n in [1, 5, size] {
            let pick = |seed: u64| {
                let mut ctx = KitContext { split, net: &net, rng: rand_chacha::ChaCha8Rng::seed_from_u64(seed) };
                selection.select(&mut ctx, class, n).unwrap_or_else(|e| panic!("check_selection: {n} images of class {class}: {e}"))
            };
            let picked = pick(5);
            assert!(picked == pick(5), "check_selection: the same seed picked other images ({n} of class {class})");
            let mut sorted = picked.clone();
            sorted.sort_unstable();
            sorted.dedup();
            assert_eq!(sorted.len(), n, "check_selection: {n} distinct images of class {class} were asked, {} given", sorted.len());
            for &i in &picked {
                let label = split.labels.get(i).unwrap_or_else(|| panic!("check_selection: index {i} is out of range"));
                assert_eq!(*label as usize, class, "check_selection: class {class}'s coreset holds image {i} of class {label}");
            }
            if n == size {
                assert_eq!(sorted, split.class_indices(class), "check_selection: the whole class was asked");
            }
        }
        let mut ctx = KitContext { split, net: &net, rng: rand_chacha::ChaCha8Rng::seed_from_u64(0) };
        assert!(
            selection.select(&mut ctx, class, size + 1).is_err(),
            "check_selection: {} images of a class of {size} were given",
            size + 1
        );
    }
}

/// A [`SelectContext`] on the kit's images and network.
struct KitContext<'a> {
    split: &'a Split,
    net: &'a Network,
    rng: rand_chacha::ChaCha8Rng,
}

impl SelectContext for KitContext<'_> {
    fn class_indices(&self, class: usize) -> &[usize] {
        self.split.class_indices(class)
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

    fn forgetting_events(&mut self, indices: &[usize]) -> Result<Vec<u32>> {
        Ok(indices.iter().map(|&i| (i * 7 % 5) as u32).collect())
    }
}
