//! 3 x 3 stride-1 convolutions by Winograd's F(2 x 2, 3 x 3) (Lavin & Gray, 2016): each 2 x 2 output
//! tile from a 4 x 4 input tile, as 16 GEMMs (one per position of the transformed tile) of
//! `(tiles, c_in) x (c_in, c_out)`: 2.25x fewer multiplications than im2col's GEMM, and a transformed
//! input 4x the input's size where im2col's patches are 9x. The transforms' coefficients are 0, ±1
//! and ±1/2, so the result differs from the direct sums by rounding only.
//!
//! Used on graph-free CPU tensors for the forward, the input gradient (the convolution of the
//! output gradient with the flipped kernel) and the weight gradient, which is F(3 x 3, 2 x 2): the
//! same input transform, the output gradient's 2 x 2 tiles transformed by A, 16 GEMMs summing over
//! the tiles, and Gᵀ M G (the transposition principle swaps F(2, 3)'s A and G).

use super::{apply, Float, Kernel};
use crate::gemm::Cores;
use candle_core::{Result, Shape, Tensor};
use rayon::prelude::*;

/// Positions of a transformed 4 x 4 tile.
const POSITIONS: usize = 16;

/// Whether a convolution takes this path: 3 x 3, stride 1, and enough input channels for the
/// 16 GEMMs (whose inner dimension they are) to run near gemm's rate.
pub fn winograd_applies(kernel: usize, stride: usize, c_in: usize) -> bool {
    kernel == 3 && stride == 1 && c_in >= 16
}

/// A stride-1 3 x 3 convolution's tiling of a channels-last input `(n, h, w, c)`, for `members`
/// networks whose samples are equal, contiguous blocks.
#[derive(Clone, Copy)]
pub(super) struct Tiling {
    pub(super) n: usize,
    pub(super) h: usize,
    pub(super) w: usize,
    pub(super) c: usize,
    pub(super) padding: usize,
    pub(super) members: usize,
}

impl Tiling {
    pub(super) fn out(&self) -> (usize, usize) {
        (self.h + 2 * self.padding - 2, self.w + 2 * self.padding - 2)
    }

    /// Tiles per sample: rows and columns.
    fn tiles(&self) -> (usize, usize) {
        let (ho, wo) = self.out();
        (ho.div_ceil(2), wo.div_ceil(2))
    }

    fn tiles_per_sample(&self) -> usize {
        let (th, tw) = self.tiles();
        th * tw
    }
}

/// `out[i] = f(a[i], b[i])` over channels (vectorised by the compiler).
#[inline(always)]
fn combine<T: Float>(out: &mut [T], a: &[T], b: &[T], f: impl Fn(T, T) -> T) {
    out.iter_mut().zip(a).zip(b).for_each(|((o, &a), &b)| *o = f(a, b));
}

/// Bᵀ d B of one 4 x 4 tile, `d` holding its 16 pixels' channel rows (row-major): position p's
/// channel row written at `runs[p][at..at + c]`. `rows` is scratch of d's size.
#[inline(always)]
fn input_tile<T: Float>(d: &[T], rows: &mut [T], c: usize, runs: &mut [&mut [T]], at: usize) {
    let q = |i: usize| i * c..(i + 1) * c;
    for col in 0..4 {
        let (d0, d1, d2, d3) = (&d[q(col)], &d[q(4 + col)], &d[q(8 + col)], &d[q(12 + col)]);
        combine(&mut rows[q(col)], d0, d2, |a, b| a - b);
        combine(&mut rows[q(4 + col)], d1, d2, |a, b| a + b);
        combine(&mut rows[q(8 + col)], d2, d1, |a, b| a - b);
        combine(&mut rows[q(12 + col)], d1, d3, |a, b| a - b);
    }
    for i in 0..4 {
        let r = |j: usize| &rows[q(4 * i + j)];
        combine(&mut runs[4 * i][at..at + c], r(0), r(2), |a, b| a - b);
        combine(&mut runs[4 * i + 1][at..at + c], r(1), r(2), |a, b| a + b);
        combine(&mut runs[4 * i + 2][at..at + c], r(2), r(1), |a, b| a - b);
        combine(&mut runs[4 * i + 3][at..at + c], r(1), r(3), |a, b| a - b);
    }
}

