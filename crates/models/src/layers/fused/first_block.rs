//! The first block of the paper's ConvNet on one-channel images in one kernel: the short-patch
//! convolution, instance norm, its affine, ReLU and average pooling, per sample, with the
//! convolution's output in a scratch buffer that stays in the core's cache (0.5 MB for 32 x 32 x 128)
//! instead of a map of the whole batch written once and read three times (134 MB for 256 images).
//! The same per-sample arithmetic as the separate kernels, so the same values bit for bit.

use super::block::{member_slice, norm_relu_pool_sample, Block};
use super::norm::sample_stats;
use super::short_conv::{short_conv_sample, Geometry};
use super::{apply, Float, Kernel};
use candle_core::{Result, Shape, Tensor};
use rayon::prelude::*;

/// Inputs: `x (n, h, w, c)`, the weight matrix `(members, patch, out)`, the bias `(members, out)`
/// and the norm's affine `[weight; bias]` `(members, 2 out)`. Outputs: the pooled map, the
/// statistics `(n, 2, out)` and, when `record`, `xhat` and `y` `(n, ho, wo, out)`.
struct FirstBlock {
    k: usize,
    stride: usize,
    padding: usize,
    pool: usize,
    out: usize,
    record: bool,
}

impl FirstBlock {
    fn shapes_of(&self, x: &[usize]) -> (Geometry, Block) {
        let g = Geometry::new(x, self.k, self.stride, self.padding);
        (g, Block::new(&[x[0], g.ho, g.wo, self.out], self.pool))
    }
}

fn first_block_values<T: Float>(x: &[T], weight: &[T], bias: &[T], affine: &[T], (g, b): (Geometry, Block), record: bool) -> Vec<Vec<T>> {
    let (n, out) = (b.n, b.c);
    let (m, mp) = b.sizes();
    let members = bias.len() / out;
    let (mut pooled, mut stats) = (vec![T::zero(); n * mp], vec![T::zero(); n * 2 * out]);
    let (mut xhat, mut y) = if record { (vec![T::zero(); n * m], vec![T::zero(); n * m]) } else { (vec![], vec![]) };
    let saved: Vec<Option<(&mut [T], &mut [T])>> =
        if record { xhat.chunks_mut(m).zip(y.chunks_mut(m)).map(Some).collect() } else { (0..n).map(|_| None).collect() };
    let samples = x.par_chunks(g.sample_len()).zip(pooled.par_chunks_mut(mp)).zip(stats.par_chunks_mut(2 * out));
    samples.zip(saved).enumerate().for_each(|(s, (((image, pooled), st), saved))| {
        let member = s / (n / members);
        // The convolution's map, fully written before it is read.
        T::with_scratch(m, |z| {
            short_conv_sample(image, &weight[member * g.patch() * out..][..g.patch() * out], &bias[member * out..][..out], g, z);
            sample_stats(z, (g.ho * g.wo, out), st);
            norm_relu_pool_sample(z, st, member_slice(affine, 2 * out, s, n), b, pooled, saved);
        });
    });
    let mut outputs = vec![pooled, stats];
    if record {
        outputs.extend([xhat, y]);
    }
    outputs
}

impl Kernel<4> for FirstBlock {
    const NAME: &'static str = "first-block";

    fn shapes(&self, [x, _, _, _]: [&[usize]; 4]) -> Vec<Shape> {
        let (g, b) = self.shapes_of(x);
        let mut shapes = vec![b.pooled_shape(), Shape::from((x[0], 2, self.out))];
        if self.record {
            shapes.extend([Shape::from((x[0], g.ho, g.wo, self.out)), Shape::from((x[0], g.ho, g.wo, self.out))]);
        }
        shapes
    }

    fn run<T: Float>(&self, [x, weight, bias, affine]: [&[T]; 4], dims: &[usize]) -> Vec<Vec<T>> {
        first_block_values(x, weight, bias, affine, self.shapes_of(dims), self.record)
    }
}

/// What [`short_conv_norm_relu_pool`] computed.
pub struct FirstBlockOutput {
    pub pooled: Tensor,
    /// `(n, 2, out)`: each sample's channel means and 1/sqrt(var + eps).
    pub stats: Tensor,
    /// `(xhat, y)`, `(n, ho, wo, out)` each, when recorded.
    pub saved: Option<(Tensor, Tensor)>,
}

/// The short-patch convolution of graph-free `x (n, h, w, c)` (weight matrix `(patch, out)` and
/// bias `(out)`, or an ensemble's `(members, ...)`), then instance norm with the affine `(weight,
/// bias)`, ReLU and `pool x pool` average pooling: the values of [`super::short_conv`],
/// [`super::instance_stats`] and [`super::norm_relu_pool`] in turn, without the convolution's map.
pub fn short_conv_norm_relu_pool(
    x: &Tensor,
    (weight, bias): (&Tensor, &Tensor),
    (k, stride, padding): (usize, usize, usize),
    affine: (&Tensor, &Tensor),
    pool: usize,
    record: bool,
) -> Result<FirstBlockOutput> {
    let out = bias.dim(candle_core::D::Minus1)?;
    let affine = Tensor::cat(&[affine.0, affine.1], affine.0.rank() - 1)?;
    let kernel = FirstBlock { k, stride, padding, pool, out, record };
    let mut outputs = apply(&kernel, [x, weight, bias, &affine])?.into_iter();
    let (pooled, stats) = (outputs.next().expect("the pooled map"), outputs.next().expect("the statistics"));
    Ok(FirstBlockOutput { pooled, stats, saved: outputs.next().zip(outputs.next()) })
}
