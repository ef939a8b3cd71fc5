//! CPU fast paths for the element-wise work of instance norm and ReLU on tensors outside any autodiff
//! graph (real images, training): one pass where the candle composition takes several. Each is a
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

impl Stats {
    fn run<T: Float>(x: &[T], l: &Layout) -> Vec<T> {
        let (n, m, c) = (l.dims()[0], l.dims()[1], l.dims()[2]);
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
        "instance-norm-stats"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let (n, _, c) = l.shape().dims3()?;
        let out = match s {
            CpuStorage::F32(_) => CpuStorage::F32(Self::run(contiguous::<f32>(s, l)?, l)),
            CpuStorage::F64(_) => CpuStorage::F64(Self::run(contiguous::<f64>(s, l)?, l)),
            _ => candle_core::bail!("instance-norm-stats: f32 or f64 only, got {:?}", s.dtype()),
        };
        Ok((out, Shape::from((n, 2, c))))
    }
}

/// `(x - mean) * rstd` for `x (n, m, c)` and stats `(n, 2, c)`.
struct Normalise;

impl Normalise {
    fn run<T: Float>(x: &[T], stats: &[T], (m, c): (usize, usize)) -> Vec<T> {
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
        "instance-norm-normalise"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (_, m, c) = l1.shape().dims3()?;
        let out = match (s1, s2) {
            (CpuStorage::F32(_), CpuStorage::F32(_)) => CpuStorage::F32(Self::run(contiguous(s1, l1)?, contiguous(s2, l2)?, (m, c))),
            (CpuStorage::F64(_), CpuStorage::F64(_)) => CpuStorage::F64(Self::run(contiguous(s1, l1)?, contiguous(s2, l2)?, (m, c))),
            _ => candle_core::bail!("instance-norm-normalise: f32 or f64 inputs of one type"),
        };
        Ok((out, l1.shape().clone()))
    }
}

/// The input gradient of instance norm: `rstd * (g - mean(g) - xhat * mean(g * xhat))` per sample and
/// channel, from `g (n, m, c)`, `xhat (n, m, c)` and `rstd (n, 1, c)`.
struct NormBackward;

impl NormBackward {
    fn run<T: Float>(g: &[T], xhat: &[T], rstd: &[T], (m, c): (usize, usize)) -> Vec<T> {
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
        "instance-norm-backward"
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
        let (_, m, c) = l1.shape().dims3()?;
        let out = match (s1, s2, s3) {
            (CpuStorage::F32(_), CpuStorage::F32(_), CpuStorage::F32(_)) => {
                CpuStorage::F32(Self::run(contiguous(s1, l1)?, contiguous(s2, l2)?, contiguous(s3, l3)?, (m, c)))
            }
            (CpuStorage::F64(_), CpuStorage::F64(_), CpuStorage::F64(_)) => {
                CpuStorage::F64(Self::run(contiguous(s1, l1)?, contiguous(s2, l2)?, contiguous(s3, l3)?, (m, c)))
            }
            _ => candle_core::bail!("instance-norm-backward: f32 or f64 inputs of one type"),
        };
        Ok((out, l1.shape().clone()))
    }
}

/// `grad * (y > 0)`: ReLU's backward from its output.
struct ReluBackward;