/// Each sample's run (`per_sample` values) in each of the 16 position slabs of `v`
/// `(16, samples * per_sample)`: the transforms' destinations, one sample per work item.
fn position_runs<T>(v: &mut [T], samples: usize, per_sample: usize) -> Vec<Vec<&mut [T]>> {
    let mut runs: Vec<Vec<&mut [T]>> = (0..samples).map(|_| Vec::with_capacity(POSITIONS)).collect();
    for slab in v.chunks_mut(samples * per_sample) {
        for (sample, run) in slab.chunks_mut(per_sample).enumerate() {
            runs[sample].push(run);
        }
    }
    runs
}

vectorised! {
    /// The transformed input of `images` (whole samples, channels-last) into `v`, `(16, tiles, c)`:
    /// each sample's tiles one contiguous run in each of the 16 position slabs.
    fn transform_input<T: Float>(images: &[T], t: Tiling, v: &mut [T]) {
        let (th, tw) = t.tiles();
        let c = t.c;
        let (sample_len, per_sample) = (t.h * t.w * c, t.tiles_per_sample() * c);
        let (mut d, mut rows) = (vec![T::zero(); POSITIONS * c], vec![T::zero(); POSITIONS * c]);
        for (mut runs, image) in position_runs(v, images.len() / sample_len, per_sample).into_iter().zip(images.chunks(sample_len)) {
            for tile in 0..th * tw {
                let (y0, x0) = (2 * (tile / tw) as isize - t.padding as isize, 2 * (tile % tw) as isize - t.padding as isize);
                for (at, pixel) in d.chunks_exact_mut(c).enumerate() {
                    let (y, x) = (y0 + (at / 4) as isize, x0 + (at % 4) as isize);
                    if y >= 0 && x >= 0 && (y as usize) < t.h && (x as usize) < t.w {
                        pixel.copy_from_slice(&image[(y as usize * t.w + x as usize) * c..][..c]);
                    } else {
                        pixel.fill(T::zero());
                    }
                }
                input_tile(&d, &mut rows, c, &mut runs, tile * c);
            }
        }
    }
}

/// G g Gᵀ of every 3 x 3 kernel of a weight `(members, out, in, 3, 3)`: `(members, 16, in, out)`,
/// the GEMMs' right-hand sides. `flip`: the kernel of the input gradient's convolution (in and
/// out exchanged, rotated by 180 degrees): `(members, 16, out, in)`.
struct WeightTransform {
    flip: bool,
}

/// G g Gᵀ of one kernel `g[3 * row + col]`.
#[inline(always)]
fn weight_tile<T: Float>(g: &[T; 9]) -> [T; POSITIONS] {
    let half = T::of(0.5);
    let mut rows = [T::zero(); 12];
    for col in 0..3 {
        let (g0, g1, g2) = (g[col], g[3 + col], g[6 + col]);
        rows[col] = g0;
        rows[3 + col] = (g0 + g1 + g2) * half;
        rows[6 + col] = (g0 - g1 + g2) * half;
        rows[9 + col] = g2;
    }
    let mut u = [T::zero(); POSITIONS];
    for i in 0..4 {
        let (r0, r1, r2) = (rows[3 * i], rows[3 * i + 1], rows[3 * i + 2]);
        u[4 * i] = r0;
        u[4 * i + 1] = (r0 + r1 + r2) * half;
        u[4 * i + 2] = (r0 - r1 + r2) * half;
        u[4 * i + 3] = r2;
    }
    u
}

impl Kernel<1> for WeightTransform {
    const NAME: &'static str = "winograd-weight";

    fn shapes(&self, [w]: [&[usize]; 1]) -> Vec<Shape> {
        let (members, out, c_in) = (w[0], w[1], w[2]);
        let (rows, cols) = if self.flip { (out, c_in) } else { (c_in, out) };
        vec![Shape::from((members * POSITIONS, rows, cols))]
    }

    fn run<T: Float>(&self, [w]: [&[T]; 1], dims: &[usize]) -> Vec<Vec<T>> {
        vec![weight_transform_values(w, (dims[0], dims[1], dims[2]), self.flip)]
    }
}

