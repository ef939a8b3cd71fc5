//! The per-channel affine (forward and parameter gradients) and average pooling's backward.

use super::*;

/// `x * weight + bias` over the last axis of `x (rows, c)`.
struct ScaleShift;

vectorised! {
    /// [`ScaleShift`] of whole rows `x` into `o`.
    fn scale_shift_rows<T: Float>(o: &mut [T], x: &[T], w: &[T], b: &[T]) {
        let c = w.len();
        for (orow, xrow) in o.chunks_exact_mut(c).zip(x.chunks_exact(c)) {
            for k in 0..c {
                orow[k] = xrow[k] * w[k] + b[k];
            }
        }
    }
}

fn scale_shift_values<T: Float>(x: &[T], w: &[T], b: &[T]) -> Vec<T> {
    let c = w.len();
    let mut out = vec![T::zero(); x.len()];
    let rows = (1 << 14) / c.max(1) + 1;
    out.par_chunks_mut(rows * c).zip(x.par_chunks(rows * c)).for_each(|(o, x)| scale_shift_rows(o, x, w, b));
    out
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
    /// One group's sums into `o` `(2, c)`: of `g * x`, then of `g`, over its rows.
    fn group_affine_sums<T: Float>(o: &mut [T], g: &[T], x: &[T], c: usize) {
        let (mut sum_gx, mut sum_g) = (vec![0f64; c], vec![0f64; c]);
        for (grow, xrow) in g.chunks_exact(c).zip(x.chunks_exact(c)) {
            for k in 0..c {
                sum_gx[k] += (grow[k] * xrow[k]).to();
                sum_g[k] += grow[k].to();
            }
        }
        for k in 0..c {
            o[k] = T::of(sum_gx[k]);
            o[c + k] = T::of(sum_g[k]);
        }
    }
}

fn affine_grads_values<T: Float>(g: &[T], x: &[T], groups: usize, c: usize) -> Vec<T> {
    let per_group = g.len() / groups;
    let mut out = vec![T::zero(); groups * 2 * c];
    out.par_chunks_mut(2 * c)
        .zip(g.par_chunks(per_group).zip(x.par_chunks(per_group)))
        .for_each(|(o, (g, x))| group_affine_sums(o, g, x, c));
    out
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
    /// One input row of [`AvgPoolBackward`] (`w` pixels of `c` channels) from its row of output
    /// gradients `src` (`wo` pixels): each value times `scale`, spread over its window's k columns.
    fn spread_row<T: Float>(row: &mut [T], src: &[T], (k, c): (usize, usize), scale: T) {
        let wo = src.len() / c;
        for x in 0..wo * k {
            let s = &src[(x / k) * c..(x / k + 1) * c];
            for (d, &v) in row[x * c..(x + 1) * c].iter_mut().zip(s) {
                *d = v * scale;
            }
        }
    }
}

fn avg_pool_backward_values<T: Float>(grad: &[T], k: usize, (n, h, w, c): (usize, usize, usize, usize)) -> Vec<T> {
    let (ho, wo) = (h / k, w / k);
    let scale = T::of(1.0 / (k * k) as f64);
    let mut out = vec![T::zero(); n * h * w * c];
    out.par_chunks_mut(w * c).enumerate().for_each(|(r, row)| {
        let (b, y) = (r / h, r % h);
        // A dropped trailing row keeps its zeros.
        if y / k < ho {
            spread_row(row, &grad[((b * ho + y / k) * wo) * c..][..wo * c], (k, c), scale);
        }
    });
    out
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
