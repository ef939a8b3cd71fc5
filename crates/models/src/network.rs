use crate::arch;
use crate::layers::{Backward, Forward, Layer, Mode};
use crate::loss::{cross_entropy, cross_entropy_grad};
use crate::params::{Param, ParamInit};
use crate::spec::{Arch, ModelSpec, NormKind};
use candle_core::{DType, Device, Result, Tensor, Var};

/// A network with its parameters: what the engine trains and differentiates.
pub struct Network {
    spec: ModelSpec,
    body: Box<dyn Layer>,
    params: Vec<Param>,
}

impl Network {
    /// A freshly initialised network for inputs of `input` = (C, H, W) and `classes` outputs.
    pub fn new(
        spec: &ModelSpec,
        input: (usize, usize, usize),
        classes: usize,
        seed: u64,
        dtype: DType,
        device: &Device,
    ) -> Result<Network> {
        let mut init = ParamInit::new(seed, dtype, device);
        let init = &mut init;
        let body: Box<dyn Layer> = match spec.arch {
            Arch::ConvNet => Box::new(arch::convnet(init, spec, input, classes)?),
            Arch::Mlp => Box::new(arch::mlp(init, input, classes)?),
            Arch::LeNet => Box::new(arch::lenet(init, input, classes)?),
            Arch::AlexNet => Box::new(arch::alexnet(init, spec.norm, input, classes)?),
            Arch::Vgg11 => Box::new(arch::vgg11(init, spec.norm, input, classes)?),
            Arch::ResNet18 => Box::new(arch::resnet18(init, spec.norm, false, input, classes)?),
            Arch::ResNet18Ap => Box::new(arch::resnet18(init, spec.norm, true, input, classes)?),
        };
        let params = std::mem::replace(init, ParamInit::new(0, dtype, device)).finish();
        Ok(Network { spec: *spec, body, params })
    }

    pub fn spec(&self) -> &ModelSpec {
        &self.spec
    }

    /// Logits `(n, classes)` for images `(n, C, H, W)`: inference (and batch-norm statistics in
    /// `Train` mode), with no graph through the parameters.
    pub fn forward(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        self.body.forward(&channels_last(x)?, &mut Forward::new(mode))
    }

    /// Logits through `forward`, whatever it records.
    pub(crate) fn forward_with(&self, x: &Tensor, forward: &mut Forward) -> Result<Tensor> {
        self.body.forward(&channels_last(x)?, forward)
    }

    /// Logits with candle's autodiff reaching the parameters: the reference that the explicit
    /// backward is tested against (with `CANDLE_GRAD_DO_NOT_DETACH`, to second order).
    pub fn forward_autodiff(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        self.body.forward(&channels_last(x)?, &mut Forward::autodiff(mode))
    }

    /// The mean cross-entropy on `(images, one-hot targets)` and its gradient with respect to every
    /// parameter, by the layers' explicit backward. The batch is `groups` equal, contiguous groups
    /// (one per class): each gradient is `(groups, *shape)`, the gradient of the mean loss of that
    /// group, and the loss is the mean over all images. The gradients are an ordinary tensor
    /// expression: differentiable (first order, by candle) with respect to tracked images, and
    /// graph-free for plain ones.
    pub fn loss_and_grads(&self, images: &Tensor, targets: &Tensor, mode: Mode, groups: usize) -> Result<(Tensor, Vec<Tensor>)> {
        let n = images.dim(0)?;
        if groups == 0 || n % groups != 0 {
            candle_core::bail!("loss_and_grads: {n} images do not split into {groups} equal groups")
        }
        let mut forward = Forward::recording(mode);
        let logits = self.body.forward(&channels_last(images)?, &mut forward)?;
        let loss = cross_entropy(&logits.detach(), targets)?;
        let tape = forward.tape.take().expect("recording forward has a tape");
        let mut backward = Backward::new(tape, groups, mode, self.params.len());
        self.body.backward(&cross_entropy_grad(&logits, targets, n / groups)?, &mut backward, false)?;
        Ok((loss, backward.finish(&self.params)?))
    }

    /// Gradients of the mean cross-entropy of the whole batch, shapes as the parameters.
    pub fn param_grads(&self, images: &Tensor, targets: &Tensor, mode: Mode) -> Result<Vec<Tensor>> {
        self.loss_and_grads(images, targets, mode, 1)?.1.into_iter().map(|g| g.squeeze(0)).collect()
    }

    /// Parameters in forward order, shapes output-first.
    pub fn params(&self) -> &[Param] {
        &self.params
    }

    pub fn vars(&self) -> Vec<Var> {
        self.params.iter().map(|p| p.var.clone()).collect()
    }

    pub fn num_params(&self) -> usize {
        self.params.iter().map(|p| p.var.elem_count()).sum()
    }

    /// Batch-norm networks need their statistics set from real images and frozen before matching.
    pub fn has_batch_norm(&self) -> bool {
        self.spec.norm == NormKind::Batch && self.spec.arch != Arch::Mlp && self.spec.arch != Arch::LeNet
    }
}

/// `(n, C, H, W)` -> `(n, H, W, C)`, the layout of every layer.
fn channels_last(x: &Tensor) -> Result<Tensor> {
    x.permute((0, 2, 3, 1))?.contiguous()
}
