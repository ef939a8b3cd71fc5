//! Values for the kernels' unit tests.

use candle_core::{Device, Tensor};

/// f64 values in [-1, 1] from a xorshift stream seeded by `seed`.
pub fn random(dims: &[usize], seed: u64) -> Tensor {
    let n: usize = dims.iter().product();
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let values: Vec<f64> = (0..n)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % 2001) as f64 / 1000.0 - 1.0
        })
        .collect();
    Tensor::from_vec(values, dims, &Device::Cpu).unwrap()
}

/// The largest absolute difference of two f64 tensors of one element count (`b` read in `a`'s shape).
pub fn max_difference(a: &Tensor, b: &Tensor) -> f64 {
    let b = b.reshape(a.dims()).unwrap();
    (a - &b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f64>().unwrap()
}
