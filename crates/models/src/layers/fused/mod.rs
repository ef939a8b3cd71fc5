//! CPU fast paths: im2col and col2im, instance norm, the per-channel affine, ReLU and average-pool
//! backward, and the tail of a ConvNet block (instance norm, affine, ReLU, average pooling) forward
//! in one pass and backward in two, where the candle composition takes a pass per operation; the
//! convolutions with short patches computed directly ([`short_conv`]) and the 3 x 3 ones by
//! Winograd's transforms ([`winograd_conv`]).
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
/// The closures inside (rayon's work items) inherit the target's features.
macro_rules! vectorised {
    ($item:item) => {
        #[multiversion::multiversion(targets("x86_64+avx512f+avx512bw+avx512cd+avx512dq+avx512vl", "x86_64+avx2+fma"))]
        $item
    };
}

mod first_block;
mod short_conv;
#[cfg(test)]
mod testing;
mod winograd;
pub use first_block::short_conv_norm_relu_pool;
pub use short_conv::{short_conv, short_conv_grads, SHORT_PATCH};
pub use winograd::{winograd_applies, winograd_conv};

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
trait Float:
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
trait Kernel<const N: usize> {
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
fn apply<K: Kernel<N>, const N: usize>(kernel: &K, inputs: [&Tensor; N]) -> Result<Vec<Tensor>> {
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

/// Instance-norm statistics of `x (n, m, c)`: `(n, 2, c)` holding the mean and 1/sqrt(var + eps).
struct Stats;

/// One sample's statistics (`m` rows of `c` channels) into `o`: the means, then 1/sqrt(var + eps).
#[inline(always)]
fn sample_stats<T: Float>(sample: &[T], (m, c): (usize, usize), o: &mut [T]) {
    let mean: Vec<f64> = channel_sums(sample, c, |_, v| v.to()).into_iter().map(|s| s / m as f64).collect();
    let var = channel_sums(sample, c, |k, v| (v.to() - mean[k]).powi(2));
    for k in 0..c {
        o[k] = T::of(mean[k]);
        o[c + k] = T::of(1.0 / (var[k] / m as f64 + EPS).sqrt());
    }
}

vectorised! {
    fn stats<T: Float>(x: &[T], (n, m, c): (usize, usize, usize)) -> Vec<T> {
        let mut out = vec![T::zero(); n * 2 * c];
        out.par_chunks_mut(2 * c).zip(x.par_chunks(m * c)).for_each(|(o, sample)| sample_stats(sample, (m, c), o));
        out
    }
}

impl Kernel<1> for Stats {
    const NAME: &'static str = "instance-norm-stats";

    fn shapes(&self, [x]: [&[usize]; 1]) -> Vec<Shape> {
        vec![Shape::from((x[0], 2, x[2]))]
    }

    fn run<T: Float>(&self, [x]: [&[T]; 1], dims: &[usize]) -> Vec<Vec<T>> {
        vec![stats(x, (dims[0], dims[1], dims[2]))]
    }
}

/// `(x - mean) * rstd` for `x (n, m, c)` and stats `(n, 2, c)`.
struct Normalise;

vectorised! {
    fn normalise_values<T: Float>(x: &[T], stats: &[T], (m, c): (usize, usize)) -> Vec<T> {
        let mut out = vec![T::zero(); x.len()];
        out.par_chunks_mut(m * c).zip(x.par_chunks(m * c)).zip(stats.par_chunks(2 * c)).for_each(|((o, sample), st)| {
            let (mean, rstd) = st.split_at(c);
            for (orow, xrow) in o.chunks_exact_mut(c).zip(sample.chunks_exact(c)) {
                for k in 0..c {
                    orow[k] = (xrow[k] - mean[k]) * rstd[k];
                }
            }
        });
        out
    }
}

impl Kernel<2> for Normalise {
    const NAME: &'static str = "instance-norm-normalise";

    fn shapes(&self, [x, _]: [&[usize]; 2]) -> Vec<Shape> {
        vec![Shape::from(x)]
    }

    fn run<T: Float>(&self, [x, stats]: [&[T]; 2], dims: &[usize]) -> Vec<Vec<T>> {
        vec![normalise_values(x, stats, (dims[1], dims[2]))]
    }
}

/// The input gradient of instance norm: `rstd * (g - mean(g) - xhat * mean(g * xhat))` per sample and
/// channel, from `g (n, m, c)`, `xhat (n, m, c)` and `rstd (n, 1, c)`.
struct NormBackward;

vectorised! {
    fn norm_backward_values<T: Float>(g: &[T], xhat: &[T], rstd: &[T], (m, c): (usize, usize)) -> Vec<T> {
        let mut out = vec![T::zero(); g.len()];
        out.par_chunks_mut(m * c).zip(g.par_chunks(m * c).zip(xhat.par_chunks(m * c))).zip(rstd.par_chunks(c)).for_each(
            |((o, (gs, xs)), rstd)| {
                let mut sum_g = vec![0f64; c];
                let mut sum_gx = vec![0f64; c];
                for (grow, xrow) in gs.chunks_exact(c).zip(xs.chunks_exact(c)) {
                    for k in 0..c {
                        sum_g[k] += grow[k].to();
                        sum_gx[k] += (grow[k] * xrow[k]).to();
                    }
                }
                let mean_g: Vec<T> = sum_g.iter().map(|s| T::of(s / m as f64)).collect();
                let mean_gx: Vec<T> = sum_gx.iter().map(|s| T::of(s / m as f64)).collect();
                for ((orow, grow), xrow) in o.chunks_exact_mut(c).zip(gs.chunks_exact(c)).zip(xs.chunks_exact(c)) {
                    for k in 0..c {
                        orow[k] = (grow[k] - mean_g[k] - xrow[k] * mean_gx[k]) * rstd[k];
                    }
                }
            },
        );
        out
    }
}

impl Kernel<3> for NormBackward {
    const NAME: &'static str = "instance-norm-backward";

    fn shapes(&self, [g, _, _]: [&[usize]; 3]) -> Vec<Shape> {
        vec![Shape::from(g)]
    }

    fn run<T: Float>(&self, [g, xhat, rstd]: [&[T]; 3], dims: &[usize]) -> Vec<Vec<T>> {
        vec![norm_backward_values(g, xhat, rstd, (dims[1], dims[2]))]
    }
}

/// `grad * (y > 0)`: ReLU's backward from its output.
struct ReluBackward;

vectorised! {
    fn relu_backward_values<T: Float>(g: &[T], y: &[T]) -> Vec<T> {
        let mut out = vec![T::zero(); g.len()];
        const CHUNK: usize = 1 << 14;
        out.par_chunks_mut(CHUNK).zip(g.par_chunks(CHUNK).zip(y.par_chunks(CHUNK))).for_each(|(o, (gs, ys))| {
            for ((o, &g), &y) in o.iter_mut().zip(gs).zip(ys) {
                *o = if y > T::zero() { g } else { T::zero() };
            }
        });
        out
    }
}

impl Kernel<2> for ReluBackward {
    const NAME: &'static str = "relu-backward";

    fn shapes(&self, [g, _]: [&[usize]; 2]) -> Vec<Shape> {
        vec![Shape::from(g)]
    }

    fn run<T: Float>(&self, [g, y]: [&[T]; 2], _dims: &[usize]) -> Vec<Vec<T>> {
        vec![relu_backward_values(g, y)]
    }
}

/// Instance-norm statistics `(n, 2, c)` (mean, 1/sqrt(var + eps)) of `x (n, m, c)`.
pub fn instance_stats(x: &Tensor) -> Result<Tensor> {
    apply_one(&Stats, [x])
}

/// `(x - mean) * rstd` with [`instance_stats`]'s output.
pub fn normalise(x: &Tensor, stats: &Tensor) -> Result<Tensor> {
    apply_one(&Normalise, [x, stats])
}

/// Instance norm's input gradient from the output gradient, the normalised input and 1/std `(n, 1, c)`.
pub fn instance_norm_backward(grad: &Tensor, xhat: &Tensor, rstd: &Tensor) -> Result<Tensor> {
    apply_one(&NormBackward, [grad, xhat, rstd])
}

/// `grad * (y > 0)`.
pub fn relu_backward(grad: &Tensor, y: &Tensor) -> Result<Tensor> {
    apply_one(&ReluBackward, [grad, y])
}

/// The patches of a channels-last `x (n, h, w, c)` under a k x k kernel, written in one pass:
/// `(n * ho * wo, k * k * c)`, columns (kernel row, kernel column, channel), zeros outside.
/// With `ones`, each row ends with a 1: a GEMM with the weight matrix and the bias as its last
/// column adds the bias in the same pass.
#[derive(Clone, Copy)]
struct Im2col {
    kernel: usize,
    stride: usize,
    padding: usize,
    ones: bool,
}

impl Im2col {
    fn out_side(&self, side: usize) -> usize {
        (side + 2 * self.padding - self.kernel) / self.stride + 1
    }

    fn row(&self, c: usize) -> usize {
        self.kernel * self.kernel * c + self.ones as usize
    }
}

vectorised! {
    fn im2col_values<T: Float>(x: &[T], patches: Im2col, (n, h, w, c): (usize, usize, usize, usize)) -> Vec<T> {
        let Im2col { kernel: k, stride: s, padding: p, ones } = patches;
        let (ho, wo) = (patches.out_side(h), patches.out_side(w));
        let row = patches.row(c);
        let mut out = vec![T::zero(); n * ho * wo * row];
        out.par_chunks_mut(ho * wo * row).zip(x.par_chunks(h * w * c)).for_each(|(o, image)| {
            for (q, patch) in o.chunks_exact_mut(row).enumerate() {
                let (oy, ox) = (q / wo, q % wo);
                for i in 0..k {
                    let Some(y) = (oy * s + i).checked_sub(p).filter(|&y| y < h) else { continue };
                    for j in 0..k {
                        let Some(xx) = (ox * s + j).checked_sub(p).filter(|&xx| xx < w) else { continue };
                        let src = (y * w + xx) * c;
                        patch[(i * k + j) * c..(i * k + j + 1) * c].copy_from_slice(&image[src..src + c]);
                    }
                }
                if ones {
                    patch[row - 1] = T::one();
                }
            }
        });
        out
    }
}

impl Kernel<1> for Im2col {
    const NAME: &'static str = "im2col";

    fn shapes(&self, [x]: [&[usize]; 1]) -> Vec<Shape> {
        let (n, h, w, c) = (x[0], x[1], x[2], x[3]);
        vec![Shape::from((n * self.out_side(h) * self.out_side(w), self.row(c)))]
    }

    fn run<T: Float>(&self, [x]: [&[T]; 1], dims: &[usize]) -> Vec<Vec<T>> {
        vec![im2col_values(x, *self, (dims[0], dims[1], dims[2], dims[3]))]
    }
}

impl CustomOp1 for Im2col {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let shape = self.shapes([l.dims()]).remove(0);
        Ok((run_storages(self, [(s, l)])?.remove(0), shape))
    }

    /// The adjoint: col2im of the patch gradient.
    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        if self.ones {
            candle_core::bail!("im2col with a column of ones is graph-free only")
        }
        Ok(Some(super::col2im(grad_res, arg.dims4()?, self.kernel, self.stride, self.padding)?))
    }
}

