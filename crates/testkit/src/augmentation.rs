//! Augmentations: Siamese determinism and exact gradients with respect to the images.

use candle_core::{Device, Tensor, Var};
use gradmatch_core::Augmentation;

/// Seeds every check runs over: enough for DSA to pick each of its transforms.
const SEEDS: std::ops::Range<u64> = 0..40;
/// Finite-difference step and the largest relative error of the gradient.
const EPS: f64 = 1e-4;
const TOLERANCE: f64 = 1e-6;

/// `len` values in [-1, 1) from a fixed linear congruential sequence (no dependency, same everywhere).
fn pseudo_random(len: usize, salt: u64) -> Vec<f64> {
    let mut state = salt.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (state >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
        })
        .collect()
}

fn batch(n: usize, salt: u64) -> Tensor {
    Tensor::from_vec(pseudo_random(n * 2 * 6 * 6, salt), (n, 2, 6, 6), &Device::Cpu).expect("shape")
}

/// Checks, over 40 seeds, on f64 batches of 2-channel 6x6 images, that the augmentation
/// * keeps the shape, and gives the same output for the same seed twice (bit for bit);
/// * is Siamese: the first image of a batch of 4 comes out as that image alone does (1e-12);
/// * has the exact gradient: that of a random linear functional of the output, with respect to the
///   input, matches central finite differences within a relative error of 1e-6;
/// * augments training batches (`augment_each`, parameters per image) keeping the shape, the same
///   for the same seed, with the exact gradient.
///
/// Panics naming the seed and the property that fails.
pub fn check_augmentation(augmentation: &dyn Augmentation) {
    let (four, one) = (batch(4, 1), batch(4, 1).narrow(0, 0, 1).expect("first image"));
    for seed in SEEDS {
        let fail = |what: String| -> ! { panic!("check_augmentation (seed {seed}): {what}") };
        let run = |x: &Tensor| augmentation.augment(x, seed).unwrap_or_else(|e| fail(format!("augment failed: {e}")));
        let out = run(&four);
        if out.dims() != four.dims() {
            fail(format!("shape {:?} became {:?}", four.dims(), out.dims()));
        }
        if max_difference(&out, &run(&four)) != 0.0 {
            fail("the same seed on the same batch gave different outputs".into());
        }
        let siamese = max_difference(&out.narrow(0, 0, 1).expect("first image"), &run(&one));
        if siamese > 1e-12 {
            fail(format!("not Siamese: the first image of a batch of 4 differs from it alone by {siamese:e}"));
        }
        let siamese = |x: &Tensor| augmentation.augment(x, seed).expect("augment");
        let error = gradient_error(&siamese, 1, seed);
        if error > TOLERANCE {
            fail(format!("gradient off finite differences by a relative {error:e} (allowed {TOLERANCE:e})"));
        }
        let each = |x: &Tensor| augmentation.augment_each(x, seed).unwrap_or_else(|e| fail(format!("augment_each failed: {e}")));
        let out = each(&four);
        if out.dims() != four.dims() || max_difference(&out, &each(&four)) != 0.0 {
            fail(format!("augment_each: shape {:?} became {:?}, or the same seed gave different outputs", four.dims(), out.dims()));
        }
        let error = gradient_error(&each, 2, seed);
        if error > TOLERANCE {
            fail(format!("augment_each: gradient off finite differences by a relative {error:e} (allowed {TOLERANCE:e})"));
        }
    }
}

fn max_difference(a: &Tensor, b: &Tensor) -> f64 {
    let d = (a - b).and_then(|d| d.abs()?.flatten_all()?.max(0)?.to_scalar::<f64>());
    d.expect("same shapes, f64")
}

/// Relative error (max norm) of the gradient of `sum(w * augment(x))` against central differences,
/// on a batch of `n` images.
fn gradient_error(augment: &dyn Fn(&Tensor) -> Tensor, n: usize, seed: u64) -> f64 {
    let x = batch(n, 2);
    let weights = batch(n, 3 + seed);
    let functional = |x: &Tensor| -> Tensor { (augment(x) * &weights).and_then(|t| t.sum_all()).expect("same shapes") };
    let var = Var::from_tensor(&x).expect("f64");
    let grads = functional(var.as_tensor()).backward().expect("backward");
    let analytic: Vec<f64> = match grads.get(var.as_tensor()) {
        Some(g) => g.flatten_all().and_then(|g| g.to_vec1()).expect("f64"),
        None => vec![0.0; x.elem_count()],
    };
    let values: Vec<f64> = x.flatten_all().and_then(|x| x.to_vec1()).expect("f64");
    let at = |k: usize, delta: f64| {
        let mut v = values.clone();
        v[k] += delta;
        functional(&Tensor::from_vec(v, x.dims(), &Device::Cpu).expect("shape")).to_scalar::<f64>().expect("scalar")
    };
    let numeric: Vec<f64> = (0..values.len()).map(|k| (at(k, EPS) - at(k, -EPS)) / (2.0 * EPS)).collect();
    let norm = |v: &mut dyn Iterator<Item = f64>| v.fold(0.0, |m: f64, x| m.max(x.abs()));
    norm(&mut analytic.iter().zip(&numeric).map(|(a, n)| a - n)) / norm(&mut numeric.iter().copied()).max(1e-12)
}