impl ReluBackward {
    fn run<T: Float>(g: &[T], y: &[T]) -> Vec<T> {
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
        "relu-backward"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let out = match (s1, s2) {
            (CpuStorage::F32(_), CpuStorage::F32(_)) => CpuStorage::F32(Self::run(contiguous(s1, l1)?, contiguous(s2, l2)?)),
            (CpuStorage::F64(_), CpuStorage::F64(_)) => CpuStorage::F64(Self::run(contiguous(s1, l1)?, contiguous(s2, l2)?)),
            _ => candle_core::bail!("relu-backward: f32 or f64 inputs of one type"),
        };
        Ok((out, l1.shape().clone()))
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

    fn run<T: Float>(&self, x: &[T], (n, h, w, c): (usize, usize, usize, usize)) -> Vec<T> {
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
        "im2col"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let (n, h, w, c) = l.shape().dims4()?;
        let out = match s {
            CpuStorage::F32(_) => CpuStorage::F32(self.run(contiguous::<f32>(s, l)?, (n, h, w, c))),
            CpuStorage::F64(_) => CpuStorage::F64(self.run(contiguous::<f64>(s, l)?, (n, h, w, c))),
            _ => candle_core::bail!("im2col: f32 or f64 only, got {:?}", s.dtype()),
        };
        let (ho, wo) = (self.out_side(h), self.out_side(w));
        Ok((out, Shape::from((n * ho * wo, self.kernel * self.kernel * c))))
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

impl Col2im {
    fn run<T: Float>(&self, cols: &[T]) -> Vec<T> {
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
                            *d = *d + v;
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
        "col2im"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let out = match s {
            CpuStorage::F32(_) => CpuStorage::F32(self.run(contiguous::<f32>(s, l)?)),
            CpuStorage::F64(_) => CpuStorage::F64(self.run(contiguous::<f64>(s, l)?)),
            _ => candle_core::bail!("col2im: f32 or f64 only, got {:?}", s.dtype()),
        };
        Ok((out, Shape::from(self.input)))
    }
}

/// [`super::col2im`] in one pass, for graph-free CPU tensors.
pub fn col2im(cols: &Tensor, input: (usize, usize, usize, usize), kernel: usize, stride: usize, padding: usize) -> Result<Tensor> {
    cols.contiguous()?.apply_op1_no_bwd(&Col2im { patches: Im2col { kernel, stride, padding }, input })
}

/// `x * weight + bias` over the last axis of `x (rows, c)`.
struct ScaleShift;

impl ScaleShift {
    fn run<T: Float>(x: &[T], w: &[T], b: &[T]) -> Vec<T> {
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
        "scale-shift"
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
        let out = match (s1, s2, s3) {
            (CpuStorage::F32(_), CpuStorage::F32(_), CpuStorage::F32(_)) => {
                CpuStorage::F32(Self::run(contiguous(s1, l1)?, contiguous(s2, l2)?, contiguous(s3, l3)?))
            }
            (CpuStorage::F64(_), CpuStorage::F64(_), CpuStorage::F64(_)) => {
                CpuStorage::F64(Self::run(contiguous(s1, l1)?, contiguous(s2, l2)?, contiguous(s3, l3)?))
            }
            _ => candle_core::bail!("scale-shift: f32 or f64 inputs of one type"),
        };
        Ok((out, l1.shape().clone()))
    }
}

/// Per group of rows of `g (groups * m, c)` and `x` alike: `(groups, 2, c)` holding the column sums
/// of `g * x` and of `g` (a per-channel affine's weight and bias gradients).
struct AffineGrads {
    groups: usize,
}

impl AffineGrads {
    fn run<T: Float>(&self, g: &[T], x: &[T], c: usize) -> Vec<T> {
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
        "affine-grads"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let c = *l1.dims().last().expect("rank >= 1");
        let out = match (s1, s2) {
            (CpuStorage::F32(_), CpuStorage::F32(_)) => CpuStorage::F32(self.run(contiguous(s1, l1)?, contiguous(s2, l2)?, c)),
            (CpuStorage::F64(_), CpuStorage::F64(_)) => CpuStorage::F64(self.run(contiguous(s1, l1)?, contiguous(s2, l2)?, c)),
            _ => candle_core::bail!("affine-grads: f32 or f64 inputs of one type"),
        };
        Ok((out, Shape::from((self.groups, 2, c))))
    }
}

/// Average pooling's input gradient: each output gradient spread over its k x k window (divided by
/// k * k), zeros on a dropped trailing row/column.
struct AvgPoolBackward {
    kernel: usize,
    input: (usize, usize, usize, usize),
}

impl AvgPoolBackward {
    fn run<T: Float>(&self, grad: &[T]) -> Vec<T> {
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
        "avg-pool-backward"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let out = match s {
            CpuStorage::F32(_) => CpuStorage::F32(self.run(contiguous::<f32>(s, l)?)),
            CpuStorage::F64(_) => CpuStorage::F64(self.run(contiguous::<f64>(s, l)?)),
            _ => candle_core::bail!("avg-pool-backward: f32 or f64 only, got {:?}", s.dtype()),
        };
        Ok((out, Shape::from(self.input)))
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