/// [`super::im2col`] in one pass on the CPU; a graph operation (its backward is col2im) when `x` is
/// tracked.
pub fn im2col(x: &Tensor, kernel: usize, stride: usize, padding: usize) -> Result<Tensor> {
    x.contiguous()?.apply_op1(Im2col { kernel, stride, padding, ones: false })
}

/// [`im2col`] with a trailing column of ones, for a graph-free `x`: `(n * ho * wo, k * k * c + 1)`.
pub fn im2col_with_ones(x: &Tensor, kernel: usize, stride: usize, padding: usize) -> Result<Tensor> {
    apply_one(&Im2col { kernel, stride, padding, ones: true }, [x])
}

/// The adjoint of [`Im2col`]: patch gradients `(n * ho * wo, k * k * c)` added back into
/// `(n, h, w, c)` in one pass.
#[derive(Clone, Copy)]
struct Col2im {
    patches: Im2col,
    input: (usize, usize, usize, usize),
}

vectorised! {
    fn col2im_values<T: Float>(cols: &[T], op: Col2im) -> Vec<T> {
        let Im2col { kernel: k, stride: s, padding: p, .. } = op.patches;
        let (n, h, w, c) = op.input;
        let (ho, wo) = (op.patches.out_side(h), op.patches.out_side(w));
        let row = k * k * c;
        let mut out = vec![T::zero(); n * h * w * c];
        out.par_chunks_mut(h * w * c).zip(cols.par_chunks(ho * wo * row)).for_each(|(image, patches)| {
            for (q, patch) in patches.chunks_exact(row).enumerate() {
                let (oy, ox) = (q / wo, q % wo);
                for i in 0..k {
                    let Some(y) = (oy * s + i).checked_sub(p).filter(|&y| y < h) else { continue };
                    for j in 0..k {
                        let Some(xx) = (ox * s + j).checked_sub(p).filter(|&xx| xx < w) else { continue };
                        let dst = &mut image[(y * w + xx) * c..(y * w + xx + 1) * c];
                        for (d, &v) in dst.iter_mut().zip(&patch[(i * k + j) * c..(i * k + j + 1) * c]) {
                            *d += v;
                        }
                    }
                }
            }
        });
        out
    }
}

