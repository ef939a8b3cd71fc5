//! CPU fast paths on tensors outside any autodiff graph (real images, training): im2col, col2im,
//! instance norm, the per-channel affine, ReLU and average-pool backward, each one pass where the
//! candle composition takes several. Each is a
//! `CustomOp` with a CPU kernel only; the layers use it on the CPU for untracked inputs and use the
//! candle composition everywhere else (CUDA, the synthetic side's graph). Tests check both equal.

use candle_core::{backend::BackendStorage, CpuStorage, CustomOp1, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

const EPS: f64 = 1e-5;

/// Whether `t` may take the fast path: on the CPU, outside any graph, f32 or f64.
pub fn eligible(t: &Tensor) -> bool {
    t.device().is_cpu() && !t.track_op() && matches!(t.dtype(), candle_core::DType::F32 | candle_core::DType::F64)
}

/// The arithmetic the kernels need, for f32 and f64.
trait Float:
    candle_core::WithDType + Send + Sync + std::ops::Add<Output = Self> + std::ops::Sub<Output = Self> + std::ops::Mul<Output = Self>
{
    fn of(v: f64) -> Self;
    fn to(self) -> f64;
}

impl Float for f32 {
    fn of(v: f64) -> Self {
        v as f32
    }
    fn to(self) -> f64 {
        self as f64
    }
}

impl Float for f64 {
    fn of(v: f64) -> Self {
        v
    }
    fn to(self) -> f64 {
        self
    }
}

fn contiguous<'a, T: candle_core::WithDType>(s: &'a CpuStorage, l: &Layout) -> Result<&'a [T]> {
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&s.as_slice::<T>()?[a..b]),
        None => candle_core::bail!("fused kernels need contiguous inputs"),
    }
}

/// A kernel over `N` contiguous inputs of one float type; `dims` are the first input's.
trait Kernel<const N: usize> {
    const NAME: &'static str;
    fn run<T: Float>(&self, inputs: [&[T]; N], dims: &[usize]) -> Vec<T>;
}

/// Runs `kernel` on its inputs as f32 or as f64, whichever they all are.
fn on_floats<K: Kernel<N>, const N: usize>(kernel: &K, inputs: [(&CpuStorage, &Layout); N]) -> Result<CpuStorage> {
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
        CpuStorage::F32(_) => Ok(CpuStorage::F32(kernel.run(slices::<f32, N>(inputs).map_err(mismatch)?, dims))),
        CpuStorage::F64(_) => Ok(CpuStorage::F64(kernel.run(slices::<f64, N>(inputs).map_err(mismatch)?, dims))),
        other => candle_core::bail!("{}: f32 or f64 only, got {:?}", K::NAME, other.dtype()),
    }
}

/// Per-sample, per-channel sums over the middle axis of a `(n, m, c)` slice, in f64.
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

impl Kernel<1> for Stats {
    const NAME: &'static str = "instance-norm-stats";

    fn run<T: Float>(&self, [x]: [&[T]; 1], dims: &[usize]) -> Vec<T> {
        let (n, m, c) = (dims[0], dims[1], dims[2]);
        let mut out = vec![T::of(0.0); n * 2 * c];
        out.par_chunks_mut(2 * c).zip(x.par_chunks(m * c)).for_each(|(o, sample)| {
            let mean: Vec<f64> = channel_sums(sample, c, |_, v| v.to()).into_iter().map(|s| s / m as f64).collect();
            let var = channel_sums(sample, c, |k, v| (v.to() - mean[k]).powi(2));
            for k in 0..c {
                o[k] = T::of(mean[k]);
                o[c + k] = T::of(1.0 / (var[k] / m as f64 + EPS).sqrt());
            }
        });
        out
    }
}

impl CustomOp1 for Stats {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let (n, _, c) = l.shape().dims3()?;
        Ok((on_floats(self, [(s, l)])?, Shape::from((n, 2, c))))
    }
}

/// `(x - mean) * rstd` for `x (n, m, c)` and stats `(n, 2, c)`.
struct Normalise;

impl Kernel<2> for Normalise {
    const NAME: &'static str = "instance-norm-normalise";

    fn run<T: Float>(&self, [x, stats]: [&[T]; 2], dims: &[usize]) -> Vec<T> {
        let (m, c) = (dims[1], dims[2]);
        let mut out = vec![T::of(0.0); x.len()];
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

impl CustomOp2 for Normalise {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        Ok((on_floats(self, [(s1, l1), (s2, l2)])?, l1.shape().clone()))
    }
}

/// The input gradient of instance norm: `rstd * (g - mean(g) - xhat * mean(g * xhat))` per sample and
/// channel, from `g (n, m, c)`, `xhat (n, m, c)` and `rstd (n, 1, c)`.
struct NormBackward;

impl Kernel<3> for NormBackward {
    const NAME: &'static str = "instance-norm-backward";

