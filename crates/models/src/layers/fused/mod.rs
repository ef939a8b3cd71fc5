//! CPU fast paths: im2col and col2im, instance norm, the per-channel affine, ReLU and average-pool
//! backward, and the tail of a ConvNet block (instance norm, affine, ReLU, average pooling) forward
//! in one pass and backward in two, where the candle composition takes a pass per operation; the
//! convolutions with short patches computed directly ([`short_conv`]) and the 3 x 3 ones by
//! Winograd's transforms ([`winograd_conv`]); and whole ConvNet blocks, either convolution with the
//! tail, in one kernel per sample or block of samples ([`short_conv_norm_relu_pool`],
//! [`winograd_norm_relu_pool`]).
//!
//! Layers use them on the CPU for f32/f64 tensors outside any autodiff graph and use the candle
//! composition everywhere else (CUDA, the synthetic side's graph); im2col and col2im are also graph
//! operations on the CPU, each the other's backward, so that a tracked convolution keeps only its
//! input and its patches instead of every shifted copy. Tests check each kernel equal to the
//! composition it replaces, which [`compositions_only`] brings back.
//!
//! Every kernel is compiled for AVX-512 and for AVX2 + FMA besides the x86-64 baseline, and the
//! best the CPU has is picked at run time (`multiversion`): never `target-cpu=native`, so the binary
//! runs on any x86-64 CPU. No float operation is reordered, so every version gives the same bits.

use candle_core::{backend::BackendStorage, CpuStorage, CustomOp1, Device, Layout, Result, Shape, Storage, Tensor};
use rayon::prelude::*;
use std::cell::Cell;

const EPS: f64 = 1e-5;

/// Marks a kernel function: compiled for AVX-512, AVX2 + FMA and the baseline, picked at run time.
/// Only the function's own loops (and what is inlined into them) get the features: a closure handed
/// to rayon is called through a generic shim compiled for the baseline, so its body runs as SSE2
/// code. Hence the rule of every kernel here: the parallel driver is a plain function, and each of
/// its work items calls a `vectorised!` function. Exported for the kernels that live beside their
/// callers (the SGD update, in the engine's optimiser); a crate using it depends on `multiversion`.
#[macro_export]
macro_rules! vectorised {
    ($item:item) => {
        #[multiversion::multiversion(targets("x86_64+avx512f+avx512bw+avx512cd+avx512dq+avx512vl", "x86_64+avx2+fma"))]
        $item
    };
}

mod affine_pool;
mod block;
mod first_block;
mod norm;
mod patches;
mod short_conv;
#[cfg(test)]
mod testing;
mod winograd;
mod winograd_block;
pub use affine_pool::{affine_grads, avg_pool_backward, scale_shift};
pub use block::{norm_relu_pool, norm_relu_pool_backward, NormReluPoolGrads, NormReluPoolOutput};
pub use first_block::{short_conv_norm_relu_pool, BlockOutput};
pub use norm::{instance_norm_backward, instance_stats, normalise, relu_backward};
pub use patches::{col2im, im2col, im2col_with_ones};
pub use short_conv::{short_conv, short_conv_grads, SHORT_PATCH};
pub use winograd::{winograd_applies, winograd_conv, winograd_weight_gradient};
pub use winograd_block::winograd_norm_relu_pool;