impl Kernel<1> for Col2im {
    const NAME: &'static str = "col2im";

    fn shapes(&self, _: [&[usize]; 1]) -> Vec<Shape> {
        vec![Shape::from(self.input)]
    }

    fn run<T: Float>(&self, [cols]: [&[T]; 1], _dims: &[usize]) -> Vec<Vec<T>> {
        vec![col2im_values(cols, *self)]
    }
}

impl CustomOp1 for Col2im {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        Ok((run_storages(self, [(s, l)])?.remove(0), Shape::from(self.input)))
    }

    /// The adjoint: im2col of the image gradient.
    fn bwd(&self, _arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        let Im2col { kernel, stride, padding, .. } = self.patches;
        Ok(Some(super::im2col(grad_res, kernel, stride, padding)?))
    }
}

/// [`super::col2im`] in one pass on the CPU; a graph operation (its backward is im2col) when
/// `cols` is tracked.
pub fn col2im(cols: &Tensor, input: (usize, usize, usize, usize), kernel: usize, stride: usize, padding: usize) -> Result<Tensor> {
    cols.contiguous()?.apply_op1(Col2im { patches: Im2col { kernel, stride, padding, ones: false }, input })
}

/// `x * weight + bias` over the last axis of `x (rows, c)`.
struct ScaleShift;

