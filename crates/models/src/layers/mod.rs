//! One layer per file. Activations flow channels-last, `(n, h, w, c)`, so that every convolution is
//! one large GEMM over all pixels (im2col); parameters keep PyTorch's shapes.
//!
//! Each layer has a forward pass and an explicit backward pass, both written with candle tensor
//! operations: the backward computes the parameter and input gradients from values its forward saved
//! on a [`Tape`]. Because the backward is an ordinary tensor expression, gradients computed from
//! tracked inputs (synthetic images) stay differentiable by candle's normal first-order `backward()`,
//! and gradients computed from plain tensors (real images, training) build no graph at all.

mod act;
mod block;
mod conv;
pub mod fused;
mod linear;
mod norm;
mod pool;
mod sequential;

pub use act::Act;
pub use block::{ConvBlock, NormReluPool};
pub use conv::{col2im, im2col, Conv2d};
pub use linear::Linear;
pub use norm::{BatchNorm2d, ChannelAffine, ElementAffine, Standardise};
pub use pool::Pool2d;
pub use sequential::{Flatten, Sequential};

use crate::params::ParamRef;
use candle_core::{Result, Tensor};

/// Whether batch-norm layers use and update batch statistics (`Train`) or use their running
/// statistics (`Eval`, also the "frozen" mode of the matching step).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Train,
    Eval,
}

/// What a forward pass needs besides its input.
pub struct Forward {
    pub mode: Mode,
    /// Parameters as candle variables (autodiff reaches them: the reference path of the tests) or as
    /// detached constants (the explicit backward: no graph through the parameters).
    pub autodiff: bool,
    /// Where layers save what their backward needs; `None` for inference.
    pub tape: Option<Tape>,
    /// Elements of the largest tensor seen in this pass (saved ones, and what layers [`observe`](Forward::observe)).
    pub largest: usize,
    /// Networks of the ensemble whose parameters are stacked `(members, *shape)`; the batch is
    /// `members` equal, contiguous blocks, block k run through network k (1: one plain network).
    pub members: usize,
}

impl Forward {
    pub fn new(mode: Mode) -> Forward {
        Forward { mode, autodiff: false, tape: None, largest: 0, members: 1 }
    }

    pub fn recording(mode: Mode) -> Forward {
        Forward { tape: Some(Tape::default()), ..Forward::new(mode) }
    }

    pub fn autodiff(mode: Mode) -> Forward {
        Forward { autodiff: true, ..Forward::new(mode) }
    }

    /// The same pass through an ensemble of `members` networks.
    pub fn of_members(self, members: usize) -> Forward {
        Forward { members, ..self }
    }

    /// The value of a parameter for this pass.
    pub fn param(&self, p: &ParamRef) -> Tensor {
        if self.autodiff {
            p.var.as_tensor().clone()
        } else {
            p.var.as_tensor().detach()
        }
    }

    /// Notes the size of a transient tensor of the pass (for [`crate::Footprint`]).
    pub fn observe(&mut self, t: &Tensor) {
        self.largest = self.largest.max(t.elem_count());
    }

    /// Saves what the layer's backward will need (nothing when not recording).
    pub fn save(&mut self, saved: Saved) {
        saved.tensors().into_iter().for_each(|t| self.observe(t));
        if let Some(tape) = &mut self.tape {
            tape.0.push(saved);
        }
    }
}

/// What one layer saved in its forward pass for its backward, by what it is.
pub enum Saved {
    /// The layer's input: what a weight gradient (convolution, linear, affine) multiplies.
    Input(Tensor),
    /// The layer's output: what an activation's derivative reads.
    Output(Tensor),
    /// A normalisation's normalised input and reciprocal standard deviation.
    Normalised { xhat: Tensor, rstd: Tensor },
    /// A pooling layer's input dims, with max pooling's masks of the window maxima (one per offset).
    Pooled { dims: Vec<usize>, masks: Vec<Tensor> },
    /// The input's dims alone (flatten).
    Shape(Vec<usize>),
}

impl Saved {
    const INPUT: &'static str = "an input";
    const OUTPUT: &'static str = "an output";
    const NORMALISED: &'static str = "a normalisation";
    const POOLED: &'static str = "a pooling";
    const SHAPE: &'static str = "a shape";

