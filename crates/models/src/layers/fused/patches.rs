//! im2col and col2im, each the other's backward: the patches of a convolution in one pass.

use super::*;

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

    /// Calls `f(tap, pixel)` for every tap of output pixel `q` that falls inside an `(h, w)` image:
    /// the tap's index (kernel row, kernel column) and its pixel's index in the image.
    #[inline(always)]
    fn taps(&self, q: usize, (h, w): (usize, usize), mut f: impl FnMut(usize, usize)) {
        let (k, wo) = (self.kernel, self.out_side(w));
        let (oy, ox) = (q / wo, q % wo);
        for i in 0..k {
            let Some(y) = (oy * self.stride + i).checked_sub(self.padding).filter(|&y| y < h) else { continue };
            for j in 0..k {
                let Some(x) = (ox * self.stride + j).checked_sub(self.padding).filter(|&x| x < w) else { continue };
                f(i * k + j, y * w + x);
            }
        }
    }
}

// Copies only (memcpy): no arithmetic to vectorise.
fn im2col_values<T: Float>(x: &[T], patches: Im2col, (n, h, w, c): (usize, usize, usize, usize)) -> Vec<T> {
    let (ho, wo) = (patches.out_side(h), patches.out_side(w));
    let row = patches.row(c);
    let mut out = vec![T::zero(); n * ho * wo * row];
    out.par_chunks_mut(ho * wo * row).zip(x.par_chunks(h * w * c)).for_each(|(o, image)| {
        for (q, patch) in o.chunks_exact_mut(row).enumerate() {
            patches.taps(q, (h, w), |tap, pixel| patch[tap * c..][..c].copy_from_slice(&image[pixel * c..][..c]));
            if patches.ones {
                patch[row - 1] = T::one();
            }
        }
    });
    out
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
    /// One image's patch gradients `(ho * wo, k * k * c)` added into its gradient `(h, w, c)`.
    fn add_patches<T: Float>(image: &mut [T], patches: &[T], op: Col2im) {
        let (_, h, w, c) = op.input;
        let k = op.patches.kernel;
        for (q, patch) in patches.chunks_exact(k * k * c).enumerate() {
            op.patches.taps(q, (h, w), |tap, pixel| {
                image[pixel * c..][..c].iter_mut().zip(&patch[tap * c..][..c]).for_each(|(d, &v)| *d += v);
            });
        }
    }
}

fn col2im_values<T: Float>(cols: &[T], op: Col2im) -> Vec<T> {
    let Im2col { kernel: k, .. } = op.patches;
    let (n, h, w, c) = op.input;
    let (ho, wo) = (op.patches.out_side(h), op.patches.out_side(w));
    let mut out = vec![T::zero(); n * h * w * c];
    out.par_chunks_mut(h * w * c).zip(cols.par_chunks(ho * wo * k * k * c)).for_each(|(image, patches)| add_patches(image, patches, op));
    out
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
