use candle_core::backprop::GradStore;
use candle_core::Shape;
use candle_core::{Result, Tensor, Var};
use gradmatch_models::layers::fused::{self, apply, Float, Kernel};
use gradmatch_models::vectorised;
use rayon::prelude::*;

/// SGD with momentum and weight decay, PyTorch's semantics (candle_nn's SGD has no momentum):
/// d = g + wd * p; buf = momentum * buf + d (buf = d on the first step); p -= lr * buf.
pub struct Sgd {
    vars: Vec<Var>,
    buffers: Vec<Option<Tensor>>,
    pub lr: f64,
    momentum: f64,
    weight_decay: f64,
}

impl Sgd {
    pub fn new(vars: Vec<Var>, lr: f64, momentum: f64, weight_decay: f64) -> Sgd {
        let buffers = vec![None; vars.len()];
        Sgd { vars, buffers, lr, momentum, weight_decay }
    }

    /// One update; `grads[i]` is the gradient of `vars[i]` (`None`: the variable took no part).
    pub fn step(&mut self, grads: &[Option<Tensor>]) -> Result<()> {
        for ((var, grad), buf) in self.vars.iter().zip(grads).zip(self.buffers.iter_mut()) {
            let Some(grad) = grad else { continue };
            if fused::eligible(grad) && fused::eligible(&var.as_tensor().detach()) {
                let (m, first) = (self.momentum, buf.is_none());
                let update = SgdUpdate { lr: self.lr, momentum: m, weight_decay: self.weight_decay, first };
                let (next, buffer) = sgd(var.as_tensor(), grad, buf.as_ref().unwrap_or(grad), update)?;
                var.set(&next)?;
                if m != 0.0 {
                    *buf = Some(buffer);
                }
                continue;
            }
            let mut d = grad.detach();
            if self.weight_decay != 0.0 {
                d = (d + (var.as_tensor() * self.weight_decay)?)?;
            }
            if self.momentum != 0.0 {
                // Detached: a buffer that kept its graph would keep every earlier step's buffer alive.
                d = match buf.take() {
                    Some(b) => ((b * self.momentum)? + d)?.detach(),
                    None => d.detach(),
                };
                *buf = Some(d.clone());
            }
            var.set(&(var.as_tensor() - (d * self.lr)?)?)?;
        }
        Ok(())
    }

    /// One update with a gradient for every variable, each of the variable's shape or with a leading
    /// group dimension of 1 (as [`Network::loss_and_grads`](gradmatch_models::Network::loss_and_grads) gives).
    pub fn step_all(&mut self, grads: &[Tensor]) -> Result<()> {
        let grads = grads.iter().zip(&self.vars).map(|(g, v)| g.reshape(v.shape()).map(Some)).collect::<Result<Vec<_>>>()?;
        self.step(&grads)
    }

    /// Forgets the momentum, as a newly built optimiser starts.
    pub fn clear_momentum(&mut self) {
        self.buffers.iter_mut().for_each(|b| *b = None);
    }

    /// Momentum buffers (zeros where no step was taken yet), for checkpoints.
    pub fn buffers(&self) -> Result<Vec<Tensor>> {
        self.vars
            .iter()
            .zip(&self.buffers)
            .map(|(v, b)| match b {
                Some(b) => Ok(b.clone()),
                None => v.zeros_like(),
            })
            .collect()
    }

    pub fn set_buffers(&mut self, buffers: Vec<Tensor>) {
        self.buffers = buffers.into_iter().map(Some).collect();
    }
}

/// [`Sgd`]'s hyper-parameters, for [`candle_nn::Optimizer::new`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SgdConfig {
    pub lr: f64,
    pub momentum: f64,
    pub weight_decay: f64,
}

/// candle-nn's optimiser interface, for code written against it (`backward_step(&loss)` from
/// candle's autodiff). gradmatch's own loops step from the layers' explicit gradients, by position.
impl candle_nn::Optimizer for Sgd {
    type Config = SgdConfig;

    fn new(vars: Vec<Var>, c: SgdConfig) -> Result<Sgd> {
        Ok(Sgd::new(vars, c.lr, c.momentum, c.weight_decay))
    }