thread_local! {
    static COMPOSITIONS_ONLY: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` with the CPU kernels off on this thread: every layer takes its candle composition, as
/// on CUDA. For the tests that hold the kernels to the compositions, and for sizing a GPU's passes
/// from a probe on the CPU.
pub fn compositions_only<R>(f: impl FnOnce() -> R) -> R {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            COMPOSITIONS_ONLY.with(|c| c.set(self.0));
        }
    }
    let _restore = Restore(COMPOSITIONS_ONLY.with(|c| c.replace(true)));
    f()
}

/// Whether `t` may take a kernel that is also a graph operation (im2col, col2im): on the CPU, f32
/// or f64, tracked or not.
pub fn cpu_float(t: &Tensor) -> bool {
    !COMPOSITIONS_ONLY.with(Cell::get) && t.device().is_cpu() && matches!(t.dtype(), candle_core::DType::F32 | candle_core::DType::F64)
}

/// Whether `t` may take the graph-free kernels: [`cpu_float`] and outside any graph.
pub fn eligible(t: &Tensor) -> bool {
    cpu_float(t) && !t.track_op()
}

/// The arithmetic the kernels need, for f32 and f64.
pub trait Float:
    candle_core::WithDType
    + Send
    + Sync
    + PartialOrd
    + std::ops::Add<Output = Self>
    + std::ops::Sub<Output = Self>
    + std::ops::Mul<Output = Self>
    + std::ops::AddAssign
    + std::ops::MulAssign
{
    fn of(v: f64) -> Self;
    fn to(self) -> f64;
    /// Runs `f` on this thread's scratch buffer of `len` values (contents unspecified: whatever a
    /// previous kernel left), kept from call to call so that large working buffers that are
    /// overwritten before they are read are neither allocated nor zeroed again.
    fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [Self]) -> R) -> R;
}

thread_local! {
    static SCRATCH_F32: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
    static SCRATCH_F64: std::cell::RefCell<Vec<f64>> = const { std::cell::RefCell::new(Vec::new()) };
}

fn with_buffer<T: Copy + Default, R>(buffer: &std::cell::RefCell<Vec<T>>, len: usize, f: impl FnOnce(&mut [T]) -> R) -> R {
    let mut buffer = buffer.borrow_mut();
    if buffer.len() < len {
        buffer.resize(len, T::default());
    }
    f(&mut buffer[..len])
}

impl Float for f32 {
    fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [Self]) -> R) -> R {
        SCRATCH_F32.with(|b| with_buffer(b, len, f))
    }
    #[inline(always)]
    fn of(v: f64) -> Self {
        v as f32
    }
    #[inline(always)]
    fn to(self) -> f64 {
        self as f64
    }
}

impl Float for f64 {
    fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [Self]) -> R) -> R {
        SCRATCH_F64.with(|b| with_buffer(b, len, f))
    }
    #[inline(always)]
    fn of(v: f64) -> Self {
        v
    }
    #[inline(always)]
    fn to(self) -> f64 {
        self
    }
}

/// `max(v, 0)` as candle's ReLU (0 for NaN).
#[inline(always)]
fn relu<T: Float>(v: T) -> T {
    if v > T::zero() {
        v
    } else {
        T::zero()
    }
}

/// A kernel over `N` contiguous inputs of one float type, with one or more outputs.
pub trait Kernel<const N: usize> {
    const NAME: &'static str;
    /// The shape of every output, from the inputs' dims.
    fn shapes(&self, dims: [&[usize]; N]) -> Vec<Shape>;
    /// The outputs' values; `dims` are the first input's.
    fn run<T: Float>(&self, inputs: [&[T]; N], dims: &[usize]) -> Vec<Vec<T>>;
}

fn contiguous<'a, T: candle_core::WithDType>(s: &'a CpuStorage, l: &Layout) -> Result<&'a [T]> {
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&s.as_slice::<T>()?[a..b]),
        None => candle_core::bail!("fused kernels need contiguous inputs"),
    }
}

/// Runs `kernel` on CPU storages as f32 or as f64, whichever they all are.
fn run_storages<K: Kernel<N>, const N: usize>(kernel: &K, inputs: [(&CpuStorage, &Layout); N]) -> Result<Vec<CpuStorage>> {
    fn slices<'a, T: candle_core::WithDType, const N: usize>(inputs: [(&'a CpuStorage, &Layout); N]) -> Result<[&'a [T]; N]> {
        let mut out: [&[T]; N] = [&[]; N];
        for (o, (s, l)) in out.iter_mut().zip(inputs) {
            *o = contiguous(s, l)?;
        }
        Ok(out)
    }
    let dims = inputs[0].1.dims();
    let mismatch = |e| candle_core::Error::Msg(format!("{}: f32 or f64 inputs of one type ({e})", K::NAME));
    match inputs[0].0 {
        CpuStorage::F32(_) => Ok(kernel.run(slices::<f32, N>(inputs).map_err(mismatch)?, dims).into_iter().map(CpuStorage::F32).collect()),
        CpuStorage::F64(_) => Ok(kernel.run(slices::<f64, N>(inputs).map_err(mismatch)?, dims).into_iter().map(CpuStorage::F64).collect()),
        other => candle_core::bail!("{}: f32 or f64 only, got {:?}", K::NAME, other.dtype()),
    }
}

/// Runs `kernel` on CPU tensors (made contiguous), outside any graph: its outputs as tensors.
pub fn apply<K: Kernel<N>, const N: usize>(kernel: &K, inputs: [&Tensor; N]) -> Result<Vec<Tensor>> {
    let inputs = inputs.map(Tensor::contiguous);
    let mut tensors = Vec::with_capacity(N);
    for t in inputs {
        tensors.push(t?);
    }
    let shapes = kernel.shapes(std::array::from_fn(|i| tensors[i].dims()));
    let guards: Vec<_> = tensors.iter().map(Tensor::storage_and_layout).collect();
    let mut storages = Vec::with_capacity(N);
    for (storage, layout) in &guards {
        match &**storage {
            Storage::Cpu(s) => storages.push((s, *layout)),
            _ => candle_core::bail!("{}: CPU tensors only", K::NAME),
        }
    }
    let outputs = run_storages(kernel, std::array::from_fn(|i| storages[i]))?;
    drop(guards);
    outputs.into_iter().zip(shapes).map(|(values, shape)| tensor(values, shape)).collect()
}

/// The values as a CPU tensor of `shape`, without a copy.
fn tensor(values: CpuStorage, shape: Shape) -> Result<Tensor> {
    match values {
        CpuStorage::F32(v) => Tensor::from_vec(v, shape, &Device::Cpu),
        CpuStorage::F64(v) => Tensor::from_vec(v, shape, &Device::Cpu),
        other => candle_core::bail!("fused kernels make f32 or f64, not {:?}", other.dtype()),
    }
}

/// [`apply`] for a kernel of one output.
fn apply_one<K: Kernel<N>, const N: usize>(kernel: &K, inputs: [&Tensor; N]) -> Result<Tensor> {
    Ok(apply(kernel, inputs)?.remove(0))
}

/// The first `len` values of `values`, which keeps the rest: a buffer cut into the runs of
/// parallel work items.
fn take<'a, T>(values: &mut &'a mut [T], len: usize) -> &'a mut [T] {
    let (run, rest) = std::mem::take(values).split_at_mut(len);
    *values = rest;
    run
}

/// Per-channel sums over the rows of a `(m, c)` slice, in f64.
#[inline(always)]
fn channel_sums<T: Float>(sample: &[T], c: usize, f: impl Fn(usize, T) -> f64) -> Vec<f64> {
    let mut acc = vec![0f64; c];
    for row in sample.chunks_exact(c) {
        for (k, (a, &v)) in acc.iter_mut().zip(row).enumerate() {
            *a += f(k, v);
        }
    }
    acc
}
