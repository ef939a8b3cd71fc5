//! The augmentations as a whole: Siamese, exact gradients, every transform reachable, options checked.
#![allow(clippy::disallowed_methods)] // reads values to check them

use gradmatch_augment::{Dsa, DsaOptions, NoAugmentation, Transform};
use gradmatch_core::candle_core::{DType, Device};
use gradmatch_core::{Augmentation, Plugin, Tensor};
use gradmatch_testkit::check_augmentation;
use std::collections::BTreeSet;

fn dsa(strategy: &str) -> Dsa {
    Dsa::from_options(DsaOptions { strategy: strategy.into(), ..DsaOptions::default() }).unwrap()
}

fn images(n: usize) -> Tensor {
    Tensor::randn(0f64, 1.0, (n, 2, 6, 6), &Device::Cpu).unwrap()
}

#[test]
fn every_transform_alone_is_siamese_with_an_exact_gradient() {
    for transform in Transform::ALL {
        eprintln!("transform {}", transform.name());
        check_augmentation(&dsa(transform.name()));
    }
}

#[test]
fn the_default_strategy_reaches_every_transform_and_varies_with_the_seed() {
    let default = Dsa::from_options(DsaOptions::default()).unwrap();
    let chosen: BTreeSet<&str> = (0..200).map(|seed| default.transform(seed).name()).collect();
    assert_eq!(chosen, Transform::ALL.iter().map(|t| t.name()).collect(), "each transform at least once in 200 seeds");
    let x = images(2);
    let outputs: Vec<Vec<f64>> = (0..50).map(|s| default.augment(&x, s).unwrap().flatten_all().unwrap().to_vec1().unwrap()).collect();
    let distinct = outputs.iter().enumerate().filter(|(i, o)| !outputs[..*i].contains(o)).count();
    assert!(distinct >= 30, "only {distinct} distinct outputs in 50 seeds");
}

#[test]
fn the_same_seed_augments_real_and_synthetic_batches_alike() {
    // Two batches of different sizes holding the same first image: the Siamese pair of a match.
    let (real, syn) = (images(5), images(1));
    let real = Tensor::cat(&[&syn, &real.narrow(0, 1, 4).unwrap()], 0).unwrap();
    let default = Dsa::from_options(DsaOptions::default()).unwrap();
    for seed in 0..30 {
        let a = default.augment(&real, seed).unwrap().get(0).unwrap();
        let b = default.augment(&syn, seed).unwrap().get(0).unwrap();
        let worst = (a - b).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f64>().unwrap();
        assert!(worst < 1e-12, "seed {seed}: {worst}");
    }
}

#[test]
fn none_is_the_identity_bit_for_bit() {
    check_augmentation(&NoAugmentation);
    let x = Tensor::randn(0f32, 1.0, (3, 1, 28, 28), &Device::Cpu).unwrap();
    let out = NoAugmentation.augment(&x, 7).unwrap();
    assert_eq!(out.dtype(), DType::F32);
    let bits = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap().iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&out), bits(&x));
}

#[test]
fn bad_options_name_their_field() {
    let err = |options: DsaOptions| Dsa::from_options(options).unwrap_err();
    let e = err(DsaOptions { strategy: "color_zoom".into(), ..DsaOptions::default() });
    assert!(e.field == "strategy" && e.message.contains("`zoom`") && e.message.contains("rotate"), "{e}");
    assert_eq!(err(DsaOptions { flip: 1.5, ..DsaOptions::default() }).field, "flip");
    assert_eq!(err(DsaOptions { scale: 0.8, ..DsaOptions::default() }).field, "scale");
    assert_eq!(err(DsaOptions { rotate: -1.0, ..DsaOptions::default() }).field, "rotate");
}

#[test]
fn dsa_runs_in_f32_on_mnist_sized_batches() {
    let x = Tensor::randn(0f32, 1.0, (8, 1, 28, 28), &Device::Cpu).unwrap();
    let default = Dsa::from_options(DsaOptions::default()).unwrap();
    for seed in 0..20 {
        let out = default.augment(&x, seed).unwrap();
        assert_eq!((out.dims(), out.dtype()), (x.dims(), DType::F32), "seed {seed}");
    }
}

#[test]
fn training_batches_get_one_transform_with_parameters_per_image() {
    let dsa = dsa("color_crop_cutout_flip_scale_rotate");
    let same = images(1).repeat((4, 1, 1, 1)).unwrap();
    let spread =
        |t: &Tensor| (t.narrow(0, 0, 1).unwrap().broadcast_sub(t).unwrap()).abs().unwrap().max_all().unwrap().to_scalar::<f64>().unwrap();
    let mut differ = BTreeSet::new();
    for seed in 0..60 {
        assert_eq!(spread(&dsa.augment(&same, seed).unwrap()), 0.0, "Siamese: one set of parameters for the batch");
        if spread(&dsa.augment_each(&same, seed).unwrap()) > 1e-4 {
            differ.insert(format!("{:?}", dsa.transform(seed)));
        }
    }
    // Flip can draw "no flip" for every image; every other transform varies across images.
    assert!(differ.len() >= 5, "per-image parameters for every transform, found for {differ:?}");
}