vectorised! {
    fn scale_shift_values<T: Float>(x: &[T], w: &[T], b: &[T]) -> Vec<T> {
        let c = w.len();
        let mut out = vec![T::zero(); x.len()];
        let rows = (1 << 14) / c.max(1) + 1;
        out.par_chunks_mut(rows * c).zip(x.par_chunks(rows * c)).for_each(|(o, xs)| {
            for (orow, xrow) in o.chunks_exact_mut(c).zip(xs.chunks_exact(c)) {
                for k in 0..c {
                    orow[k] = xrow[k] * w[k] + b[k];
                }
            }
        });
        out
    }
}

impl Kernel<3> for ScaleShift {
    const NAME: &'static str = "scale-shift";

    fn shapes(&self, [x, _, _]: [&[usize]; 3]) -> Vec<Shape> {
        vec![Shape::from(x)]
    }

    fn run<T: Float>(&self, [x, w, b]: [&[T]; 3], _dims: &[usize]) -> Vec<Vec<T>> {
        vec![scale_shift_values(x, w, b)]
    }
}

/// Per group of rows of `g (groups * m, c)` and `x` alike: `(groups, 2, c)` holding the column sums
/// of `g * x` and of `g` (a per-channel affine's weight and bias gradients).
struct AffineGrads {
    groups: usize,
}

vectorised! {
    fn affine_grads_values<T: Float>(g: &[T], x: &[T], groups: usize, c: usize) -> Vec<T> {
        let per_group = g.len() / groups;
        let mut out = vec![T::zero(); groups * 2 * c];
        out.par_chunks_mut(2 * c).zip(g.par_chunks(per_group).zip(x.par_chunks(per_group))).for_each(|(o, (gs, xs))| {
            let (mut sum_gx, mut sum_g) = (vec![0f64; c], vec![0f64; c]);
            for (grow, xrow) in gs.chunks_exact(c).zip(xs.chunks_exact(c)) {
                for k in 0..c {
                    sum_gx[k] += (grow[k] * xrow[k]).to();
                    sum_g[k] += grow[k].to();
                }
            }
            for k in 0..c {
                o[k] = T::of(sum_gx[k]);
                o[c + k] = T::of(sum_g[k]);
            }
        });
        out
    }
}

impl Kernel<2> for AffineGrads {
    const NAME: &'static str = "affine-grads";

    fn shapes(&self, [g, _]: [&[usize]; 2]) -> Vec<Shape> {
        vec![Shape::from((self.groups, 2, *g.last().expect("rank >= 1")))]
    }

    fn run<T: Float>(&self, [g, x]: [&[T]; 2], dims: &[usize]) -> Vec<Vec<T>> {
        vec![affine_grads_values(g, x, self.groups, *dims.last().expect("rank >= 1"))]
    }
}

/// Average pooling's input gradient: each output gradient spread over its k x k window (divided by
/// k * k), zeros on a dropped trailing row/column.
struct AvgPoolBackward {
    kernel: usize,
    input: (usize, usize, usize, usize),
}

