use crate::arch;
use crate::layers::{Backward, Forward, Layer, Mode, Sequential};
use crate::loss::{cross_entropy, cross_entropy_grad, group_cross_entropy};
use crate::params::{Param, ParamInit};
use crate::spec::{Arch, ModelSpec};
use candle_core::{DType, Device, Result, Tensor, Var};

/// A network with its parameters: what the engine trains and differentiates.
pub struct Network {
    spec: ModelSpec,
    /// Every architecture's layers, the classifier (a linear layer) last.
    body: Sequential,
    params: Vec<Param>,
    /// Networks held as one (see [`Network::ensemble`]); 1 for a plain network.
    members: usize,
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
        Self::build(spec, input, classes, ParamInit::new(seed, dtype, device))
    }

    /// One network per seed, held as one: every parameter stacked `(networks, *shape)`, network k
    /// initialised exactly as `Network::new` with `seeds[k]`. A batch is `networks` equal,
    /// contiguous blocks, block k run through network k: convolutions and linear layers as batched
    /// GEMMs, norms, activations and pooling per sample as before. Batch-norm networks are refused
    /// (their statistics are per network; train them one at a time).
    pub fn ensemble(
        spec: &ModelSpec,
        input: (usize, usize, usize),
        classes: usize,
        seeds: &[u64],
        dtype: DType,
        device: &Device,
    ) -> Result<Network> {
        if seeds.len() > 1 && spec.has_batch_norm() {
            candle_core::bail!("{spec}: batch norm keeps statistics per network, so its networks cannot be held as one ensemble")
        }
        Self::build(spec, input, classes, ParamInit::ensemble(seeds, dtype, device))
    }

    fn build(spec: &ModelSpec, input: (usize, usize, usize), classes: usize, mut init: ParamInit) -> Result<Network> {
        let (members, dtype, device) = (init.members(), init.dtype(), init.device().clone());
        let init = &mut init;
        let body = match spec.arch {
            Arch::ConvNet => arch::convnet(init, spec, input, classes)?,
            Arch::Mlp => arch::mlp(init, input, classes)?,
            Arch::LeNet => arch::lenet(init, input, classes)?,
            Arch::AlexNet => arch::alexnet(init, spec.norm, input, classes)?,
            Arch::Vgg11 => arch::vgg11(init, spec.norm, input, classes)?,
            Arch::ResNet18 => arch::resnet18(init, spec.norm, false, input, classes)?,
            Arch::ResNet18Ap => arch::resnet18(init, spec.norm, true, input, classes)?,
        };
        let params = std::mem::replace(init, ParamInit::new(0, dtype, &device)).finish();
        Ok(Network { spec: *spec, body, params, members })
    }

    /// Networks held as one (1 for a plain network).
    pub fn members(&self) -> usize {
        self.members
    }

    pub fn spec(&self) -> &ModelSpec {
        &self.spec
    }

    /// Logits `(n, classes)` for images `(n, C, H, W)`: inference (and batch-norm statistics in
    /// `Train` mode), with no graph through the parameters.
    pub fn forward(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        self.body.forward(&channels_last(x)?, &mut Forward::new(mode).of_members(self.members))
    }

    /// Features `(n, d)` of images `(n, C, H, W)`: what the classifier (the last layer) takes, by
    /// inference as in [`Network::forward`]. DREAM clusters these.
    pub fn embed(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        let mut forward = Forward::new(mode).of_members(self.members);
        let (_classifier, features) = self.body.0.split_last().expect("every architecture ends with its classifier");
        features.iter().try_fold(channels_last(x)?, |x, layer| layer.forward(&x, &mut forward))
    }

    /// Logits through `forward`, whatever it records.
    pub(crate) fn forward_with(&self, x: &Tensor, forward: &mut Forward) -> Result<Tensor> {
        self.body.forward(&channels_last(x)?, forward)
    }

    /// Logits with candle's autodiff reaching the parameters: the reference that the explicit
    /// backward is tested against (with `CANDLE_GRAD_DO_NOT_DETACH`, to second order).
    pub fn forward_autodiff(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        self.body.forward(&channels_last(x)?, &mut Forward::autodiff(mode).of_members(self.members))
    }

    /// The mean cross-entropy on `(images, one-hot targets)` and its gradient with respect to every
    /// parameter, by the layers' explicit backward. The batch is `groups` equal, contiguous groups
    /// (one per class): each gradient is `(groups, *shape)`, the gradient of the mean loss of that
    /// group, and the loss is the mean over all images. The gradients are an ordinary tensor
    /// expression: differentiable (first order, by candle) with respect to tracked images, and
    /// graph-free for plain ones.
    pub fn loss_and_grads(&self, images: &Tensor, targets: &Tensor, mode: Mode, groups: usize) -> Result<(Tensor, Vec<Tensor>)> {
        let (logits, grads) = self.logits_and_grads(images, targets, mode, groups)?;
        Ok((cross_entropy(&logits, targets)?, grads))
    }

    /// An ensemble's training step: each network's mean cross-entropy on its block of the batch,
    /// `(networks)`, and each parameter's gradient per network, in the parameter's stacked shape.
    pub fn member_losses_and_grads(&self, images: &Tensor, targets: &Tensor, mode: Mode) -> Result<(Tensor, Vec<Tensor>)> {
        let (logits, grads) = self.logits_and_grads(images, targets, mode, self.members)?;
        Ok((group_cross_entropy(&logits, targets, self.members)?, grads))
    }

    /// The logits (detached) and the per-group gradients of [`Network::loss_and_grads`].
    fn logits_and_grads(&self, images: &Tensor, targets: &Tensor, mode: Mode, groups: usize) -> Result<(Tensor, Vec<Tensor>)> {
        let n = images.dim(0)?;
        if groups == 0 || n % groups != 0 {
            candle_core::bail!("loss_and_grads: {n} images do not split into {groups} equal groups")
        }
        if self.members > 1 && groups != self.members {
            candle_core::bail!("loss_and_grads: an ensemble of {} networks takes one group per network, not {groups}", self.members)
        }
        let mut forward = Forward::recording(mode).of_members(self.members);
        let logits = self.body.forward(&channels_last(images)?, &mut forward)?;
        let tape = forward.tape.take().expect("recording forward has a tape");
        let mut backward = Backward::new(tape, groups, mode, self.params.len()).of_members(self.members);
        self.body.backward(&cross_entropy_grad(&logits, targets, n / groups)?, &mut backward, false)?;
        Ok((logits.detach(), backward.finish(&self.params)?))
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
        self.spec.has_batch_norm()
    }

    /// Saves the parameters by name as safetensors (f32, on the host). Batch-norm running
    /// statistics are state, not parameters: such networks are refused rather than saved in part.
    pub fn save(&self, path: &std::path::Path) -> Result<()> {
        if self.has_batch_norm() || self.members != 1 {
            candle_core::bail!("{}: only a single network without batch norm is saved (its parameters are all its state)", self.spec)
        }
        let tensors: std::collections::HashMap<String, Tensor> = self
            .params
            .iter()
            .map(|p| Ok((p.name.clone(), p.var.as_tensor().to_dtype(DType::F32)?.to_device(&Device::Cpu)?)))
            .collect::<Result<_>>()?;
        candle_core::safetensors::save(&tensors, path)
    }

    /// Sets every parameter from a file [`Network::save`] wrote for a network of the same spec and
    /// shapes; an error names the file and the first parameter that is missing or misshapen.
    pub fn load_params(&self, path: &std::path::Path) -> Result<()> {
        let saved = candle_core::safetensors::load(path, self.params[0].var.device())
            .map_err(|e| candle_core::Error::Msg(format!("{}: {e}", path.display())))?;
        if saved.len() != self.params.len() {
            candle_core::bail!("{}: holds {} parameters, {} has {}", path.display(), saved.len(), self.spec, self.params.len())
        }
        for p in &self.params {
            match saved.get(&p.name) {
                Some(t) if t.dims() == p.var.dims() => p.var.set(&t.to_dtype(p.var.dtype())?)?,
                Some(t) => candle_core::bail!(
                    "{}: `{}` has shape {:?}, {} expects {:?}",
                    path.display(),
                    p.name,
                    t.dims(),
                    self.spec,
                    p.var.dims()
                ),
                None => candle_core::bail!("{}: no parameter `{}` of {}", path.display(), p.name, self.spec),
            }
        }
        Ok(())
    }
}

/// `(n, C, H, W)` -> `(n, H, W, C)`, the layout of every layer.
fn channels_last(x: &Tensor) -> Result<Tensor> {
    x.permute((0, 2, 3, 1))?.contiguous()
}
