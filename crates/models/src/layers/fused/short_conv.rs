//! Convolutions with short patches (`k * k * c_in` at most [`SHORT_PATCH`]: the first layer of a
//! ConvNet on one-channel images has 9): the forward and the weight gradients computed directly from
//! the input. Through im2col, their GEMMs have 10 terms per product and run at a tenth of the GEMM's
//! rate, and the weight gradient's patches are written and read once more; here each output row is
//! `k * k * c_in` vector updates of the output channels, and the weight gradient reads the output
//! gradient once.

use super::{apply, Float, Kernel};
use candle_core::{Result, Shape, Tensor};
use rayon::prelude::*;

/// The longest patch that takes these kernels.
pub const SHORT_PATCH: usize = 16;

/// A k x k convolution's geometry on a channels-last input `(n, h, w, c)`.
#[derive(Clone, Copy)]
pub(super) struct Geometry {
    k: usize,
    stride: usize,
    padding: usize,
    h: usize,
    w: usize,
    c: usize,
    pub(super) ho: usize,
    pub(super) wo: usize,
}

impl Geometry {
    pub(super) fn new(x: &[usize], k: usize, stride: usize, padding: usize) -> Geometry {
        let out = |side: usize| (side + 2 * padding - k) / stride + 1;
        Geometry { k, stride, padding, h: x[1], w: x[2], c: x[3], ho: out(x[1]), wo: out(x[2]) }
    }

    /// Values of one input sample.
    pub(super) fn sample_len(&self) -> usize {
        self.h * self.w * self.c
    }

    pub(super) fn patch(&self) -> usize {
        self.k * self.k * self.c
    }

    /// Calls `f(tap, offset)` for every tap of output pixel `q` that falls inside the image, in
    /// im2col's column order (kernel row, kernel column, channel): the tap's column and the offset
    /// of its value in the sample.
    #[inline(always)]
    fn taps(&self, q: usize, mut f: impl FnMut(usize, usize)) {
        let (oy, ox) = (q / self.wo, q % self.wo);
        for i in 0..self.k {
            let Some(y) = (oy * self.stride + i).checked_sub(self.padding).filter(|&y| y < self.h) else { continue };
            for j in 0..self.k {
                let Some(x) = (ox * self.stride + j).checked_sub(self.padding).filter(|&x| x < self.w) else { continue };
                for ch in 0..self.c {
                    f((i * self.k + j) * self.c + ch, (y * self.w + x) * self.c + ch);
                }
            }
        }
    }
}

/// `out[..] += v * row[..]`.
#[inline(always)]
fn add_scaled<T: Float>(out: &mut [T], v: T, row: &[T]) {
    out.iter_mut().zip(row).for_each(|(o, &r)| *o += v * r);
}

/// The forward: `x (n, h, w, c)`, the weight matrix `(members, patch, out)` and the bias
/// `(members, out)` give `(n * ho * wo, out)`, sample s through member `s / (n / members)`.
struct ShortConv {
    k: usize,
    stride: usize,
    padding: usize,
    out: usize,
}

fn short_conv_values<T: Float>(x: &[T], weight: &[T], bias: &[T], g: Geometry, (n, out): (usize, usize)) -> Vec<T> {
    let (members, patch, pixels) = (bias.len() / out, g.patch(), g.ho * g.wo);
    let mut y = vec![T::zero(); n * pixels * out];
    y.par_chunks_mut(pixels * out).zip(x.par_chunks(g.sample_len())).enumerate().for_each(|(s, (ys, image))| {
        let member = s / (n / members);
        short_conv_sample(image, &weight[member * patch * out..][..patch * out], &bias[member * out..][..out], g, ys);
    });
    y
}

vectorised! {
    /// One sample of [`ShortConv`] into `ys`: `(pixels, out)`.
    pub(super) fn short_conv_sample<T: Float>(image: &[T], weight: &[T], bias: &[T], g: Geometry, ys: &mut [T]) {
        let out = bias.len();
        for (q, row) in ys.chunks_exact_mut(out).enumerate() {
            row.fill(T::zero());
            g.taps(q, |tap, at| add_scaled(row, image[at], &weight[tap * out..][..out]));
            // Last, as the GEMM's column of ones adds it.
            row.iter_mut().zip(bias).for_each(|(r, &b)| *r += b);
        }
    }
}

impl Kernel<3> for ShortConv {
    const NAME: &'static str = "short-conv";

    fn shapes(&self, [x, _, _]: [&[usize]; 3]) -> Vec<Shape> {
        let g = Geometry::new(x, self.k, self.stride, self.padding);
        vec![Shape::from((x[0] * g.ho * g.wo, self.out))]
    }

    fn run<T: Float>(&self, [x, weight, bias]: [&[T]; 3], dims: &[usize]) -> Vec<Vec<T>> {
        let g = Geometry::new(dims, self.k, self.stride, self.padding);
        vec![short_conv_values(x, weight, bias, g, (dims[0], self.out))]
    }
}

/// A convolution of graph-free `x (n, h, w, c)` with a short patch: `(n * ho * wo, out)` from the
/// weight matrix `(patch, out)` and bias `(out)` (an ensemble's: `(members, patch, out)` and
/// `(members, out)`), the values of im2col's GEMM up to the order of the sums.
pub fn short_conv(x: &Tensor, weight: &Tensor, bias: &Tensor, k: usize, stride: usize, padding: usize) -> Result<Tensor> {
    let out = bias.dim(candle_core::D::Minus1)?;
    apply(&ShortConv { k, stride, padding, out }, [x, weight, bias]).map(|mut t| t.remove(0))
}