    fn tensors(&self) -> Vec<&Tensor> {
        match self {
            Saved::Input(t) | Saved::Output(t) => vec![t],
            Saved::Normalised { xhat, rstd } => vec![xhat, rstd],
            Saved::Pooled { masks, .. } => masks.iter().collect(),
            Saved::Shape(_) => vec![],
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Saved::Input(_) => Self::INPUT,
            Saved::Output(_) => Self::OUTPUT,
            Saved::Normalised { .. } => Self::NORMALISED,
            Saved::Pooled { .. } => Self::POOLED,
            Saved::Shape(_) => Self::SHAPE,
        }
    }

    /// A layer's backward found another layer's entry: the forward and backward orders differ.
    fn mismatch(&self, expected: &str) -> candle_core::Error {
        candle_core::Error::Msg(format!("backward: expected {expected} entry on the tape, found {}", self.kind()))
    }

    pub fn input(self) -> Result<Tensor> {
        match self {
            Saved::Input(x) => Ok(x),
            other => Err(other.mismatch(Self::INPUT)),
        }
    }

    pub fn output(self) -> Result<Tensor> {
        match self {
            Saved::Output(y) => Ok(y),
            other => Err(other.mismatch(Self::OUTPUT)),
        }
    }

    /// `(xhat, rstd)`.
    pub fn normalised(self) -> Result<(Tensor, Tensor)> {
        match self {
            Saved::Normalised { xhat, rstd } => Ok((xhat, rstd)),
            other => Err(other.mismatch(Self::NORMALISED)),
        }
    }

    /// `(input dims, masks)`.
    pub fn pooled(self) -> Result<(Vec<usize>, Vec<Tensor>)> {
        match self {
            Saved::Pooled { dims, masks } => Ok((dims, masks)),
            other => Err(other.mismatch(Self::POOLED)),
        }
    }

    pub fn shape(self) -> Result<Vec<usize>> {
        match self {
            Saved::Shape(dims) => Ok(dims),
            other => Err(other.mismatch(Self::SHAPE)),
        }
    }
}

/// Saved values, last layer on top: the backward pops them in reverse order.
#[derive(Default)]
pub struct Tape(Vec<Saved>);

impl Tape {
    /// Elements of every saved value.
    pub fn elements(&self) -> usize {
        self.0.iter().flat_map(Saved::tensors).map(Tensor::elem_count).sum()
    }
}

/// What a backward pass needs besides the output gradient, and where it puts parameter gradients.
pub struct Backward {
    tape: Tape,
    /// The batch is `groups` equal, contiguous groups (one per class); every parameter gradient gets
    /// a leading dimension of this size, one gradient per group.
    pub groups: usize,
    pub mode: Mode,
    /// As [`Forward::members`]; an ensemble's groups are its members, so each network's gradient
    /// has its parameter's stacked shape.
    pub members: usize,
    grads: Vec<Option<Tensor>>,
}

impl Backward {
    pub fn new(tape: Tape, groups: usize, mode: Mode, num_params: usize) -> Backward {
        Backward { tape, groups, mode, members: 1, grads: vec![None; num_params] }
    }

    /// The backward of an ensemble of `members` networks: one group per network (a plain network,
    /// `members == 1`, keeps its groups).
    pub fn of_members(self, members: usize) -> Backward {
        let groups = if members > 1 { members } else { self.groups };
        Backward { members, groups, ..self }
    }

    /// The entry `depth` places under the top of the tape (0: what [`Backward::pop`] returns next).
    pub fn peek(&self, depth: usize) -> Result<&Saved> {
        self.tape
            .0
            .iter()
            .rev()
            .nth(depth)
            .ok_or_else(|| candle_core::Error::Msg("backward: the tape is shorter than a layer's entries".into()))
    }

    pub fn pop(&mut self) -> Result<Saved> {
        self.tape.0.pop().ok_or_else(|| candle_core::Error::Msg("backward: the tape is empty (forward did not record)".into()))
    }

    pub fn param(&self, p: &ParamRef) -> Tensor {
        p.var.as_tensor().detach()
    }

