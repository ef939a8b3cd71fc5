use candle_core::{DType, Device, Result, Shape, Tensor, Var};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A named trainable tensor of a network.
#[derive(Clone, Debug)]
pub struct Param {
    pub name: String,
    pub var: Var,
}

/// A layer's handle on one of its parameters: the variable and its position in the network's list.
#[derive(Clone, Debug)]
pub struct ParamRef {
    pub index: usize,
    pub var: Var,
}

/// Creates parameters in forward order with PyTorch's default initialisation. For an ensemble of
/// networks, each parameter is stacked `(members, *shape)`, member k drawn from its own seed exactly
/// as a single network of that seed draws it.
pub struct ParamInit {
    rngs: Vec<ChaCha8Rng>,
    dtype: DType,
    device: Device,
    params: Vec<Param>,
}

impl ParamInit {
    pub fn new(seed: u64, dtype: DType, device: &Device) -> Self {
        Self::ensemble(&[seed], dtype, device)
    }

    /// One network per seed (at least one); parameters stacked when there are several.
    pub fn ensemble(seeds: &[u64], dtype: DType, device: &Device) -> Self {
        assert!(!seeds.is_empty(), "an ensemble has at least one network");
        let rngs = seeds.iter().map(|&s| ChaCha8Rng::seed_from_u64(s)).collect();
        ParamInit { rngs, dtype, device: device.clone(), params: Vec::new() }
    }

    /// Networks whose parameters are stacked (1: plain parameters).
    pub fn members(&self) -> usize {
        self.rngs.len()
    }

    pub fn dtype(&self) -> DType {
        self.dtype
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    fn add(&mut self, name: String, values: Vec<f64>, shape: Shape) -> Result<ParamRef> {
        let shape = match self.members() {
            1 => shape,
            k => std::iter::once(k).chain(shape.dims().iter().copied()).collect::<Vec<_>>().into(),
        };
        let t = Tensor::from_vec(values, shape, &self.device)?.to_dtype(self.dtype)?;
        let var = Var::from_tensor(&t)?;
        self.params.push(Param { name, var: var.clone() });
        Ok(ParamRef { index: self.params.len() - 1, var })
    }

    /// Uniform(-bound, bound): PyTorch's kaiming-uniform(a = sqrt 5) for weights and its bias
    /// initialisation both reduce to bound = 1 / sqrt(fan_in).
    pub fn uniform(&mut self, name: String, shape: impl Into<Shape>, bound: f64) -> Result<ParamRef> {
        let shape = shape.into();
        let n = shape.elem_count();
        let values = self.rngs.iter_mut().flat_map(|rng| (0..n).map(|_| rng.random_range(-bound..bound)).collect::<Vec<_>>()).collect();
        self.add(name, values, shape)
    }

    pub fn constant(&mut self, name: String, shape: impl Into<Shape>, value: f64) -> Result<ParamRef> {
        let shape = shape.into();
        self.add(name, vec![value; shape.elem_count() * self.members()], shape)
    }

    pub fn finish(self) -> Vec<Param> {
        self.params
    }
}
