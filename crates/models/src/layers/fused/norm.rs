//! Instance norm (statistics, normalisation, backward) and ReLU's backward.

use super::*;

/// Instance-norm statistics of `x (n, m, c)`: `(n, 2, c)` holding the mean and 1/sqrt(var + eps).
struct Stats;

vectorised! {
    /// One sample's statistics (`m` rows of `c` channels) into `o`: the means, then 1/sqrt(var + eps).
    pub(super) fn sample_stats<T: Float>(sample: &[T], (m, c): (usize, usize), o: &mut [T]) {
        let mean: Vec<f64> = channel_sums(sample, c, |_, v| v.to()).into_iter().map(|s| s / m as f64).collect();
        let var = channel_sums(sample, c, |k, v| (v.to() - mean[k]).powi(2));
        for k in 0..c {
            o[k] = T::of(mean[k]);
            o[c + k] = T::of(1.0 / (var[k] / m as f64 + EPS).sqrt());
        }
    }
}

fn stats<T: Float>(x: &[T], (n, m, c): (usize, usize, usize)) -> Vec<T> {
    let mut out = vec![T::zero(); n * 2 * c];
    out.par_chunks_mut(2 * c).zip(x.par_chunks(m * c)).for_each(|(o, sample)| sample_stats(sample, (m, c), o));
    out
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
    /// One sample of [`Normalise`] into `o`, from its statistics `st` `(2, c)`.
    fn normalise_sample<T: Float>(o: &mut [T], sample: &[T], st: &[T], c: usize) {
        let (mean, rstd) = st.split_at(c);
        for (orow, xrow) in o.chunks_exact_mut(c).zip(sample.chunks_exact(c)) {
            for k in 0..c {
                orow[k] = (xrow[k] - mean[k]) * rstd[k];
            }
        }
    }
}

fn normalise_values<T: Float>(x: &[T], stats: &[T], (m, c): (usize, usize)) -> Vec<T> {
    let mut out = vec![T::zero(); x.len()];
    out.par_chunks_mut(m * c)
        .zip(x.par_chunks(m * c))
        .zip(stats.par_chunks(2 * c))
        .for_each(|((o, sample), st)| normalise_sample(o, sample, st, c));
    out
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
    /// One sample of [`NormBackward`] into `o`: `g` and `xhat` `(m, c)`, `rstd` `(c)`.
    fn norm_backward_sample<T: Float>(o: &mut [T], (g, xhat, rstd): (&[T], &[T], &[T]), c: usize) {
        let m = g.len() / c;
        let mut sum_g = vec![0f64; c];
        let mut sum_gx = vec![0f64; c];
        for (grow, xrow) in g.chunks_exact(c).zip(xhat.chunks_exact(c)) {
            for k in 0..c {
                sum_g[k] += grow[k].to();
                sum_gx[k] += (grow[k] * xrow[k]).to();
            }
        }
        let mean_g: Vec<T> = sum_g.iter().map(|s| T::of(s / m as f64)).collect();
        let mean_gx: Vec<T> = sum_gx.iter().map(|s| T::of(s / m as f64)).collect();
        for ((orow, grow), xrow) in o.chunks_exact_mut(c).zip(g.chunks_exact(c)).zip(xhat.chunks_exact(c)) {
            for k in 0..c {
                orow[k] = (grow[k] - mean_g[k] - xrow[k] * mean_gx[k]) * rstd[k];
            }
        }
    }
}

fn norm_backward_values<T: Float>(g: &[T], xhat: &[T], rstd: &[T], (m, c): (usize, usize)) -> Vec<T> {
    let mut out = vec![T::zero(); g.len()];
    let samples = g.par_chunks(m * c).zip(xhat.par_chunks(m * c)).zip(rstd.par_chunks(c));
    out.par_chunks_mut(m * c).zip(samples).for_each(|(o, ((g, xhat), rstd))| norm_backward_sample(o, (g, xhat, rstd), c));
    out
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
    /// [`ReluBackward`] of one run of values into `o`.
    fn relu_backward_run<T: Float>(o: &mut [T], g: &[T], y: &[T]) {
        for ((o, &g), &y) in o.iter_mut().zip(g).zip(y) {
            *o = if y > T::zero() { g } else { T::zero() };
        }
    }
}

fn relu_backward_values<T: Float>(g: &[T], y: &[T]) -> Vec<T> {
    let mut out = vec![T::zero(); g.len()];
    const CHUNK: usize = 1 << 14;
    out.par_chunks_mut(CHUNK).zip(g.par_chunks(CHUNK).zip(y.par_chunks(CHUNK))).for_each(|(o, (g, y))| relu_backward_run(o, g, y));
    out
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
