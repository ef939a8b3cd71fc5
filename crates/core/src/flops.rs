//! A process-wide count of the FLOPs of the matrix products the engine and its plug-ins do, so that
//! a benchmark can say how far its seconds are from what the machine's GEMM rate allows.

use std::sync::atomic::{AtomicU64, Ordering};

static PRODUCT_FLOPS: AtomicU64 = AtomicU64::new(0);

/// Counts one `(m, k) x (k, n)` product: `2 m k n` FLOPs (for a convolution, its direct FLOPs,
/// whatever algorithm computes it).
pub fn count_product(m: usize, k: usize, n: usize) {
    PRODUCT_FLOPS.fetch_add(2 * (m as u64) * (k as u64) * (n as u64), Ordering::Relaxed);
}

/// FLOPs counted in this process so far.
pub fn counted() -> u64 {
    PRODUCT_FLOPS.load(Ordering::Relaxed)
}
