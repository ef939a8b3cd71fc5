use crate::arch;
use crate::layers::{Layer, Mode};
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

    /// Logits `(n, classes)` for images `(n, C, H, W)`.
    pub fn forward(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        self.body.forward(x, mode)
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