vectorised! {
    /// Row `row` of every position's slab of member `member`'s [`WeightTransform`] into `runs`: an
    /// input channel's kernels to every output (or, flipped, an output channel's from every input).
    fn weight_transform_row<T: Float>(runs: &mut [&mut [T]], w: &[T], (member, row): (usize, usize), (out, c_in): (usize, usize), flip: bool) {
        let cols = if flip { c_in } else { out };
        for col in 0..cols {
            let (o, i) = if flip { (row, col) } else { (col, row) };
            let kernel = &w[((member * out + o) * c_in + i) * 9..][..9];
            let mut g: [T; 9] = std::array::from_fn(|q| kernel[q]);
            if flip {
                g.reverse();
            }
            for (run, value) in runs.iter_mut().zip(weight_tile(&g)) {
                run[col] = value;
            }
        }
    }
}

/// [`WeightTransform`] of `w` `(members, out, in, 9)`: each row of every position's slab (an input
/// channel, or an output channel flipped) made by one work item, from its kernels.
fn weight_transform_values<T: Float>(w: &[T], (members, out, c_in): (usize, usize, usize), flip: bool) -> Vec<T> {
    let (rows, cols) = if flip { (out, c_in) } else { (c_in, out) };
    let mut u = vec![T::zero(); members * POSITIONS * rows * cols];
    let runs: Vec<Vec<&mut [T]>> = u.chunks_mut(POSITIONS * rows * cols).flat_map(|member| position_runs(member, rows, cols)).collect();
    runs.into_par_iter()
        .enumerate()
        .for_each(|(item, mut runs)| weight_transform_row(&mut runs, w, (item / rows, item % rows), (out, c_in), flip));
    u
}

vectorised! {
    /// Aᵀ M A of the 16 GEMM outputs `m` `(16, tiles, out)` of whole samples, plus the bias `(out)`:
    /// those samples' convolution `(samples, ho, wo, out)` into `y`.
    fn transform_output<T: Float>(m: &[T], bias: &[T], t: Tiling, y: &mut [T]) {
        let out = bias.len();
        let (ho, wo) = t.out();
        let (th, tw) = t.tiles();
        let per_slab = m.len() / POSITIONS;
        let (mut rows, mut sum) = (vec![T::zero(); 8 * out], vec![T::zero(); out]);
        for (sample, image) in y.chunks_mut(ho * wo * out).enumerate() {
            for tile in 0..th * tw {
                let at = (sample * th * tw + tile) * out;
                let (ty, tx) = (tile / tw, tile % tw);
                let m = |pos: usize| &m[pos * per_slab + at..][..out];
                // Aᵀ M: two rows of four channel rows.
                for j in 0..4 {
                    combine(&mut sum, m(j), m(4 + j), |a, b| a + b);
                    combine(&mut rows[j * out..(j + 1) * out], &sum, m(8 + j), |a, b| a + b);
                    combine(&mut sum, m(4 + j), m(8 + j), |a, b| a - b);
                    combine(&mut rows[(4 + j) * out..(5 + j) * out], &sum, m(12 + j), |a, b| a - b);
                }
                // Then times A, plus the bias.
                for dy in 0..2 {
                    let row = 2 * ty + dy;
                    if row >= ho {
                        continue;
                    }
                    let r = |j: usize| &rows[(4 * dy + j) * out..(4 * dy + j + 1) * out];
                    for dx in 0..2 {
                        let col = 2 * tx + dx;
                        if col >= wo {
                            continue;
                        }
                        let pixel = &mut image[(row * wo + col) * out..][..out];
                        match dx {
                            0 => combine(&mut sum, r(0), r(1), |a, b| a + b),
                            _ => combine(&mut sum, r(1), r(2), |a, b| a - b),
                        }
                        let last = if dx == 0 { r(2) } else { r(3) };
                        for ((p, &s), (&l, &b)) in pixel.iter_mut().zip(&sum).zip(last.iter().zip(bias)) {
                            *p = if dx == 0 { s + l } else { s - l } + b;
                        }
                    }
                }
            }
        }
    }
}

/// Tiles per block: the unit of work of one core, which transforms a block's samples, multiplies
/// them by the 16 transformed kernels and transforms the products back on its own (its transformed
/// input and GEMM outputs, 2 x 16 x 256 x 128 values, 4 MB in f32, in its reused scratch), with
/// no hand-off between the cores inside a convolution.
const BLOCK_TILES: usize = 256;