vectorised! {
    fn avg_pool_backward_values<T: Float>(grad: &[T], k: usize, (n, h, w, c): (usize, usize, usize, usize)) -> Vec<T> {
        let (ho, wo) = (h / k, w / k);
        let scale = T::of(1.0 / (k * k) as f64);
        let mut out = vec![T::zero(); n * h * w * c];
        out.par_chunks_mut(w * c).enumerate().for_each(|(r, row)| {
            let (b, y) = (r / h, r % h);
            if y / k >= ho {
                return;
            }
            let src = &grad[((b * ho + y / k) * wo) * c..((b * ho + y / k) * wo + wo) * c];
            for x in 0..wo * k {
                let s = &src[(x / k) * c..(x / k + 1) * c];
                for (d, &v) in row[x * c..(x + 1) * c].iter_mut().zip(s) {
                    *d = v * scale;
                }
            }
        });
        out
    }
}

impl Kernel<1> for AvgPoolBackward {
    const NAME: &'static str = "avg-pool-backward";

    fn shapes(&self, _: [&[usize]; 1]) -> Vec<Shape> {
        vec![Shape::from(self.input)]
    }

    fn run<T: Float>(&self, [grad]: [&[T]; 1], _dims: &[usize]) -> Vec<Vec<T>> {
        vec![avg_pool_backward_values(grad, self.kernel, self.input)]
    }
}

/// `x * weight + bias` per channel (last axis).
pub fn scale_shift(x: &Tensor, weight: &Tensor, bias: &Tensor) -> Result<Tensor> {
    apply_one(&ScaleShift, [x, weight, bias])
}

/// `(groups, 2, c)`: per group of rows, the per-channel sums of `g * x` and of `g`.
pub fn affine_grads(g: &Tensor, x: &Tensor, groups: usize) -> Result<Tensor> {
    apply_one(&AffineGrads { groups }, [g, x])
}

/// Average pooling's input gradient `(n, h, w, c)` from the output gradient.
pub fn avg_pool_backward(grad: &Tensor, kernel: usize, input: (usize, usize, usize, usize)) -> Result<Tensor> {
    apply_one(&AvgPoolBackward { kernel, input }, [grad])
}

/// Shapes shared by the block kernels: input `(n, h, w, c)`, k x k average pooling (floor mode).
#[derive(Clone, Copy)]
struct Block {
    n: usize,
    h: usize,
    w: usize,
    c: usize,
    k: usize,
}

impl Block {
    fn new(dims: &[usize], k: usize) -> Block {
        Block { n: dims[0], h: dims[1], w: dims[2], c: dims[3], k }
    }

    fn pooled_shape(&self) -> Shape {
        Shape::from((self.n, self.h / self.k, self.w / self.k, self.c))
    }

    /// Values per sample: of the input, of the pooled output.
    fn sizes(&self) -> (usize, usize) {
        (self.h * self.w * self.c, (self.h / self.k) * (self.w / self.k) * self.c)
    }

    /// The offset in the pooled sample of pixel (row, col)'s window, and whether the pixel is the
    /// window's first; `None` on a dropped trailing row or column.
    #[inline(always)]
    fn window(&self, row: usize, col: usize) -> Option<(usize, bool)> {
        let (ho, wo) = (self.h / self.k, self.w / self.k);
        let (py, px) = (row / self.k, col / self.k);
        (py < ho && px < wo).then_some(((py * wo + px) * self.c, row.is_multiple_of(self.k) && col.is_multiple_of(self.k)))
    }
}

/// The tail of a ConvNet block on `x (n, h, w, c)` in one pass, from the instance-norm statistics
/// `(n, 2, c)` and the affine's `[weight; bias]` `(2c)`: `xhat = (x - mean) * rstd`,
/// `y = relu(xhat * weight + bias)` and `y` average-pooled. Outputs: the pooled map and, when
/// `record`, `xhat` and `y` (what the backward needs), each the value of the composition.
struct NormReluPool {
    kernel: usize,
    record: bool,
}