vectorised! {
    /// One sample's weight-matrix gradient `(patch, out)` followed by its bias gradient `(out)`,
    /// from the sample's image and output gradient `(pixels, out)`.
    fn sample_grads<T: Float>(image: &[T], grad: &[T], g: Geometry, out: usize) -> Vec<T> {
        let patch = g.patch();
        let mut sums = vec![T::zero(); (patch + 1) * out];
        let (weight, bias) = sums.split_at_mut(patch * out);
        for (q, row) in grad.chunks_exact(out).enumerate() {
            g.taps(q, |tap, at| add_scaled(&mut weight[tap * out..][..out], image[at], row));
            bias.iter_mut().zip(row).for_each(|(b, &r)| *b += r);
        }
        sums
    }
}

/// The weight gradients: `x (n, h, w, c)` and the output gradient `(n * ho * wo, out)` give, per
/// group of samples, the weight matrix's gradient `(groups, patch, out)` and the bias's
/// `(groups, out)`.
struct ShortConvGrads {
    k: usize,
    stride: usize,
    padding: usize,
    groups: usize,
}

fn short_conv_grads_values<T: Float>(x: &[T], grad: &[T], g: Geometry, (n, groups): (usize, usize)) -> Vec<Vec<T>> {
    let pixels = g.ho * g.wo;
    let out = grad.len() / (n * pixels);
    let patch = g.patch();
    // Per sample: the weight matrix's gradient and, in its last row, the bias's.
    let per_sample: Vec<Vec<T>> =
        x.par_chunks(g.sample_len()).zip(grad.par_chunks(pixels * out)).map(|(image, grad)| sample_grads(image, grad, g, out)).collect();
    let (mut weight, mut bias) = (vec![T::zero(); groups * patch * out], vec![T::zero(); groups * out]);
    let per_group = n / groups;
    for (s, sums) in per_sample.iter().enumerate() {
        let group = s / per_group;
        let (w, b) = sums.split_at(patch * out);
        weight[group * patch * out..][..patch * out].iter_mut().zip(w).for_each(|(a, &v)| *a += v);
        bias[group * out..][..out].iter_mut().zip(b).for_each(|(a, &v)| *a += v);
    }
    vec![weight, bias]
}

impl Kernel<2> for ShortConvGrads {
    const NAME: &'static str = "short-conv-grads";

    fn shapes(&self, [x, grad]: [&[usize]; 2]) -> Vec<Shape> {
        let patch = self.k * self.k * x[3];
        vec![Shape::from((self.groups, patch, grad[1])), Shape::from((self.groups, grad[1]))]
    }

    fn run<T: Float>(&self, [x, grad]: [&[T]; 2], dims: &[usize]) -> Vec<Vec<T>> {
        short_conv_grads_values(x, grad, Geometry::new(dims, self.k, self.stride, self.padding), (dims[0], self.groups))
    }
}

/// The weight and bias gradients of a short-patch convolution of graph-free `x (n, h, w, c)` from
/// its output gradient `(n * ho * wo, out)`, summed per group of samples: `(groups, patch, out)`
/// (rows in im2col's column order) and `(groups, out)`.
pub fn short_conv_grads(x: &Tensor, grad: &Tensor, k: usize, stride: usize, padding: usize, groups: usize) -> Result<(Tensor, Tensor)> {
    let mut out = apply(&ShortConvGrads { k, stride, padding, groups }, [x, grad])?.into_iter();
    Ok((out.next().expect("the weight gradient"), out.next().expect("the bias gradient")))
}

#[cfg(test)]
mod tests {
    use super::super::testing::{max_difference, random};
    use super::*;

    #[test]
    fn short_convolutions_equal_im2col_and_its_gemms() {
        // Strides, paddings past the kernel, several channels, odd sides, ensembles of 2 members, 2 groups.
        for (k, stride, padding, c, side, members) in [(3, 1, 3, 1, 7, 1), (3, 2, 1, 1, 8, 2), (1, 1, 0, 4, 5, 1), (2, 1, 0, 3, 6, 2)] {
            let (n, out) = (4, 5);
            let x = random(&[n, side, side, c], 1);
            let weight = random(&[members, k * k * c, out], 2);
            let bias = random(&[members, out], 3);
            let cols = super::super::im2col(&x, k, stride, padding).unwrap();
            let per_member = cols.reshape((members, (), k * k * c)).unwrap();
            let expected = per_member.matmul(&weight).unwrap().broadcast_add(&bias.unsqueeze(1).unwrap()).unwrap();
            let y = short_conv(&x, &weight, &bias, k, stride, padding).unwrap();
            assert!(max_difference(&expected, &y) < 1e-13, "forward k {k} s {stride} p {padding}");
            let grad = random(y.dims(), 4);
            let groups = 2;
            let (dw, db) = short_conv_grads(&x, &grad, k, stride, padding, groups).unwrap();
            let g = grad.reshape((groups, (), out)).unwrap();
            let expected_dw = cols.reshape((groups, (), k * k * c)).unwrap().transpose(1, 2).unwrap().matmul(&g).unwrap();
            assert!(max_difference(&dw, &expected_dw) < 1e-12, "weight gradient k {k} s {stride} p {padding}");
            assert!(max_difference(&db, &g.sum(1).unwrap()) < 1e-12, "bias gradient k {k} s {stride} p {padding}");
        }
    }
}
