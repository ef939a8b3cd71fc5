use super::{fused, group_row_sums, member_broadcast, member_matmul, stacked, unstacked, Backward, Forward, Layer, Saved};
use crate::params::{ParamInit, ParamRef};
use candle_core::{Result, Tensor};

/// Output side of a convolution.
fn out_side(side: usize, k: usize, stride: usize, padding: usize) -> usize {
    (side + 2 * padding - k) / stride + 1
}

/// The patches of `x (n, h, w, c)` under a k x k kernel: `(n * ho * wo, k * k * c)`, columns ordered
/// (kernel row, kernel column, channel). A linear map of `x`, so candle's autodiff of it is its
/// adjoint (col2im) and the convolution's derivatives are again GEMMs.
pub fn im2col(x: &Tensor, k: usize, stride: usize, padding: usize) -> Result<Tensor> {
    if fused::cpu_float(x) {
        return fused::im2col(x, k, stride, padding);
    }
    let (n, h, w, c) = x.dims4()?;
    let (ho, wo) = (out_side(h, k, stride, padding), out_side(w, k, stride, padding));
    // Pad enough that every strided window of `stride * out` rows/columns fits.
    let extra_h = (k - 1 + stride * ho).saturating_sub(h + 2 * padding);
    let extra_w = (k - 1 + stride * wo).saturating_sub(w + 2 * padding);
    let xp = x.pad_with_zeros(1, padding, padding + extra_h)?.pad_with_zeros(2, padding, padding + extra_w)?;
    let mut patches = Vec::with_capacity(k * k);
    for i in 0..k {
        for j in 0..k {
            let mut p = xp.narrow(1, i, stride * ho)?.narrow(2, j, stride * wo)?;
            if stride > 1 {
                p = p.contiguous()?.reshape((n, ho, stride, wo, stride, c))?.narrow(4, 0, 1)?.narrow(2, 0, 1)?;
            }
            patches.push(p.reshape((n, ho, wo, c))?);
        }
    }
    Tensor::stack(&patches, 3)?.reshape((n * ho * wo, k * k * c))
}

/// The adjoint of [`im2col`]: patch gradients `(n * ho * wo, k * k * c)` added back at their places,
/// `(n, h, w, c)`. Each kernel row's patches are summed in a row band, then the bands are placed.
pub fn col2im(cols: &Tensor, input: (usize, usize, usize, usize), k: usize, stride: usize, padding: usize) -> Result<Tensor> {
    if fused::cpu_float(cols) {
        return fused::col2im(cols, input, k, stride, padding);
    }
    let (n, h, w, c) = input;
    let (ho, wo) = (out_side(h, k, stride, padding), out_side(w, k, stride, padding));
    let cols = cols.reshape((n, ho, wo, k * k, c))?;
    let hp = (k - 1 + stride * ho).max(padding + h);
    let wp = (k - 1 + stride * wo).max(padding + w);
    let spread = |t: Tensor, dim: usize| -> Result<Tensor> {
        if stride == 1 {
            return Ok(t);
        }
        // Put stride - 1 zeros after every entry along `dim`.
        let mut dims = t.dims().to_vec();
        let len = dims[dim];
        let t = t.unsqueeze(dim + 1)?.pad_with_zeros(dim + 1, 0, stride - 1)?;
        dims[dim] = len * stride;
        t.reshape(dims)
    };
    let mut total: Option<Tensor> = None;
    for i in 0..k {
        let mut band: Option<Tensor> = None;
        for j in 0..k {
            let p = spread(cols.narrow(3, i * k + j, 1)?.squeeze(3)?, 2)?;
            let placed = p.pad_with_zeros(2, j, wp - j - wo * stride)?;
            band = Some(match band {
                Some(b) => (b + placed)?,
                None => placed,
            });
        }
        let band = spread(band.expect("k >= 1"), 1)?;
        let placed = band.pad_with_zeros(1, i, hp - i - ho * stride)?;
        total = Some(match total {
            Some(t) => (t + placed)?,
            None => placed,
        });
    }
    total.expect("k >= 1").narrow(1, padding, h)?.narrow(2, padding, w)
}