/// One sample of [`NormReluPool`]: `saved` receives `xhat` and `y` (recording), else a row is reused.
#[inline(always)]
fn norm_relu_pool_sample<T: Float>(
    x: &[T],
    stats: &[T],
    affine: &[T],
    b: Block,
    pooled: &mut [T],
    mut saved: Option<(&mut [T], &mut [T])>,
) {
    let c = b.c;
    let ((mean, rstd), (weight, bias)) = (stats.split_at(c), affine.split_at(c));
    let mut scratch = vec![T::zero(); if saved.is_some() { 0 } else { 2 * c }];
    for row in 0..b.h {
        for col in 0..b.w {
            let at = (row * b.w + col) * c;
            let (xhat, y) = match saved.as_mut() {
                Some((xhat, y)) => (&mut xhat[at..at + c], &mut y[at..at + c]),
                None => scratch.split_at_mut(c),
            };
            for ch in 0..c {
                xhat[ch] = (x[at + ch] - mean[ch]) * rstd[ch];
                y[ch] = relu(xhat[ch] * weight[ch] + bias[ch]);
            }
            match b.window(row, col) {
                Some((q, true)) => pooled[q..q + c].copy_from_slice(y),
                Some((q, false)) => pooled[q..q + c].iter_mut().zip(y.iter()).for_each(|(p, &v)| *p += v),
                None => {}
            }
        }
    }
    let scale = T::of(1.0 / (b.k * b.k) as f64);
    pooled.iter_mut().for_each(|p| *p *= scale);
}

/// Sample `s`'s slice of a per-channel parameter of `per_member` values per network, for a batch
/// of `n` samples in equal, contiguous blocks, one per network (one network: the whole parameter).
#[inline(always)]
fn member_slice<T>(param: &[T], per_member: usize, s: usize, n: usize) -> &[T] {
    let members = param.len() / per_member;
    let member = s / (n / members);
    &param[member * per_member..(member + 1) * per_member]
}

vectorised! {
    fn norm_relu_pool_values<T: Float>(x: &[T], stats: &[T], affine: &[T], b: Block, record: bool) -> Vec<Vec<T>> {
        let (m, mp) = b.sizes();
        let mut pooled = vec![T::zero(); b.n * mp];
        let samples = pooled.par_chunks_mut(mp).zip(x.par_chunks(m)).zip(stats.par_chunks(2 * b.c)).enumerate();
        let affine_of = |s: usize| member_slice(affine, 2 * b.c, s, b.n);
        if !record {
            samples.for_each(|(s, ((p, x), st))| norm_relu_pool_sample(x, st, affine_of(s), b, p, None));
            return vec![pooled];
        }
        let (mut xhat, mut y) = (vec![T::zero(); b.n * m], vec![T::zero(); b.n * m]);
        samples.zip(xhat.par_chunks_mut(m).zip(y.par_chunks_mut(m))).for_each(|((s, ((p, x), st)), (xhat, y))| {
            norm_relu_pool_sample(x, st, affine_of(s), b, p, Some((xhat, y)))
        });
        vec![pooled, xhat, y]
    }
}

impl Kernel<3> for NormReluPool {
    const NAME: &'static str = "norm-relu-pool";

    fn shapes(&self, [x, _, _]: [&[usize]; 3]) -> Vec<Shape> {
        let pooled = Block::new(x, self.kernel).pooled_shape();
        if self.record {
            vec![pooled, Shape::from(x), Shape::from(x)]
        } else {
            vec![pooled]
        }
    }

    fn run<T: Float>(&self, [x, stats, affine]: [&[T]; 3], dims: &[usize]) -> Vec<Vec<T>> {
        norm_relu_pool_values(x, stats, affine, Block::new(dims, self.kernel), self.record)
    }
}

/// What [`norm_relu_pool`] computed: the pooled output, and `(xhat, y)` when recorded.
pub struct NormReluPoolOutput {
    pub pooled: Tensor,
    pub saved: Option<(Tensor, Tensor)>,
}

/// Instance norm with `stats` (from [`instance_stats`]), the affine `(weight, bias)`, ReLU and k x k
/// average pooling of `x (n, h, w, c)` in one pass; with `record`, also the normalised input and the
/// ReLU output, both `(n, h, w, c)`. The affine is `(c)` each, or `(members, c)` for an ensemble
/// whose samples are `members` equal, contiguous blocks.
pub fn norm_relu_pool(
    x: &Tensor,
    stats: &Tensor,
    (weight, bias): (&Tensor, &Tensor),
    kernel: usize,
    record: bool,
) -> Result<NormReluPoolOutput> {
    let affine = Tensor::cat(&[weight, bias], weight.rank() - 1)?;
    let mut out = apply(&NormReluPool { kernel, record }, [x, stats, &affine])?.into_iter();
    let pooled = out.next().expect("the pooled output");
    Ok(NormReluPoolOutput { pooled, saved: out.next().zip(out.next()) })
}

