//! The machine's GEMM rate through the same `gemm` crate candle's CPU matmul calls: the bench's
//! floor, against the FLOPs the layers count as they run (`gradmatch_core::flops`).

/// GFLOP/s of an f32 `side x side x side` GEMM on the CPU, every core (rayon's pool, as candle's
/// matmul), the best of `repeats` after one warm-up: the peak the bench's floor ratios are against.
pub fn peak_gflops(side: usize, repeats: usize) -> f64 {
    let a: Vec<f32> = (0..side * side).map(|i| ((i % 7) as f32 - 3.0) * 0.25).collect();
    let b: Vec<f32> = (0..side * side).map(|i| ((i % 5) as f32 - 2.0) * 0.5).collect();
    let mut c = vec![0f32; side * side];
    let threads = rayon::current_num_threads();
    let parallelism = if threads > 1 { gemm::Parallelism::Rayon(threads) } else { gemm::Parallelism::None };
    let run = |c: &mut [f32]| {
        let s = side as isize;
        // SAFETY: a, b and c are row-major side x side buffers that outlive the call.
        unsafe {
            gemm::gemm(
                side,
                side,
                side,
                c.as_mut_ptr(),
                1,
                s,
                false,
                a.as_ptr(),
                1,
                s,
                b.as_ptr(),
                1,
                s,
                0.0,
                1.0,
                false,
                false,
                false,
                parallelism,
            )
        }
    };
    run(&mut c);
    let best = (0..repeats.max(1))
        .map(|_| {
            let started = std::time::Instant::now();
            run(&mut c);
            started.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min);
    2.0 * (side as f64).powi(3) / best / 1e9
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_peak_gemm_computes_the_product() {
        // The timed call is a real product: a 2 x 2 case through the same path gives the right values.
        let (a, b) = ([1f32, 2.0, 3.0, 4.0], [5f32, 6.0, 7.0, 8.0]);
        let mut c = [0f32; 4];
        unsafe {
            gemm::gemm(
                2,
                2,
                2,
                c.as_mut_ptr(),
                1,
                2,
                false,
                a.as_ptr(),
                1,
                2,
                b.as_ptr(),
                1,
                2,
                0.0,
                1.0,
                false,
                false,
                false,
                gemm::Parallelism::None,
            )
        };
        assert_eq!(c, [19.0, 22.0, 43.0, 50.0]);
        assert!(super::peak_gflops(64, 1) > 0.0);
    }
}