    fn step(&mut self, grads: &GradStore) -> Result<()> {
        let grads: Vec<Option<Tensor>> = self.vars.iter().map(|v| grads.get(v.as_tensor()).cloned()).collect();
        Sgd::step(self, &grads)
    }

    fn learning_rate(&self) -> f64 {
        self.lr
    }

    fn set_learning_rate(&mut self, lr: f64) {
        self.lr = lr;
    }
}

/// SGD's hyper-parameters for one update, PyTorch's semantics.
#[derive(Debug, Clone, Copy)]
pub struct SgdUpdate {
    pub lr: f64,
    pub momentum: f64,
    pub weight_decay: f64,
    /// No momentum buffer yet: it starts as the step's direction.
    pub first: bool,
}

vectorised! {
    /// One run of [`sgd_values`]: `param`, `grad` and `buffer` the run's inputs, `next` and
    /// `buffers` its outputs.
    fn sgd_run<T: Float>([param, grad, buffer]: [&[T]; 3], (next, buffers): (&mut [T], &mut [T]), u: SgdUpdate) {
        let (lr, momentum, decay) = (T::of(u.lr), T::of(u.momentum), T::of(u.weight_decay));
        for (k, (p_new, b_new)) in next.iter_mut().zip(buffers).enumerate() {
            let (p, g) = (param[k], grad[k]);
            let d = if u.weight_decay != 0.0 { g + (p * decay + T::zero()) } else { g };
            let d = if u.momentum == 0.0 || u.first { d } else { (buffer[k] * momentum + T::zero()) + d };
            *b_new = d;
            *p_new = p - (d * lr + T::zero());
        }
    }
}

/// The new parameter and momentum buffer in one pass, each operation as candle's composition
/// computes it (`t * s` is `t * s + 0`), so both give the same values.
fn sgd_values<T: Float>(param: &[T], grad: &[T], buffer: &[T], u: SgdUpdate) -> Vec<Vec<T>> {
    let mut next = vec![T::zero(); param.len()];
    let mut buffers = vec![T::zero(); param.len()];
    let chunk = 1 << 14;
    next.par_chunks_mut(chunk).zip(buffers.par_chunks_mut(chunk)).enumerate().for_each(|(i, outputs)| {
        let run = i * chunk..(i * chunk + outputs.0.len());
        sgd_run([&param[run.clone()], &grad[run.clone()], &buffer[run]], outputs, u);
    });
    vec![next, buffers]
}

impl Kernel<3> for SgdUpdate {
    const NAME: &'static str = "sgd";

    fn shapes(&self, [param, ..]: [&[usize]; 3]) -> Vec<Shape> {
        vec![Shape::from(param), Shape::from(param)]
    }

    fn run<T: Float>(&self, [param, grad, buffer]: [&[T]; 3], _dims: &[usize]) -> Vec<Vec<T>> {
        sgd_values(param, grad, buffer, *self)
    }
}