/// 2-D convolution, square kernel, weight `(out, in, k, k)` as PyTorch; input and output channels-last.
pub struct Conv2d {
    weight: ParamRef,
    bias: Option<ParamRef>,
    c_in: usize,
    c_out: usize,
    kernel: usize,
    padding: usize,
    stride: usize,
}

impl Conv2d {
    /// Stride 1, with bias (every architecture but ResNet).
    pub fn new(init: &mut ParamInit, name: &str, c_in: usize, c_out: usize, kernel: usize, padding: usize) -> Result<Self> {
        Self::build(init, name, (c_in, c_out, kernel), 1, padding, true)
    }

    /// Without bias, any stride (ResNet, whose convolutions feed a norm layer).
    pub fn without_bias(
        init: &mut ParamInit,
        name: &str,
        (c_in, c_out, kernel): (usize, usize, usize),
        stride: usize,
        padding: usize,
    ) -> Result<Self> {
        Self::build(init, name, (c_in, c_out, kernel), stride, padding, false)
    }

    fn build(
        init: &mut ParamInit,
        name: &str,
        (c_in, c_out, kernel): (usize, usize, usize),
        stride: usize,
        padding: usize,
        bias: bool,
    ) -> Result<Self> {
        let bound = 1.0 / ((c_in * kernel * kernel) as f64).sqrt();
        let weight = init.uniform(format!("{name}.weight"), (c_out, c_in, kernel, kernel), bound)?;
        let bias = if bias { Some(init.uniform(format!("{name}.bias"), c_out, bound)?) } else { None };
        Ok(Conv2d { weight, bias, c_in, c_out, kernel, padding, stride })
    }

    /// The weight as a `(out, k * k * in)` matrix whose columns match [`im2col`]'s (per member of an
    /// ensemble: `(members, out, k * k * in)`).
    fn weight_matrix(&self, weight: &Tensor, members: usize) -> Result<Tensor> {
        let w = stacked(weight, members)?.permute((0, 1, 3, 4, 2))?.contiguous()?;
        unstacked(w.reshape((members, self.c_out, ()))?, members)
    }

    /// The transposed weight matrix `(k * k * in, out)`, contiguous: the forward GEMM's right-hand
    /// side (gemm packs a contiguous one faster than a transposed view).
    fn weight_matrix_t(&self, weight: &Tensor, members: usize) -> Result<Tensor> {
        let w = stacked(weight, members)?.permute((0, 3, 4, 2, 1))?.contiguous()?;
        unstacked(w.reshape((members, (), self.c_out))?, members)
    }

    /// The kernel flipped in both spatial axes as a `(k * k * out, in)` matrix, rows (kernel row,
    /// kernel column, output channel): the weight of the convolution that maps the output gradient
    /// to the input gradient.
    fn flipped_weight_matrix(&self, weight: &Tensor, members: usize) -> Result<Tensor> {
        let k = self.kernel;
        let reversed = Tensor::from_vec((0..k as u32).rev().collect::<Vec<_>>(), k, weight.device())?;
        let flipped = stacked(weight, members)?.index_select(&reversed, 3)?.index_select(&reversed, 4)?;
        unstacked(flipped.permute((0, 3, 4, 1, 2))?.contiguous()?.reshape((members, (), self.c_in))?, members)
    }

    /// Whether the input gradient can be the convolution of the output gradient with the flipped
    /// kernel (stride 1 and padding below the kernel size): a GEMM of the forward's shape instead
    /// of a GEMM with only `out` terms per product and col2im's scatter.
    fn transposed_backward(&self, grad: &Tensor) -> bool {
        self.stride == 1 && self.padding < self.kernel && fused::eligible(grad)
    }

    /// `(kernel, stride, padding)`.
    pub(super) fn geometry(&self) -> (usize, usize, usize) {
        (self.kernel, self.stride, self.padding)
    }