/// Whole samples of one member of an ensemble (or one group of a weight gradient).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct Block {
    pub(super) member: usize,
    first: usize,
    pub(super) samples: usize,
}

impl Tiling {
    /// Every member's samples in blocks of `per_block` (a member's last block fewer), in order.
    fn blocks(&self, per_block: usize) -> Vec<Block> {
        let per_member = self.n / self.members;
        (0..self.members)
            .flat_map(|member| {
                (0..per_member).step_by(per_block).map(move |i| Block {
                    member,
                    first: member * per_member + i,
                    samples: per_block.min(per_member - i),
                })
            })
            .collect()
    }

    /// The forward's blocks: at most [`BLOCK_TILES`] tiles, and at least a block per core where the
    /// samples allow (every output is computed alone, so the blocking leaves the values unchanged).
    pub(super) fn forward_blocks(&self) -> Vec<Block> {
        let per_member = self.n / self.members;
        let per_block = (BLOCK_TILES / self.tiles_per_sample()).min(per_member.div_ceil(rayon::current_num_threads())).max(1);
        self.blocks(per_block)
    }

    /// The scratch values one block of `samples` samples takes with `out` output (or gradient)
    /// channels: its transformed input and its 16 products (or transformed gradient).
    pub(super) fn block_scratch(&self, samples: usize, out: usize) -> usize {
        POSITIONS * samples * self.tiles_per_sample() * (self.c + out)
    }
}

/// `values` split into the blocks' runs, `per_sample` values per sample (blocks in order).
fn block_runs<'a, T>(mut values: &'a mut [T], blocks: &[Block], per_sample: usize) -> Vec<&'a mut [T]> {
    blocks.iter().map(|block| super::take(&mut values, block.samples * per_sample)).collect()
}

/// The convolution: `x (n, h, w, c)`, the transformed weight `(members, 16, c, out)` and the bias
/// `(members, out)` give `(n, ho, wo, out)`, block by block of samples (never across members).
struct Convolution {
    tiling: Tiling,
}

/// One block's convolution into `y` (its samples' outputs, `(samples, ho, wo, out)`): the input
/// transform, the 16 GEMMs on this core alone, the output transform, with the transformed weight
/// `u` and the bias of every member. `scratch` holds [`Tiling::block_scratch`] values, fully
/// written before they are read.
pub(super) fn convolve_block<T: Float>(x: &[T], (u, bias): (&[T], &[T]), t: Tiling, block: Block, scratch: &mut [T], y: &mut [T]) {
    let (c, out) = (t.c, bias.len() / t.members);
    let tiles = block.samples * t.tiles_per_sample();
    let (v, m) = scratch.split_at_mut(POSITIONS * tiles * c);
    transform_input(&x[block.first * t.h * t.w * c..][..block.samples * t.h * t.w * c], t, v);
    for pos in 0..POSITIONS {
        let rhs = &u[(block.member * POSITIONS + pos) * c * out..][..c * out];
        let (lhs, dst) = (&v[pos * tiles * c..][..tiles * c], &mut m[pos * tiles * out..][..tiles * out]);
        crate::gemm::product((tiles, c, out), lhs, rhs, dst, Cores::This);
    }
    transform_output(&m[..POSITIONS * tiles * out], &bias[block.member * out..][..out], t, y);
}

fn convolution_values<T: Float>(x: &[T], u: &[T], bias: &[T], t: Tiling) -> Vec<T> {
    let out = bias.len() / t.members;
    let (ho, wo) = t.out();
    let blocks = t.forward_blocks();
    let mut y = vec![T::zero(); t.n * ho * wo * out];
    let outputs = block_runs(&mut y, &blocks, ho * wo * out);
    blocks.into_par_iter().zip(outputs).for_each(|(block, y)| {
        T::with_scratch(t.block_scratch(block.samples, out), |scratch| convolve_block(x, (u, bias), t, block, scratch, y));
    });
    y
}

impl Kernel<3> for Convolution {
    const NAME: &'static str = "winograd";

    fn shapes(&self, [_, _, bias]: [&[usize]; 3]) -> Vec<Shape> {
        let (ho, wo) = self.tiling.out();
        vec![Shape::from((self.tiling.n, ho, wo, bias[1]))]
    }