/// One SGD update of `param` on graph-free CPU tensors: `(new parameter, new momentum buffer)`,
/// where the composition takes a pass (and an allocation) per operation. `buffer` is ignored when
/// `update.first`.
pub fn sgd(param: &Tensor, grad: &Tensor, buffer: &Tensor, update: SgdUpdate) -> Result<(Tensor, Tensor)> {
    for (name, t) in [("gradient", grad), ("momentum buffer", buffer)] {
        if t.dims() != param.dims() {
            candle_core::bail!("sgd: the {name} is {:?} and the parameter {:?}", t.dims(), param.dims())
        }
    }
    let mut out = apply(&update, [param, grad, buffer])?;
    let buffer = out.pop().expect("two outputs");
    Ok((out.pop().expect("two outputs"), buffer))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn matches_pytorch_sgd_momentum_weight_decay() {
        // torch.optim.SGD([p], lr=0.1, momentum=0.9, weight_decay=0.01), p0 = 1, grads 2 then 3:
        // d1 = 2.01, buf1 = 2.01, p1 = 0.799; d2 = 3 + 0.00799 = 3.00799, buf2 = 0.9*2.01 + 3.00799 = 4.81699,
        // p2 = 0.799 - 0.481699 = 0.317301.
        let p = Var::new(&[1.0f64], &Device::Cpu).unwrap();
        let mut sgd = Sgd::new(vec![p.clone()], 0.1, 0.9, 0.01);
        for g in [2.0, 3.0] {
            sgd.step(&[Some(Tensor::new(&[g], &Device::Cpu).unwrap())]).unwrap();
        }
        let v = p.as_tensor().to_vec1::<f64>().unwrap()[0];
        assert!((v - 0.317301).abs() < 1e-12, "{v}");
        assert!(sgd.buffers().unwrap().iter().all(|b| !b.track_op()), "momentum buffers hold no graph of earlier steps");
    }

    /// Through candle-nn's interface, from candle's autodiff: the same PyTorch trajectory, and the
    /// learning rate it reports is the one it steps with.
    #[test]
    fn candle_nn_optimizer_steps_as_pytorch() {
        use candle_nn::Optimizer;
        let p = Var::new(&[1.0f64], &Device::Cpu).unwrap();
        let mut sgd = <Sgd as Optimizer>::new(vec![p.clone()], SgdConfig { lr: 0.1, momentum: 0.9, weight_decay: 0.01 }).unwrap();
        // Loss g * p has gradient g: 2 then 3, as in the test above.
        for g in [2.0, 3.0] {
            sgd.backward_step(&(p.as_tensor() * g).unwrap().sum_all().unwrap()).unwrap();
        }
        let v = p.as_tensor().to_vec1::<f64>().unwrap()[0];
        assert!((v - 0.317301).abs() < 1e-12, "{v}");
        sgd.set_learning_rate(0.5);
        assert_eq!(sgd.learning_rate(), 0.5);
    }

    /// The one-pass CPU update equals the candle composition (which CUDA runs) bit for bit, in f32
    /// and f64, with and without momentum and weight decay, over steps that skip a variable.
    #[test]
    fn fused_update_equals_the_composition() {
        fn run(dtype: candle_core::DType, momentum: f64, decay: f64) -> Vec<Vec<f64>> {
            let vars: Vec<Var> = [(3, 5), (70_000, 1)]
                .iter()
                .map(|&(rows, cols)| {
                    let start = Tensor::arange(0u32, (rows * cols) as u32, &Device::Cpu).unwrap().to_dtype(dtype).unwrap();
                    Var::from_tensor(&start.cos().unwrap().reshape((rows, cols)).unwrap()).unwrap()
                })
                .collect();
            let mut sgd = Sgd::new(vars.clone(), 0.03, momentum, decay);
            for step in 0..4u64 {
                let grads: Vec<Option<Tensor>> = vars
                    .iter()
                    .enumerate()
                    .map(|(i, v)| {
                        let seeded = Tensor::arange(0u32, v.elem_count() as u32, &Device::Cpu).unwrap().to_dtype(dtype).unwrap();
                        let g = ((seeded * (0.37 + step as f64)).unwrap().sin().unwrap()).reshape(v.shape()).unwrap();
                        (step != 2 || i == 0).then_some(g)
                    })
                    .collect();
                sgd.step(&grads).unwrap();
            }
            let values = |t: &Tensor| t.flatten_all().unwrap().to_dtype(candle_core::DType::F64).unwrap().to_vec1::<f64>().unwrap();
            vars.iter().map(|v| values(v.as_tensor())).chain(sgd.buffers().unwrap().iter().map(values)).collect()
        }
        for dtype in [candle_core::DType::F32, candle_core::DType::F64] {
            for (momentum, decay) in [(0.0, 0.0), (0.5, 0.0), (0.9, 5e-4), (0.0, 5e-4)] {
                let fused = run(dtype, momentum, decay);
                let composed = fused::compositions_only(|| run(dtype, momentum, decay));
                assert_eq!(fused, composed, "{dtype:?}, momentum {momentum}, weight decay {decay}");
            }
        }
    }
}