    /// For a fused forward of this convolution and what follows it: when `x` is graph-free on the
    /// CPU and the patch is short, the weight matrix and the bias the short-patch kernels take,
    /// the forward's FLOPs counted and its tape entry saved; else `None` and nothing done.
    pub(super) fn short_patch_operands(&self, x: &Tensor, ctx: &mut Forward) -> Result<Option<(Tensor, Tensor)>> {
        let Some(bias) = self.bias.as_ref().filter(|_| fused::eligible(x) && !ctx.autodiff && self.short_patch()) else {
            return Ok(None);
        };
        self.count_forward(x)?;
        let operands = (self.weight_matrix_t(&ctx.param(&self.weight), ctx.members)?, ctx.param(bias));
        ctx.save(Saved::Input(x.clone()));
        Ok(Some(operands))
    }

    /// For a fused forward of this convolution and what follows it by Winograd: when `x` is
    /// graph-free on the CPU and the convolution takes Winograd's kernels, the weight (PyTorch's
    /// layout, stacked per member) and the bias `(members, out)` with the padding, the forward's
    /// FLOPs counted and its tape entry saved; else `None` and nothing done.
    pub(super) fn winograd_operands(&self, x: &Tensor, ctx: &mut Forward) -> Result<Option<(Tensor, Tensor, usize)>> {
        let applies = fused::eligible(x) && !ctx.autodiff && fused::winograd_applies(self.kernel, self.stride, self.c_in);
        let Some(bias) = self.bias.as_ref().filter(|_| applies && !self.short_patch()) else {
            return Ok(None);
        };
        self.count_forward(x)?;
        let operands = (ctx.param(&self.weight), stacked(&ctx.param(bias), ctx.members)?, self.padding);
        ctx.save(Saved::Input(x.clone()));
        Ok(Some(operands))
    }

    /// Counts the forward's FLOPs (at the direct convolution's size) on `x (n, h, w, c)`.
    fn count_forward(&self, x: &Tensor) -> Result<()> {
        let (n, h, w, _) = x.dims4()?;
        let (k, s, p) = self.geometry();
        gradmatch_core::flops::count_product(n * out_side(h, k, s, p) * out_side(w, k, s, p), k * k * self.c_in, self.c_out);
        Ok(())
    }

    /// Whether the graph-free CPU paths compute this convolution directly instead of by im2col and
    /// GEMMs (with a bias: the direct kernels add it).
    fn short_patch(&self) -> bool {
        self.bias.is_some() && self.kernel * self.kernel * self.c_in <= fused::SHORT_PATCH
    }
}

impl Layer for Conv2d {
    fn forward(&self, x: &Tensor, ctx: &mut Forward) -> Result<Tensor> {
        let (n, h, w, _) = x.dims4()?;
        let (k, s, p, members) = (self.kernel, self.stride, self.padding, ctx.members);
        let (ho, wo) = (out_side(h, k, s, p), out_side(w, k, s, p));
        let param = ctx.param(&self.weight);
        let weight = || self.weight_matrix_t(&param, members);
        self.count_forward(x)?;
        let graph_free = fused::eligible(x) && !ctx.autodiff;
        let y = match &self.bias {
            // Graph-free on the CPU with a short patch: written directly (no patches, no GEMM).
            Some(b) if graph_free && self.short_patch() => fused::short_conv(x, &weight()?, &ctx.param(b), k, s, p)?,
            // Graph-free 3 x 3 on the CPU: Winograd's 2.25x fewer products.
            Some(b) if graph_free && fused::winograd_applies(k, s, self.c_in) => {
                let bias = stacked(&ctx.param(b), members)?;
                fused::winograd_conv(x, &param, Some(&bias), p, false)?.reshape(((), self.c_out))?
            }
            // Graph-free on the CPU: the bias is the weight matrix's last row, added by the GEMM
            // against patches that end with a 1 (no pass of its own over the output).
            Some(b) if graph_free => {
                let cols = fused::im2col_with_ones(x, k, s, p)?;
                ctx.observe(&cols);
                let rows = stacked(&ctx.param(b), members)?.unsqueeze(1)?;
                let with_bias = unstacked(Tensor::cat(&[&stacked(&weight()?, members)?, &rows], 1)?, members)?;
                member_matmul(&cols, &with_bias, members)?
            }
            bias => {
                let cols = im2col(x, k, s, p)?;
                ctx.observe(&cols);
                let y = member_matmul(&cols, &weight()?, members)?;
                match bias {
                    Some(b) => member_broadcast(&y, &ctx.param(b), members, |y, b| y.broadcast_add(b))?,
                    None => y,
                }
            }
        };
        // The input, not the patches, is kept: k*k times smaller; the patches are rebuilt in backward.
        ctx.save(Saved::Input(x.clone()));
        y.reshape((n, ho, wo, ()))
    }