    fn run<T: Float>(&self, [g, xhat, rstd]: [&[T]; 3], dims: &[usize]) -> Vec<T> {
        let (m, c) = (dims[1], dims[2]);
        let mut out = vec![T::of(0.0); g.len()];
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

impl CustomOp3 for NormBackward {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        Ok((on_floats(self, [(s1, l1), (s2, l2), (s3, l3)])?, l1.shape().clone()))
    }
}

/// `grad * (y > 0)`: ReLU's backward from its output.
struct ReluBackward;

impl Kernel<2> for ReluBackward {
    const NAME: &'static str = "relu-backward";

    fn run<T: Float>(&self, [g, y]: [&[T]; 2], _dims: &[usize]) -> Vec<T> {
        let zero = T::of(0.0);
        let mut out = vec![zero; g.len()];
        const CHUNK: usize = 1 << 14;
        out.par_chunks_mut(CHUNK).zip(g.par_chunks(CHUNK).zip(y.par_chunks(CHUNK))).for_each(|(o, (gs, ys))| {
            for ((o, &g), &y) in o.iter_mut().zip(gs).zip(ys) {
                *o = if y.to() > 0.0 { g } else { zero };
            }
        });
        out
    }
}

impl CustomOp2 for ReluBackward {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        Ok((on_floats(self, [(s1, l1), (s2, l2)])?, l1.shape().clone()))
    }
}

/// Instance-norm statistics `(n, 2, c)` (mean, 1/sqrt(var + eps)) of `x (n, m, c)`.
pub fn instance_stats(x: &Tensor) -> Result<Tensor> {
    x.contiguous()?.apply_op1_no_bwd(&Stats)
}

/// `(x - mean) * rstd` with [`instance_stats`]'s output.
pub fn normalise(x: &Tensor, stats: &Tensor) -> Result<Tensor> {
    x.contiguous()?.apply_op2_no_bwd(&stats.contiguous()?, &Normalise)
}

/// Instance norm's input gradient from the output gradient, the normalised input and 1/std `(n, 1, c)`.
pub fn instance_norm_backward(grad: &Tensor, xhat: &Tensor, rstd: &Tensor) -> Result<Tensor> {
    grad.contiguous()?.apply_op3_no_bwd(&xhat.contiguous()?, &rstd.contiguous()?, &NormBackward)
}

/// `grad * (y > 0)`.
pub fn relu_backward(grad: &Tensor, y: &Tensor) -> Result<Tensor> {
    grad.contiguous()?.apply_op2_no_bwd(&y.contiguous()?, &ReluBackward)
}

/// The patches of a channels-last `x (n, h, w, c)` under a k x k kernel, written in one pass:
/// `(n * ho * wo, k * k * c)`, columns (kernel row, kernel column, channel), zeros outside.
struct Im2col {
    kernel: usize,
    stride: usize,
    padding: usize,
}

impl Im2col {
    fn out_side(&self, side: usize) -> usize {
        (side + 2 * self.padding - self.kernel) / self.stride + 1
    }
}

impl Kernel<1> for Im2col {
    const NAME: &'static str = "im2col";

    fn run<T: Float>(&self, [x]: [&[T]; 1], dims: &[usize]) -> Vec<T> {
        let (n, h, w, c) = (dims[0], dims[1], dims[2], dims[3]);
        let (k, s, p) = (self.kernel, self.stride, self.padding);
        let (ho, wo) = (self.out_side(h), self.out_side(w));
        let row = k * k * c;
        let mut out = vec![T::of(0.0); n * ho * wo * row];
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
            }
        });
        out
    }
}

impl CustomOp1 for Im2col {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let (n, h, w, c) = l.shape().dims4()?;
        let (ho, wo) = (self.out_side(h), self.out_side(w));
        Ok((on_floats(self, [(s, l)])?, Shape::from((n * ho * wo, self.kernel * self.kernel * c))))
    }
}

/// [`super::im2col`] in one pass, for graph-free CPU tensors.
pub fn im2col(x: &Tensor, kernel: usize, stride: usize, padding: usize) -> Result<Tensor> {
    x.contiguous()?.apply_op1_no_bwd(&Im2col { kernel, stride, padding })
}

