//! The first block of the paper's ConvNet on one-channel images in one kernel: the short-patch
//! convolution, instance norm, its affine, ReLU and average pooling, per sample, with the
//! convolution's output in a scratch buffer that stays in the core's cache (0.5 MB for 32 x 32 x 128)
//! instead of a map of the whole batch written once and read three times (134 MB for 256 images).
//! The same per-sample arithmetic as the separate kernels, so the same values bit for bit.

use super::block::{member_slice, Block, BlockBuffers};
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
    let members = bias.len() / out;
    let mut buffers = BlockBuffers::new(b, record);
    let samples = x.par_chunks(g.sample_len()).zip(buffers.runs(b, std::iter::repeat_n(1, n)));
    samples.enumerate().for_each(|(s, (image, mut run))| {
        let member = s / (n / members);
        // The convolution's map, fully written before it is read.
        T::with_scratch(b.sizes().0, |z| {
            short_conv_sample(image, &weight[member * g.patch() * out..][..g.patch() * out], &bias[member * out..][..out], g, z);
            run.tail(0, z, member_slice(affine, 2 * out, s, n), b);
        });
    });
    buffers.into_outputs()
}

impl Kernel<4> for FirstBlock {
    const NAME: &'static str = "first-block";

    fn shapes(&self, [x, _, _, _]: [&[usize]; 4]) -> Vec<Shape> {
        self.shapes_of(x).1.fused_shapes(self.record)
    }

    fn run<T: Float>(&self, [x, weight, bias, affine]: [&[T]; 4], dims: &[usize]) -> Vec<Vec<T>> {
        first_block_values(x, weight, bias, affine, self.shapes_of(dims), self.record)
    }
}

/// What a fused block ([`short_conv_norm_relu_pool`], [`super::winograd_norm_relu_pool`]) computed.
pub struct BlockOutput {
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
) -> Result<BlockOutput> {
    let out = bias.dim(candle_core::D::Minus1)?;
    let affine = Tensor::cat(&[affine.0, affine.1], affine.0.rank() - 1)?;
    let kernel = FirstBlock { k, stride, padding, pool, out, record };
    let mut outputs = apply(&kernel, [x, weight, bias, &affine])?.into_iter();
    let (pooled, stats) = (outputs.next().expect("the pooled map"), outputs.next().expect("the statistics"));
    Ok(BlockOutput { pooled, stats, saved: outputs.next().zip(outputs.next()) })
}
