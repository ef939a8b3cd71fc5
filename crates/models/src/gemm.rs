//! Products through the `gemm` crate candle's CPU matmul calls, for the kernels that run their own
//! GEMMs on slices (Winograd's), and the machine's GEMM rate: the bench's floor, against the FLOPs
//! the layers count as they run (`gradmatch_core::flops`).

use candle_core::WithDType;

/// `dst = lhs x rhs` for row-major `lhs (m, k)`, `rhs (k, n)` and `dst (m, n)`, on every core
/// (rayon's pool, as candle's matmul); `dst` is only written.
pub(crate) fn product<T: WithDType>((m, k, n): (usize, usize, usize), lhs: &[T], rhs: &[T], dst: &mut [T]) {
    assert!(lhs.len() == m * k && rhs.len() == k * n && dst.len() == m * n, "product: slices of ({m}, {k}) x ({k}, {n})");
    let threads = rayon::current_num_threads();
    let parallelism = if threads > 1 { gemm::Parallelism::Rayon(threads) } else { gemm::Parallelism::None };
    let (k_stride, n_stride) = (k as isize, n as isize);
    // SAFETY: three row-major buffers of exactly the sizes the strides describe (asserted above).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n_stride,
            false,
            lhs.as_ptr(),
            1,
            k_stride,
            rhs.as_ptr(),
            1,
            n_stride,
            T::zero(),
            T::one(),
            false,
            false,
            false,
            parallelism,
        )
    }
}

/// GFLOP/s of an f32 `side x side x side` [`product`] on the CPU, the best of `repeats` after one
/// warm-up: the peak the bench's floor ratios are against.
pub fn peak_gflops(side: usize, repeats: usize) -> f64 {
    let a: Vec<f32> = (0..side * side).map(|i| ((i % 7) as f32 - 3.0) * 0.25).collect();
    let b: Vec<f32> = (0..side * side).map(|i| ((i % 5) as f32 - 2.0) * 0.5).collect();
    let mut c = vec![0f32; side * side];
    let shape = (side, side, side);
    product(shape, &a, &b, &mut c);
    let best = (0..repeats.max(1))
        .map(|_| {
            let started = std::time::Instant::now();
            product(shape, &a, &b, &mut c);
            started.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min);
    2.0 * (side as f64).powi(3) / best / 1e9
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_product_and_the_peak() {
        // The timed path is a real product: rectangular, dst overwritten whatever it held.
        let (a, b) = ([1f32, 2.0, 3.0, 4.0, 5.0, 6.0], [7f32, 8.0, 9.0, 10.0, 11.0, 12.0]);
        let mut c = [f32::NAN; 4];
        product((2, 3, 2), &a, &b, &mut c);
        assert_eq!(c, [58.0, 64.0, 139.0, 154.0]);
        let mut d = [0f64; 2];
        product((1, 2, 2), &[1.0, 2.0], &[3.0, 4.0, 5.0, 6.0], &mut d);
        assert_eq!(d, [13.0, 16.0]);
        assert!(peak_gflops(64, 1) > 0.0);
    }
}
