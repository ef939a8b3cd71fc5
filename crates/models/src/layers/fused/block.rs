//! The tail of a ConvNet block (instance norm, affine, ReLU, average pooling) forward in one pass
//! and backward in two.

use super::*;

/// Shapes shared by the block kernels: input `(n, h, w, c)`, k x k average pooling (floor mode).
#[derive(Clone, Copy)]
pub(super) struct Block {
    pub(super) n: usize,
    pub(super) h: usize,
    pub(super) w: usize,
    pub(super) c: usize,
    pub(super) k: usize,
}

impl Block {
    pub(super) fn new(dims: &[usize], k: usize) -> Block {
        Block { n: dims[0], h: dims[1], w: dims[2], c: dims[3], k }
    }

    pub(super) fn pooled_shape(&self) -> Shape {
        Shape::from((self.n, self.h / self.k, self.w / self.k, self.c))
    }

    /// Values per sample: of the input, of the pooled output.
    pub(super) fn sizes(&self) -> (usize, usize) {
        (self.h * self.w * self.c, (self.h / self.k) * (self.w / self.k) * self.c)
    }

    /// The offset in the pooled sample of pixel (row, col)'s window, and whether the pixel is the
    /// window's first; `None` on a dropped trailing row or column.
    #[inline(always)]
    pub(super) fn window(&self, row: usize, col: usize) -> Option<(usize, bool)> {
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

vectorised! {
    /// One sample of [`NormReluPool`]: `saved` receives `xhat` and `y` (recording), else a row is reused.
    pub(super) fn norm_relu_pool_sample<T: Float>(
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
                // Zipped slices of length c: no bounds check per channel, so the loop vectorises.
                let channels = xhat.iter_mut().zip(y.iter_mut()).zip(&x[at..at + c]).zip(mean.iter().zip(rstd)).zip(weight.iter().zip(bias));
                for ((((xh, yv), &xv), (&mu, &r)), (&w, &b)) in channels {
                    *xh = (xv - mu) * r;
                    *yv = relu(*xh * w + b);
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
}

/// A fused block's outputs (a convolution and the tail in one kernel) while they are written: the
/// pooled map, the statistics `(n, 2, c)` and, recorded, `xhat` and `y` `(n, h, w, c)`.
pub(super) struct BlockBuffers<T> {
    pooled: Vec<T>,
    stats: Vec<T>,
    saved: Option<(Vec<T>, Vec<T>)>,
}

/// Consecutive samples' share of [`BlockBuffers`].
pub(super) struct BlockRun<'a, T> {
    pooled: &'a mut [T],
    stats: &'a mut [T],
    saved: Option<(&'a mut [T], &'a mut [T])>,
}

impl Block {
    /// The shapes of [`BlockBuffers`]' outputs.
    pub(super) fn fused_shapes(&self, record: bool) -> Vec<Shape> {
        let mut shapes = vec![self.pooled_shape(), Shape::from((self.n, 2, self.c))];
        if record {
            shapes.extend([Shape::from((self.n, self.h, self.w, self.c)), Shape::from((self.n, self.h, self.w, self.c))]);
        }
        shapes
    }
}

impl<T: Float> BlockBuffers<T> {
    pub(super) fn new(b: Block, record: bool) -> Self {
        let (m, mp) = b.sizes();
        let saved = record.then(|| (vec![T::zero(); b.n * m], vec![T::zero(); b.n * m]));
        BlockBuffers { pooled: vec![T::zero(); b.n * mp], stats: vec![T::zero(); b.n * 2 * b.c], saved }
    }

    /// The buffers split into runs of `samples` samples each, in order.
    pub(super) fn runs(&mut self, b: Block, samples: impl Iterator<Item = usize>) -> Vec<BlockRun<'_, T>> {
        let (m, mp) = b.sizes();
        let (mut pooled, mut stats) = (&mut self.pooled[..], &mut self.stats[..]);
        let mut saved = self.saved.as_mut().map(|(xhat, y)| (&mut xhat[..], &mut y[..]));
        samples
            .map(|k| BlockRun {
                pooled: take(&mut pooled, k * mp),
                stats: take(&mut stats, k * 2 * b.c),
                saved: saved.as_mut().map(|(xhat, y)| (take(xhat, k * m), take(y, k * m))),
            })
            .collect()
    }

    /// The outputs, in [`Block::fused_shapes`]' order.
    pub(super) fn into_outputs(self) -> Vec<Vec<T>> {
        let mut outputs = vec![self.pooled, self.stats];
        outputs.extend(self.saved.map(|(xhat, y)| [xhat, y]).into_iter().flatten());
        outputs
    }
}

impl<T: Float> BlockRun<'_, T> {
    /// The tail of the run's sample `i` from its convolution's map `z`: the statistics, then the
    /// norm, affine (`[weight; bias]` of the sample's network), ReLU and pooling.
    pub(super) fn tail(&mut self, i: usize, z: &[T], affine: &[T], b: Block) {
        let (m, mp) = b.sizes();
        let stats = &mut self.stats[i * 2 * b.c..][..2 * b.c];
        super::norm::sample_stats(z, (b.h * b.w, b.c), stats);
        let saved = self.saved.as_mut().map(|(xhat, y)| (&mut xhat[i * m..][..m], &mut y[i * m..][..m]));
        norm_relu_pool_sample(z, stats, affine, b, &mut self.pooled[i * mp..][..mp], saved);
    }
}

/// Sample `s`'s slice of a per-channel parameter of `per_member` values per network, for a batch
/// of `n` samples in equal, contiguous blocks, one per network (one network: the whole parameter).
#[inline(always)]
pub(super) fn member_slice<T>(param: &[T], per_member: usize, s: usize, n: usize) -> &[T] {
    let members = param.len() / per_member;
    let member = s / (n / members);
    &param[member * per_member..(member + 1) * per_member]
}

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
    samples
        .zip(xhat.par_chunks_mut(m).zip(y.par_chunks_mut(m)))
        .for_each(|((s, ((p, x), st)), (xhat, y))| norm_relu_pool_sample(x, st, affine_of(s), b, p, Some((xhat, y))));
    vec![pooled, xhat, y]
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

vectorised! {
    /// One sample of [`NormReluPoolBackward`]: writes `dx` and the sample's affine sums
    /// (`sum gz * xhat`, `sum gz`, in f64).
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
                let inputs = gz.iter().zip(&xhat[at..at + c]).zip(weight);
                let sums = affine_gx.iter_mut().zip(affine_g.iter_mut()).zip(sum_g.iter_mut().zip(sum_gx.iter_mut()));
                for (((&g, &xh), &w), ((agx, ag), (sg, sgx))) in inputs.zip(sums) {
                    // Instance norm's backward sees the affine's input gradient g * weight.
                    let gxhat = g * w;
                    *agx += (g * xh).to();
                    *ag += g.to();
                    *sg += gxhat.to();
                    *sgx += (gxhat * xh).to();
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
                let inputs = gz.iter().zip(weight).zip(&xhat[at..at + c]).zip(mean_g.iter().zip(&mean_gx)).zip(rstd);
                for (d, ((((&g, &w), &xh), (&mg, &mgx)), &r)) in dx[at..at + c].iter_mut().zip(inputs) {
                    *d = (g * w - mg - xh * mgx) * r;
                }
            }
        }
    }
}

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
