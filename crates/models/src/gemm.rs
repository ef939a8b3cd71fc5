//! Products through the `gemm` crate candle's CPU matmul calls, for the kernels that run their own
//! GEMMs on slices (Winograd's), and the machine's GEMM rate: the bench's floor, against the FLOPs
//! the layers count as they run (`gradmatch_core::flops`).

use candle_core::WithDType;

/// Where a product runs: on every core (rayon's pool, as candle's matmul), or on the calling
/// thread alone (a kernel whose own work items already keep every core busy).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Cores {
    All,
    This,
}

/// `dst = lhs x rhs` for row-major `lhs (m, k)`, `rhs (k, n)` and `dst (m, n)`; `dst` is only
/// written.
pub(crate) fn product<T: WithDType>((m, k, n): (usize, usize, usize), lhs: &[T], rhs: &[T], dst: &mut [T], cores: Cores) {
    assert!(lhs.len() == m * k && rhs.len() == k * n && dst.len() == m * n, "product: slices of ({m}, {k}) x ({k}, {n})");
    // SAFETY: three row-major buffers of exactly the sizes the strides describe (asserted above).
    unsafe { Product { shape: (m, k, n), lhs, lhs_strides: (k as isize, 1), rhs, cores }.into(dst, false) }
}

/// `dst (+)= lhs_tᵀ x rhs` for row-major `lhs_t (k, m)` (the left side stored transposed: a sum
/// over k of outer products, as a weight gradient), `rhs (k, n)` and `dst (m, n)`; `accumulate`
/// adds to what `dst` holds, else `dst` is only written.
pub(crate) fn transposed_product<T: WithDType>(
    (m, k, n): (usize, usize, usize),
    lhs_t: &[T],
    rhs: &[T],
    dst: &mut [T],
    accumulate: bool,
    cores: Cores,
) {
    assert!(lhs_t.len() == m * k && rhs.len() == k * n && dst.len() == m * n, "transposed_product: slices of ({k}, {m})ᵀ x ({k}, {n})");
    // SAFETY: as in `product`; the left side's row stride is 1 and its column stride m.
    unsafe { Product { shape: (m, k, n), lhs: lhs_t, lhs_strides: (1, m as isize), rhs, cores }.into(dst, accumulate) }
}

/// A product `(m, k) x (k, n)` whose left side has strides `(row, column)` and whose right side is
/// row-major.
struct Product<'a, T> {
    shape: (usize, usize, usize),
    lhs: &'a [T],
    lhs_strides: (isize, isize),
    rhs: &'a [T],
    cores: Cores,
}

impl<T: WithDType> Product<'_, T> {
    /// gemm's call into the row-major `dst (m, n)`, read first when `accumulate`.
    ///
    /// # Safety
    /// `lhs` holds every `(i, j)` at `i * row + j * column` for `i < m`, `j < k`; `rhs` is `(k, n)`
    /// and `dst` `(m, n)`, both of exactly that size.
    unsafe fn into(self, dst: &mut [T], accumulate: bool) {
        let (m, k, n) = self.shape;
        let (row, column) = self.lhs_strides;
        let threads = match self.cores {
            Cores::All => rayon::current_num_threads(),
            Cores::This => 1,
        };
        let parallelism = if threads > 1 { gemm::Parallelism::Rayon(threads) } else { gemm::Parallelism::None };
        let n_stride = n as isize;
        // dst = alpha dst + beta lhs rhs, dst read only when `accumulate`.
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n_stride,
            accumulate,
            self.lhs.as_ptr(),
            column,
            row,
            self.rhs.as_ptr(),
            1,
            n_stride,
            T::one(),
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
    product(shape, &a, &b, &mut c, Cores::All);
    let best = (0..repeats.max(1))
        .map(|_| {
            let started = std::time::Instant::now();
            product(shape, &a, &b, &mut c, Cores::All);
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
        product((2, 3, 2), &a, &b, &mut c, Cores::All);
        assert_eq!(c, [58.0, 64.0, 139.0, 154.0]);
        let mut d = [0f64; 2];
        product((1, 2, 2), &[1.0, 2.0], &[3.0, 4.0, 5.0, 6.0], &mut d, Cores::This);
        assert_eq!(d, [13.0, 16.0]);
        // lhs_t (3, 2) is a's transpose stored row-major: the same product, then added once more.
        let a_t = [1f32, 4.0, 2.0, 5.0, 3.0, 6.0];
        transposed_product((2, 3, 2), &a_t, &b, &mut c, false, Cores::This);
        assert_eq!(c, [58.0, 64.0, 139.0, 154.0]);
        transposed_product((2, 3, 2), &a_t, &b, &mut c, true, Cores::All);
        assert_eq!(c, [116.0, 128.0, 278.0, 308.0]);
        assert!(peak_gflops(64, 1) > 0.0);
    }
}