    /// Adds `grad` (shape `(groups, *param shape)`) to the gradient of `p`.
    pub fn accumulate(&mut self, p: &ParamRef, grad: Tensor) -> Result<()> {
        let slot = &mut self.grads[p.index];
        *slot = Some(match slot.take() {
            Some(g) => (g + grad)?,
            None => grad,
        });
        Ok(())
    }

    /// Gradients in parameter order, each `(groups, *shape)`.
    pub fn finish(self, params: &[crate::Param]) -> Result<Vec<Tensor>> {
        if !self.tape.0.is_empty() {
            candle_core::bail!("backward: {} saved entries left on the tape", self.tape.0.len())
        }
        self.grads
            .into_iter()
            .zip(params)
            .map(|(g, p)| match g {
                Some(g) => Ok(g),
                None if self.members > 1 => p.var.zeros_like(),
                None => {
                    let mut dims = vec![self.groups];
                    dims.extend_from_slice(p.var.dims());
                    Tensor::zeros(dims, p.var.dtype(), p.var.device())
                }
            })
            .collect()
    }
}

pub trait Layer: Send + Sync {
    fn forward(&self, x: &Tensor, ctx: &mut Forward) -> Result<Tensor>;
    /// Given the gradient of the loss with respect to this layer's output, accumulates the parameter
    /// gradients into `ctx` and returns the gradient with respect to the input (`None` when
    /// `need_input` is false and the layer can skip it).
    fn backward(&self, grad: &Tensor, ctx: &mut Backward, need_input: bool) -> Result<Option<Tensor>>;
}

/// `t (groups * m, d)` summed over the rows of each group: `(groups, d)`. A product with a ones
/// vector: one GEMM instead of a strided reduction.
pub fn group_row_sums(t: &Tensor, groups: usize) -> Result<Tensor> {
    let d = t.dim(candle_core::D::Minus1)?;
    let t = t.reshape((groups, (), d))?;
    let m = t.dim(1)?;
    let ones = Tensor::ones((1, 1, m), t.dtype(), t.device())?.broadcast_as((groups, 1, m))?;
    ones.matmul(&t)?.reshape((groups, d))
}

/// `x (rows, a)` times `w`: `(a, b)` for one network; `(members, a, b)` for an ensemble, whose rows
/// are `members` equal, contiguous blocks, block k times matrix k (one batched GEMM).
pub(crate) fn member_matmul(x: &Tensor, w: &Tensor, members: usize) -> Result<Tensor> {
    if members == 1 {
        return x.matmul(w);
    }
    let (a, b) = (w.dim(1)?, w.dim(2)?);
    x.reshape((members, (), a))?.matmul(w)?.reshape(((), b))
}

/// `op(x, p)` with the parameter `p` broadcast over the batch: as is for one network; for an
/// ensemble `p` is `(members, *tail)` and block k of `x` (whose last axes hold `tail`) meets `p[k]`.
pub(crate) fn member_broadcast(x: &Tensor, p: &Tensor, members: usize, op: impl Fn(&Tensor, &Tensor) -> Result<Tensor>) -> Result<Tensor> {
    if members == 1 {
        return op(x, p);
    }
    let tail = p.elem_count() / members;
    op(&x.reshape((members, (), tail))?, &p.reshape((members, 1, tail))?)?.reshape(x.shape())
}

/// A parameter with a leading member axis (`(1, *shape)` for one network).
pub(crate) fn stacked(p: &Tensor, members: usize) -> Result<Tensor> {
    if members == 1 {
        p.unsqueeze(0)
    } else {
        Ok(p.clone())
    }
}

/// A `(members, ...)` tensor made from [`stacked`] parameters, without its axis for one network.
pub(crate) fn unstacked(t: Tensor, members: usize) -> Result<Tensor> {
    if members == 1 {
        t.squeeze(0)
    } else {
        Ok(t)
    }
}

/// Per-sample sums over the middle axis of `t (n, m, c)`: `(n, 1, c)`.
pub(crate) fn sample_sums(t: &Tensor) -> Result<Tensor> {
    let (n, m, _c) = t.dims3()?;
    let ones = Tensor::ones((1, 1, m), t.dtype(), t.device())?.broadcast_as((n, 1, m))?;
    ones.matmul(t)
}