/// The backward of [`NormReluPool`] from `y (n, h, w, c)`, the pooled output's gradient `gp`, `xhat`,
/// `rstd (n, 1, c)` and the affine's weight: the input gradient `(n, h, w, c)` and, per group of
/// samples, the affine's weight and bias gradients `(groups, 2, c)`. Two passes per sample: the
/// sums of both layers' gradients, then the input gradient.
struct NormReluPoolBackward {
    kernel: usize,
    groups: usize,
}

/// The ReLU input's gradient at one pixel (`gz`), from the pooled gradient of its window.
#[inline(always)]
fn relu_input_grad<T: Float>(gp: &[T], y: &[T], window: Option<(usize, bool)>, scale: T, gz: &mut [T]) {
    match window {
        Some((q, _)) => {
            let c = gz.len();
            for ((g, &p), &y) in gz.iter_mut().zip(&gp[q..q + c]).zip(y) {
                *g = if y > T::zero() { p * scale } else { T::zero() };
            }
        }
        None => gz.iter_mut().for_each(|g| *g = T::zero()),
    }
}

/// One sample of [`NormReluPoolBackward`]: writes `dx` and the sample's affine sums
/// (`sum gz * xhat`, `sum gz`, in f64).
#[inline(always)]
fn norm_relu_pool_backward_sample<T: Float>([y, gp, xhat, rstd, weight]: [&[T]; 5], b: Block, dx: &mut [T], sums: &mut [f64]) {
    let c = b.c;
    let scale = T::of(1.0 / (b.k * b.k) as f64);
    let mut gz = vec![T::zero(); c];
    let (affine_gx, affine_g) = sums.split_at_mut(c);
    let (mut sum_g, mut sum_gx) = (vec![0f64; c], vec![0f64; c]);
    for row in 0..b.h {
        for col in 0..b.w {
            let at = (row * b.w + col) * c;
            relu_input_grad(gp, &y[at..at + c], b.window(row, col), scale, &mut gz);
            for ch in 0..c {
                let (g, xh) = (gz[ch], xhat[at + ch]);
                // Instance norm's backward sees the affine's input gradient g * weight.
                let gxhat = g * weight[ch];
                affine_gx[ch] += (g * xh).to();
                affine_g[ch] += g.to();
                sum_g[ch] += gxhat.to();
                sum_gx[ch] += (gxhat * xh).to();
            }
        }
    }
    let pixels = (b.h * b.w) as f64;
    let mean_g: Vec<T> = sum_g.iter().map(|s| T::of(s / pixels)).collect();
    let mean_gx: Vec<T> = sum_gx.iter().map(|s| T::of(s / pixels)).collect();
    for row in 0..b.h {
        for col in 0..b.w {
            let at = (row * b.w + col) * c;
            relu_input_grad(gp, &y[at..at + c], b.window(row, col), scale, &mut gz);
            for ch in 0..c {
                dx[at + ch] = (gz[ch] * weight[ch] - mean_g[ch] - xhat[at + ch] * mean_gx[ch]) * rstd[ch];
            }
        }
    }
}

vectorised! {
    fn norm_relu_pool_backward_values<T: Float>(inputs: [&[T]; 5], b: Block, groups: usize) -> Vec<Vec<T>> {
        let [y, gp, xhat, rstd, weight] = inputs;
        let (m, mp) = b.sizes();
        let c = b.c;
        let mut dx = vec![T::zero(); b.n * m];
        let mut sums = vec![0f64; b.n * 2 * c];
        dx.par_chunks_mut(m).zip(sums.par_chunks_mut(2 * c)).enumerate().for_each(|(s, (dx, sums))| {
            let weight = member_slice(weight, c, s, b.n);
            let sample = [&y[s * m..(s + 1) * m], &gp[s * mp..(s + 1) * mp], &xhat[s * m..(s + 1) * m], &rstd[s * c..(s + 1) * c], weight];
            norm_relu_pool_backward_sample(sample, b, dx, sums);
        });
        // Each group's sums over its samples, in f64, then rounded once.
        let per_group = 2 * c * (b.n / groups);
        let grads = sums
            .chunks_exact(per_group)
            .flat_map(|group| {
                let mut total = vec![0f64; 2 * c];
                for sample in group.chunks_exact(2 * c) {
                    total.iter_mut().zip(sample).for_each(|(t, s)| *t += s);
                }
                total.into_iter().map(T::of)
            })
            .collect();
        vec![dx, grads]
    }
}

impl Kernel<5> for NormReluPoolBackward {
    const NAME: &'static str = "norm-relu-pool-backward";

