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
}

vectorised! {
    fn im2col_values<T: Float>(x: &[T], patches: Im2col, (n, h, w, c): (usize, usize, usize, usize)) -> Vec<T> {
        let Im2col { kernel: k, stride: s, padding: p, ones } = patches;
        let (ho, wo) = (patches.out_side(h), patches.out_side(w));
        let row = patches.row(c);
        let mut out = vec![T::zero(); n * ho * wo * row];
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
                if ones {
                    patch[row - 1] = T::one();
                }
            }
        });
        out
    }
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
    fn col2im_values<T: Float>(cols: &[T], op: Col2im) -> Vec<T> {
        let Im2col { kernel: k, stride: s, padding: p, .. } = op.patches;
        let (n, h, w, c) = op.input;
        let (ho, wo) = (op.patches.out_side(h), op.patches.out_side(w));
        let row = k * k * c;
        let mut out = vec![T::zero(); n * h * w * c];
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