    fn run<T: Float>(&self, [x, u, bias]: [&[T]; 3], _dims: &[usize]) -> Vec<Vec<T>> {
        vec![convolution_values(x, u, bias, self.tiling)]
    }
}

/// The 3 x 3 stride-1 convolution of graph-free `x (n, h, w, c)` with `weight` in PyTorch's layout
/// (`(out, in, 3, 3)`, or `(members, out, in, 3, 3)` for an ensemble), zero padding `padding`, plus
/// `bias` (`(members, out)`; `None`: no bias): `(n, ho, wo, out)`. With `flip`, the convolution
/// with the flipped kernel, from `out` channels to `in` (a convolution's input gradient).
pub fn winograd_conv(x: &Tensor, weight: &Tensor, bias: Option<&Tensor>, padding: usize, flip: bool) -> Result<Tensor> {
    let operands = Operands::new(x, weight, bias, padding, flip)?;
    apply(&Convolution { tiling: operands.tiling }, [x, &operands.u, &operands.bias]).map(|mut t| t.remove(0))
}

/// A Winograd convolution's operands: the tiling of its input, the transformed weight
/// `(members, 16, c, produced)` and the bias `(members, produced)`.
pub(super) struct Operands {
    pub(super) tiling: Tiling,
    pub(super) u: Tensor,
    pub(super) bias: Tensor,
}

impl Operands {
    /// For [`winograd_conv`]'s arguments, checked against each other.
    pub(super) fn new(x: &Tensor, weight: &Tensor, bias: Option<&Tensor>, padding: usize, flip: bool) -> Result<Operands> {
        let weight = if weight.rank() == 4 { weight.unsqueeze(0)? } else { weight.clone() };
        let (members, out, c_in, _, _) = weight.dims5()?;
        let (n, h, w, c) = x.dims4()?;
        let produced = if flip { c_in } else { out };
        if c != if flip { out } else { c_in } || n % members != 0 {
            candle_core::bail!("winograd: {n} samples of {c} channels for {members} members of weight {:?}", weight.dims())
        }
        let u = apply(&WeightTransform { flip }, [&weight.flatten_from(3)?])?.remove(0);
        let bias = match bias {
            Some(b) => b.reshape((members, produced))?,
            None => Tensor::zeros((members, produced), x.dtype(), x.device())?,
        };
        Ok(Operands { tiling: Tiling { n, h, w, c, padding, members }, u, bias })
    }
}

/// A g Aᵀ of one 2 x 2 output-gradient tile, `g` holding its 4 pixels' channel rows (row-major,
/// zeros outside the output): position p's channel row written at `runs[p][at..at + c]`. `rows`
/// is scratch of twice g's size.
#[inline(always)]
fn gradient_tile<T: Float>(g: &[T], rows: &mut [T], c: usize, runs: &mut [&mut [T]], at: usize) {
    let q = |i: usize| i * c..(i + 1) * c;
    for col in 0..2 {
        let (g0, g1) = (&g[q(col)], &g[q(2 + col)]);
        rows[q(col)].copy_from_slice(g0);
        combine(&mut rows[q(2 + col)], g0, g1, |a, b| a + b);
        combine(&mut rows[q(4 + col)], g0, g1, |a, b| a - b);
        rows[q(6 + col)].iter_mut().zip(g1).for_each(|(r, &b)| *r = T::zero() - b);
    }
    for i in 0..4 {
        let (r0, r1) = (&rows[q(2 * i)], &rows[q(2 * i + 1)]);
        runs[4 * i][at..at + c].copy_from_slice(r0);
        combine(&mut runs[4 * i + 1][at..at + c], r0, r1, |a, b| a + b);
        combine(&mut runs[4 * i + 2][at..at + c], r0, r1, |a, b| a - b);
        runs[4 * i + 3][at..at + c].iter_mut().zip(r1).for_each(|(r, &b)| *r = T::zero() - b);
    }
}