    fn shapes(&self, [y, ..]: [&[usize]; 5]) -> Vec<Shape> {
        vec![Shape::from(y), Shape::from((self.groups, 2, y[y.len() - 1]))]
    }

    fn run<T: Float>(&self, inputs: [&[T]; 5], dims: &[usize]) -> Vec<Vec<T>> {
        norm_relu_pool_backward_values(inputs, Block::new(dims, self.kernel), self.groups)
    }
}

/// What [`norm_relu_pool_backward`] computed.
pub struct NormReluPoolGrads {
    /// `(n, h, w, c)`.
    pub input: Tensor,
    /// `(groups, c)` each: the affine's weight and bias gradients per group.
    pub weight: Tensor,
    pub bias: Tensor,
}

/// The backward of [`norm_relu_pool`] from the pooled output's gradient, the recorded `y` and `xhat`
/// `(n, h, w, c)`, `rstd (n, 1, c)` and the affine's weight (`(c)`, or `(members, c)` as there),
/// with parameter gradients per group.
pub fn norm_relu_pool_backward(
    grad: &Tensor,
    (y, xhat, rstd): (&Tensor, &Tensor, &Tensor),
    weight: &Tensor,
    kernel: usize,
    groups: usize,
) -> Result<NormReluPoolGrads> {
    let mut out = apply(&NormReluPoolBackward { kernel, groups }, [y, grad, xhat, rstd, weight])?;
    let sums = out.pop().expect("the affine's gradients");
    let input = out.pop().expect("the input gradient");
    Ok(NormReluPoolGrads { input, weight: sums.narrow(1, 0, 1)?.squeeze(1)?, bias: sums.narrow(1, 1, 1)?.squeeze(1)? })
}

/// SGD's hyper-parameters for one update, PyTorch's semantics.
#[derive(Debug, Clone, Copy)]
pub struct SgdUpdate {
    pub lr: f64,
    pub momentum: f64,
    pub weight_decay: f64,
    /// No momentum buffer yet: it starts as the step's direction.
    pub first: bool,
}

vectorised! {
    /// The new parameter and momentum buffer in one pass, each operation as candle's composition
    /// computes it (`t * s` is `t * s + 0`), so both give the same values.
    fn sgd_values<T: Float>(param: &[T], grad: &[T], buffer: &[T], u: SgdUpdate) -> Vec<Vec<T>> {
        let (lr, momentum, decay) = (T::of(u.lr), T::of(u.momentum), T::of(u.weight_decay));
        let mut next = vec![T::zero(); param.len()];
        let mut buffers = vec![T::zero(); param.len()];
        let chunk = 1 << 14;
        next.par_chunks_mut(chunk).zip(buffers.par_chunks_mut(chunk)).enumerate().for_each(|(i, (p_out, b_out))| {
            let start = i * chunk;
            for (k, (p_new, b_new)) in p_out.iter_mut().zip(b_out).enumerate() {
                let (p, g) = (param[start + k], grad[start + k]);
                let d = if u.weight_decay != 0.0 { g + (p * decay + T::zero()) } else { g };
                let d = if u.momentum == 0.0 || u.first { d } else { (buffer[start + k] * momentum + T::zero()) + d };
                *b_new = d;
                *p_new = p - (d * lr + T::zero());
            }
        });
        vec![next, buffers]
    }
}

impl Kernel<3> for SgdUpdate {
    const NAME: &'static str = "sgd";

    fn shapes(&self, [param, ..]: [&[usize]; 3]) -> Vec<Shape> {
        vec![Shape::from(param), Shape::from(param)]
    }

    fn run<T: Float>(&self, [param, grad, buffer]: [&[T]; 3], _dims: &[usize]) -> Vec<Vec<T>> {
        sgd_values(param, grad, buffer, *self)
    }
}

/// One SGD update of `param` on graph-free CPU tensors: `(new parameter, new momentum buffer)`,
/// where the composition takes a pass (and an allocation) per operation. `buffer` is ignored when
/// `update.first`.
pub fn sgd(param: &Tensor, grad: &Tensor, buffer: &Tensor, update: SgdUpdate) -> Result<(Tensor, Tensor)> {
    for (name, t) in [("gradient", grad), ("momentum buffer", buffer)] {
        if t.dims() != param.dims() {
            candle_core::bail!("sgd: the {name} is {:?} and the parameter {:?}", t.dims(), param.dims())
        }
    }
    let mut out = apply(&update, [param, grad, buffer])?;
    let buffer = out.pop().expect("two outputs");
    Ok((out.pop().expect("two outputs"), buffer))
}