    fn backward(&self, grad: &Tensor, ctx: &mut Backward, need_input: bool) -> Result<Option<Tensor>> {
        let x = ctx.pop()?.input()?;
        let (k, s, p, members) = (self.kernel, self.stride, self.padding, ctx.members);
        let (out, c_in) = (self.c_out, self.c_in);
        let g = grad.reshape(((), out))?;
        let (groups, rows) = (ctx.groups, g.dim(0)?);
        gradmatch_core::flops::count_product(rows, k * k * c_in, out);
        // dW_gᵀ = cols_gᵀ g_g, rows in (kernel row, kernel column, channel) order: this orientation
        // of the product runs at gemm's peak, g_gᵀ cols_g at 0.7-0.8 of it.
        let from_transposed = |dw_t: Tensor| dw_t.reshape((groups, k, k, c_in, out))?.permute((0, 4, 3, 1, 2))?.contiguous();
        let graph_free = fused::eligible(&x) && fused::eligible(&g);
        let (dw, db) = match &self.bias {
            Some(_) if self.short_patch() && graph_free => {
                let (dw_t, db) = fused::short_conv_grads(&x, &g, k, s, p, groups)?;
                (from_transposed(dw_t)?, Some(db))
            }
            // 3 x 3: Winograd's 2.25x fewer products, in PyTorch's layout already.
            bias if graph_free && fused::winograd_applies(k, s, c_in) => {
                let (n, h, w, _) = x.dims4()?;
                let grad = g.reshape((n, out_side(h, k, s, p), out_side(w, k, s, p), out))?;
                let dw = fused::winograd_weight_gradient(&x, &grad, p, groups)?;
                (dw, bias.as_ref().map(|_| group_row_sums(&g, groups)).transpose()?)
            }
            bias => {
                let cols = im2col(&x, k, s, p)?.reshape((groups, (), k * k * c_in))?;
                let dw_t = cols.transpose(1, 2)?.matmul(&g.reshape((groups, (), out))?)?;
                // The patches are the largest buffer of the pass: gone before the patch gradient exists.
                drop(cols);
                (from_transposed(dw_t)?, bias.as_ref().map(|_| group_row_sums(&g, groups)).transpose()?)
            }
        };
        ctx.accumulate(&self.weight, dw)?;
        if let (Some(b), Some(db)) = (&self.bias, db) {
            ctx.accumulate(b, db)?;
        }
        if !need_input {
            return Ok(None);
        }
        gradmatch_core::flops::count_product(rows, k * k * c_in, out);
        let weight = ctx.param(&self.weight);
        if self.transposed_backward(grad) && fused::winograd_applies(k, 1, out) {
            return Ok(Some(fused::winograd_conv(grad, &weight, None, k - 1 - p, true)?));
        }
        if self.transposed_backward(grad) {
            let grad_cols = fused::im2col(grad, k, 1, k - 1 - p)?;
            let flipped = self.flipped_weight_matrix(&weight, members)?;
            return Ok(Some(member_matmul(&grad_cols, &flipped, members)?.reshape(x.dims4()?)?));
        }
        let dcols = member_matmul(&g, &self.weight_matrix(&weight, members)?, members)?;
        Ok(Some(col2im(&dcols, x.dims4()?, k, s, p)?))
    }
}