vectorised! {
    /// The transformed output gradient of whole samples `grads` `(samples, ho, wo, c)` into `v`,
    /// `(16, tiles, c)`, tiled as the input of tiling `t`.
    fn transform_gradient<T: Float>(grads: &[T], t: Tiling, c: usize, v: &mut [T]) {
        let (th, tw) = t.tiles();
        let (ho, wo) = t.out();
        let (sample_len, per_sample) = (ho * wo * c, t.tiles_per_sample() * c);
        let (mut g, mut rows) = (vec![T::zero(); 4 * c], vec![T::zero(); 8 * c]);
        for (mut runs, grad) in position_runs(v, grads.len() / sample_len, per_sample).into_iter().zip(grads.chunks(sample_len)) {
            for tile in 0..th * tw {
                let (y0, x0) = (2 * (tile / tw), 2 * (tile % tw));
                for (at, pixel) in g.chunks_exact_mut(c).enumerate() {
                    let (y, x) = (y0 + at / 2, x0 + at % 2);
                    if y < ho && x < wo {
                        pixel.copy_from_slice(&grad[(y * wo + x) * c..][..c]);
                    } else {
                        pixel.fill(T::zero());
                    }
                }
                gradient_tile(&g, &mut rows, c, &mut runs, tile * c);
            }
        }
    }
}

/// Gᵀ M G of one 4 x 4 tile `m[4 * row + col]`: the 3 x 3 kernel's gradient.
#[inline(always)]
fn kernel_tile<T: Float>(m: &[T; POSITIONS]) -> [T; 9] {
    let half = T::of(0.5);
    // Gᵀ v of a 4-vector: (v0 + (v1 + v2) / 2, (v1 - v2) / 2, (v1 + v2) / 2 + v3).
    let reduce = |v0: T, v1: T, v2: T, v3: T| [v0 + (v1 + v2) * half, (v1 - v2) * half, (v1 + v2) * half + v3];
    let mut rows = [T::zero(); 12];
    for col in 0..4 {
        let r = reduce(m[col], m[4 + col], m[8 + col], m[12 + col]);
        for (k, v) in r.into_iter().enumerate() {
            rows[4 * k + col] = v;
        }
    }
    let mut g = [T::zero(); 9];
    for k in 0..3 {
        let r = reduce(rows[4 * k], rows[4 * k + 1], rows[4 * k + 2], rows[4 * k + 3]);
        g[3 * k..3 * k + 3].copy_from_slice(&r);
    }
    g
}

/// The weight gradient of a 3 x 3 stride-1 convolution of tiling `t` (`members`: the groups, equal
/// contiguous blocks of samples, each with its own gradient): inputs `x (n, h, w, c)` and the
/// output gradient `(n, ho, wo, out)`; output `(groups, out, c, 3, 3)`.
struct WeightGradient {
    tiling: Tiling,
}

/// Partial sums per weight gradient, shared among its groups: the work items of the transposed
/// products when a gradient has fewer groups than cores. Fixed, never the number of cores, so that
/// the order of the sums, and the gradient's bits, do not depend on the machine.
const PARTS: usize = 8;

fn weight_gradient_values<T: Float>(x: &[T], grads: &[T], t: Tiling, out: usize) -> Vec<T> {
    let (c, groups) = (t.c, t.members);
    let (ho, wo) = t.out();
    let (sample_in, sample_out, per_sample) = (t.h * t.w * c, ho * wo * out, t.tiles_per_sample());
    let blocks = t.blocks((BLOCK_TILES / per_sample).max(1));
    let per_group = blocks.len() / groups;
    let parts = (PARTS / groups).clamp(1, per_group);
    // Per group, part and position, the sum over the part's tiles of (transformed input)ᵀ
    // (transformed gradient); a part takes every `parts`-th block of its group.
    let slab = POSITIONS * c * out;
    let mut partials = vec![T::zero(); groups * parts * slab];
    partials.par_chunks_mut(slab).enumerate().for_each(|(item, sums)| {
        let (group, part) = (item / parts, item % parts);
        for (k, block) in blocks[group * per_group..(group + 1) * per_group].iter().skip(part).step_by(parts).enumerate() {
            let tiles = block.samples * per_sample;
            T::with_scratch(t.block_scratch(block.samples, out), |scratch| {
                let (v, gv) = scratch.split_at_mut(POSITIONS * tiles * c);
                transform_input(&x[block.first * sample_in..][..block.samples * sample_in], t, v);
                transform_gradient(&grads[block.first * sample_out..][..block.samples * sample_out], t, out, gv);
                for (pos, sum) in sums.chunks_mut(c * out).enumerate() {
                    let (lhs, rhs) = (&v[pos * tiles * c..][..tiles * c], &gv[pos * tiles * out..][..tiles * out]);
                    crate::gemm::transposed_product((c, tiles, out), lhs, rhs, sum, k > 0, Cores::This);
                }
            });
        }
    });
    // Per group and position, the parts' sums (in part order) transposed to `(out, c)`: the
    // rows the kernels' transform reads.
    let mut m = vec![T::zero(); groups * slab];
    m.par_chunks_mut(c * out).enumerate().for_each(|(item, m)| {
        let (group, pos) = (item / POSITIONS, item % POSITIONS);
        let parts: Vec<&[T]> = (0..parts).map(|p| &partials[((group * parts + p) * POSITIONS + pos) * c * out..][..c * out]).collect();
        sum_transposed(m, &parts, (c, out));
    });
    let mut dw = vec![T::zero(); groups * out * c * 9];
    dw.par_chunks_mut(c * 9).enumerate().for_each(|(row, kernels)| {
        let (group, o) = (row / out, row % out);
        kernel_gradients(kernels, &std::array::from_fn(|pos| &m[((group * POSITIONS + pos) * out + o) * c..][..c]));
    });
    dw
}