/// The adjoint of [`Im2col`]: patch gradients `(n * ho * wo, k * k * c)` added back into
/// `(n, h, w, c)` in one pass.
struct Col2im {
    patches: Im2col,
    input: (usize, usize, usize, usize),
}

impl Kernel<1> for Col2im {
    const NAME: &'static str = "col2im";

    fn run<T: Float>(&self, [cols]: [&[T]; 1], _dims: &[usize]) -> Vec<T> {
        let Im2col { kernel: k, stride: s, padding: p } = self.patches;
        let (n, h, w, c) = self.input;
        let (ho, wo) = (self.patches.out_side(h), self.patches.out_side(w));
        let row = k * k * c;
        let mut out = vec![T::of(0.0); n * h * w * c];
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

impl CustomOp1 for Col2im {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        Ok((on_floats(self, [(s, l)])?, Shape::from(self.input)))
    }
}

/// [`super::col2im`] in one pass, for graph-free CPU tensors.
pub fn col2im(cols: &Tensor, input: (usize, usize, usize, usize), kernel: usize, stride: usize, padding: usize) -> Result<Tensor> {
    cols.contiguous()?.apply_op1_no_bwd(&Col2im { patches: Im2col { kernel, stride, padding }, input })
}

/// `x * weight + bias` over the last axis of `x (rows, c)`.
struct ScaleShift;

impl Kernel<3> for ScaleShift {
    const NAME: &'static str = "scale-shift";

    fn run<T: Float>(&self, [x, w, b]: [&[T]; 3], _dims: &[usize]) -> Vec<T> {
        let c = w.len();
        let mut out = vec![T::of(0.0); x.len()];
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

impl CustomOp3 for ScaleShift {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        Ok((on_floats(self, [(s1, l1), (s2, l2), (s3, l3)])?, l1.shape().clone()))
    }
}

/// Per group of rows of `g (groups * m, c)` and `x` alike: `(groups, 2, c)` holding the column sums
/// of `g * x` and of `g` (a per-channel affine's weight and bias gradients).
struct AffineGrads {
    groups: usize,
}

impl Kernel<2> for AffineGrads {
    const NAME: &'static str = "affine-grads";

    fn run<T: Float>(&self, [g, x]: [&[T]; 2], dims: &[usize]) -> Vec<T> {
        let c = *dims.last().expect("rank >= 1");
        let per_group = g.len() / self.groups;
        let mut out = vec![T::of(0.0); self.groups * 2 * c];
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

impl CustomOp2 for AffineGrads {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let c = *l1.dims().last().expect("rank >= 1");
        Ok((on_floats(self, [(s1, l1), (s2, l2)])?, Shape::from((self.groups, 2, c))))
    }
}

/// Average pooling's input gradient: each output gradient spread over its k x k window (divided by
/// k * k), zeros on a dropped trailing row/column.
struct AvgPoolBackward {
    kernel: usize,
    input: (usize, usize, usize, usize),
}

impl Kernel<1> for AvgPoolBackward {
    const NAME: &'static str = "avg-pool-backward";

    fn run<T: Float>(&self, [grad]: [&[T]; 1], _dims: &[usize]) -> Vec<T> {
        let (n, h, w, c) = self.input;
        let k = self.kernel;
        let (ho, wo) = (h / k, w / k);
        let scale = T::of(1.0 / (k * k) as f64);
        let mut out = vec![T::of(0.0); n * h * w * c];
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

impl CustomOp1 for AvgPoolBackward {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        Ok((on_floats(self, [(s, l)])?, Shape::from(self.input)))
    }
}

/// `x * weight + bias` per channel (last axis).
pub fn scale_shift(x: &Tensor, weight: &Tensor, bias: &Tensor) -> Result<Tensor> {
    x.contiguous()?.apply_op3_no_bwd(&weight.contiguous()?, &bias.contiguous()?, &ScaleShift)
}

/// `(groups, 2, c)`: per group of rows, the per-channel sums of `g * x` and of `g`.
pub fn affine_grads(g: &Tensor, x: &Tensor, groups: usize) -> Result<Tensor> {
    g.contiguous()?.apply_op2_no_bwd(&x.contiguous()?, &AffineGrads { groups })
}

/// Average pooling's input gradient `(n, h, w, c)` from the output gradient.
pub fn avg_pool_backward(grad: &Tensor, kernel: usize, input: (usize, usize, usize, usize)) -> Result<Tensor> {
    grad.contiguous()?.apply_op1_no_bwd(&AvgPoolBackward { kernel, input })
}