vectorised! {
    /// The sum of `parts` `(c, out)` (in their order), transposed into `m` `(out, c)`.
    fn sum_transposed<T: Float>(m: &mut [T], parts: &[&[T]], (c, out): (usize, usize)) {
        for i in 0..c {
            for o in 0..out {
                m[o * c + i] = parts.iter().fold(T::zero(), |sum, part| sum + part[i * out + o]);
            }
        }
    }
}

vectorised! {
    /// One output channel's 3 x 3 kernel gradients `(c, 9)` into `kernels`, from its row of each
    /// position's summed products `rows[pos]` `(c)`.
    fn kernel_gradients<T: Float>(kernels: &mut [T], rows: &[&[T]; POSITIONS]) {
        for (i, kernel) in kernels.chunks_exact_mut(9).enumerate() {
            kernel.copy_from_slice(&kernel_tile(&std::array::from_fn(|pos| rows[pos][i])));
        }
    }
}

impl Kernel<2> for WeightGradient {
    const NAME: &'static str = "winograd-weight-gradient";

    fn shapes(&self, [x, g]: [&[usize]; 2]) -> Vec<Shape> {
        vec![Shape::from((self.tiling.members, g[3], x[3], 3, 3))]
    }

    fn run<T: Float>(&self, [x, g]: [&[T]; 2], dims: &[usize]) -> Vec<Vec<T>> {
        let out = g.len() / (dims[0] * self.tiling.out().0 * self.tiling.out().1);
        vec![weight_gradient_values(x, g, self.tiling, out)]
    }
}

/// The weight gradient of the 3 x 3 stride-1 convolution of graph-free `x (n, h, w, c)` with zero
/// padding `padding`, from its output gradient `grad (n, ho, wo, out)`, for `groups` equal,
/// contiguous blocks of samples: `(groups, out, c, 3, 3)`, PyTorch's layout per group.
pub fn winograd_weight_gradient(x: &Tensor, grad: &Tensor, padding: usize, groups: usize) -> Result<Tensor> {
    let (n, h, w, c) = x.dims4()?;
    let tiling = Tiling { n, h, w, c, padding, members: groups };
    let (ho, wo) = tiling.out();
    let (gn, gh, gw, _) = grad.dims4()?;
    if (gn, gh, gw) != (n, ho, wo) || groups == 0 || n % groups != 0 {
        candle_core::bail!("winograd weight gradient: input {:?}, gradient {:?}, {groups} groups", x.dims(), grad.dims())
    }
    apply(&WeightGradient { tiling }, [x, grad]).map(|mut t| t.remove(0))
}

#[cfg(test)]
mod tests {
    use super::super::testing::{max_difference, random};
    use super::*;
    use candle_core::Device;

    /// The direct convolution by im2col: `(members, rows, out)`.
    fn direct(x: &Tensor, weight: &Tensor, bias: &Tensor, padding: usize, members: usize) -> Tensor {
        let (_, out, c_in, _, _) = weight.dims5().unwrap();
        let cols = super::super::im2col(x, 3, 1, padding).unwrap();
        let wm = weight.permute((0, 3, 4, 2, 1)).unwrap().contiguous().unwrap().reshape((members, 9 * c_in, out)).unwrap();
        let y = cols.reshape((members, (), 9 * c_in)).unwrap().matmul(&wm).unwrap();
        y.broadcast_add(&bias.reshape((members, 1, out)).unwrap()).unwrap()
    }

    #[test]
    fn winograd_equals_the_direct_convolution() {
        // Even and odd sides, paddings 0-2, ensembles, and the flipped kernel of the input gradient.
        for (side, padding, members) in [(8, 1, 1), (7, 1, 2), (6, 0, 1), (5, 2, 1), (9, 1, 3)] {
            let (n, c_in, out) = (members * 2, 5, 4);
            let x = random(&[n, side, side, c_in], 1);
            let weight = random(&[members, out, c_in, 3, 3], 2);
            let bias = random(&[members, out], 3);
            let y = winograd_conv(&x, &weight, Some(&bias), padding, false).unwrap();
            let expected = direct(&x, &weight, &bias, padding, members);
            let err = max_difference(&y, &expected);
            assert!(err < 1e-13, "side {side} padding {padding} members {members}: {err:e}");
            // Flipped: the kernel (in <- out) rotated by 180 degrees, applied to an out-channel input.
            let g = random(&[n, side, side, out], 4);
            let flipped = weight.flip(&[3, 4]).unwrap().transpose(1, 2).unwrap().contiguous().unwrap();
            let zero = Tensor::zeros((members, c_in), candle_core::DType::F64, &Device::Cpu).unwrap();
            let dx = winograd_conv(&g, &weight, None, padding, true).unwrap();
            let err = max_difference(&dx, &direct(&g, &flipped, &zero, padding, members));
            assert!(err < 1e-13, "flipped: side {side} padding {padding} members {members}: {err:e}");
        }
    }

    #[test]
    fn the_bits_do_not_depend_on_the_number_of_cores() {
        // The forward's blocks follow the cores, the weight gradient's partial sums never do: the
        // same bits from 1, 2 and 3 threads (f32, where a changed order of sums shows).
        let (n, side, c) = (24, 9, 20);
        let x = random(&[n, side, side, c], 7).to_dtype(candle_core::DType::F32).unwrap();
        let g = random(&[n, side, side, c], 8).to_dtype(candle_core::DType::F32).unwrap();
        let weight = random(&[c, c, 3, 3], 9).to_dtype(candle_core::DType::F32).unwrap();
        let on = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            pool.install(|| {
                let y = winograd_conv(&x, &weight, None, 1, false).unwrap();
                let dw = winograd_weight_gradient(&x, &g, 1, 1).unwrap();
                (y.flatten_all().unwrap().to_vec1::<f32>().unwrap(), dw.flatten_all().unwrap().to_vec1::<f32>().unwrap())
            })
        };
        let one = on(1);
        assert!(one.1.iter().any(|v| *v != 0.0));
        for threads in [2, 3] {
            assert!(on(threads) == one, "{threads} threads");
        }
    }

    #[test]
    fn the_winograd_weight_gradient_equals_the_patches_product() {
        // Per group, dW = colsᵀ g at im2col's order, permuted to PyTorch's layout. Odd sides leave
        // tiles half outside the output; several chunks per group when the samples outnumber a chunk.
        for (side, padding, groups, per_group) in [(8, 1, 1, 2), (7, 1, 2, 3), (6, 0, 1, 1), (5, 2, 3, 2), (9, 1, 2, 100)] {
            let (n, c_in, out) = (groups * per_group, 5, 4);
            let x = random(&[n, side, side, c_in], 5);
            let ho = side + 2 * padding - 2;
            let g = random(&[n, ho, ho, out], 6);
            let dw = winograd_weight_gradient(&x, &g, padding, groups).unwrap();
            let cols = super::super::im2col(&x, 3, 1, padding).unwrap().reshape((groups, (), 9 * c_in)).unwrap();
            let dw_t = cols.transpose(1, 2).unwrap().matmul(&g.reshape((groups, (), out)).unwrap()).unwrap();
            let expected = dw_t.reshape((groups, 3, 3, c_in, out)).unwrap().permute((0, 4, 3, 1, 2)).unwrap();
            let err = max_difference(&dw, &expected.contiguous().unwrap());
            assert!(err < 1e-12, "side {side} padding {padding} groups {groups} x {per_group}: {err:e}");
        }
    }
}
