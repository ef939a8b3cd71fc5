//! The matching gradient w.r.t. the synthetic images, for every registered distance and gradient level, on
//! real MNIST images and a small ConvNet (f64): the explicit, class-batched path against the old
//! per-class second-order autodiff path (relative error <= 1e-9), and against finite differences.
#![allow(clippy::disallowed_methods)] // reads values to check them

use candle_core::{DType, Device, Result, Tensor, Var};
use gradmatch_core::{Distance, GradientLevel, MatchContext};
use gradmatch_models::reference::{autodiff_param_grads, enable_second_order};
use gradmatch_models::{one_hot, Mode, ModelSpec, Network};
use gradmatch_plugins::Plugins;

const CLASSES: usize = 3;
const IPC: usize = 2;

/// A deterministic context: fixed real batches per class, synthetic images as Vars. `explicit`: all
/// classes in one pass through the layers' explicit backward (as the engine); otherwise one pass per
/// class through candle's second-order autodiff (the reference).
struct Fixed {
    net: Network,
    real: Vec<Tensor>,
    syn: Vec<Var>,
    iteration: usize,
    mode: Mode,
    explicit: bool,
}

impl Fixed {
    fn targets(labels: &[u32]) -> Result<Tensor> {
        one_hot(labels, CLASSES, DType::F64, &Device::Cpu)
    }

    /// Gradients of each of `groups` equal groups of `x`.
    fn grads(&self, x: &Tensor, labels: &[u32], groups: usize) -> Result<Vec<Vec<Tensor>>> {
        if self.explicit {
            let (_, grads) = self.net.loss_and_grads(x, &Self::targets(labels)?, self.mode, groups)?;
            return (0..groups).map(|g| grads.iter().map(|t| t.get(g)).collect()).collect();
        }
        let size = labels.len() / groups;
        (0..groups)
            .map(|g| {
                let x = x.narrow(0, g * size, size)?;
                autodiff_param_grads(&self.net, &x, &Self::targets(&labels[g * size..(g + 1) * size])?, self.mode)
            })
            .collect()
    }

    fn detached(grads: Vec<Vec<Tensor>>) -> Vec<Vec<Tensor>> {
        grads.into_iter().map(|g| g.into_iter().map(|t| t.detach()).collect()).collect()
    }
}

impl MatchContext for Fixed {
    fn num_classes(&self) -> usize {
        CLASSES
    }
    fn iteration(&self) -> usize {
        self.iteration
    }
    fn real_class_grads(&mut self) -> Result<Vec<Vec<Tensor>>> {
        let n = self.real[0].dim(0)?;
        let labels: Vec<u32> = (0..CLASSES as u32).flat_map(|c| vec![c; n]).collect();
        Ok(Self::detached(self.grads(&Tensor::cat(&self.real, 0)?, &labels, CLASSES)?))
    }
    fn syn_class_grads(&mut self) -> Result<Vec<Vec<Tensor>>> {
        let x = Tensor::cat(&self.syn.iter().map(|v| v.as_tensor().clone()).collect::<Vec<_>>(), 0)?;
        let labels: Vec<u32> = (0..CLASSES as u32).flat_map(|c| [c; IPC]).collect();
        self.grads(&x, &labels, CLASSES)
    }
    fn real_mixed_grads(&mut self, _n: usize) -> Result<Vec<Tensor>> {
        let x = Tensor::cat(&self.real, 0)?;
        let labels: Vec<u32> = (0..CLASSES).flat_map(|c| vec![c as u32; self.real[c].dim(0).unwrap()]).collect();
        Ok(Self::detached(self.grads(&x, &labels, 1)?).remove(0))
    }
    fn syn_mixed_grads(&mut self, _max: usize) -> Result<Vec<Tensor>> {
        // A fixed "shuffle" (reversed order) keeps the function deterministic for finite differences.
        let x = Tensor::cat(&self.syn.iter().rev().map(|v| v.as_tensor().clone()).collect::<Vec<_>>(), 0)?;
        let labels: Vec<u32> = (0..CLASSES).rev().flat_map(|c| [c as u32; IPC]).collect();
        Ok(self.grads(&x, &labels, 1)?.remove(0))
    }
}

fn mnist_context(spec: &ModelSpec) -> Fixed {
    enable_second_order().unwrap();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data");
    let ds = gradmatch_data::load(gradmatch_data::DatasetName::Mnist, &dir).unwrap();
    let image = |indices: &[usize]| {
        Tensor::from_vec(ds.train.gather(indices), (indices.len(), 1, 28, 28), &Device::Cpu).unwrap().to_dtype(DType::F64).unwrap()
    };
    let real = (0..CLASSES).map(|c| image(&ds.train.class_indices(c)[..8])).collect();
    let syn = (0..CLASSES).map(|c| Var::from_tensor(&image(&ds.train.class_indices(c)[100..100 + IPC])).unwrap()).collect();
    let net = Network::new(spec, (1, 28, 28), CLASSES, 3, DType::F64, &Device::Cpu).unwrap();
    Fixed { net, real, syn, iteration: 0, mode: Mode::Train, explicit: true }
}

/// d(matching loss)/d(synthetic images), per class.
fn matching_gradient(ctx: &mut Fixed, level: &dyn GradientLevel, distance: &dyn Distance) -> Vec<Vec<f64>> {
    let grads = level.matching_loss(ctx, distance).unwrap().backward().unwrap();
    ctx.syn
        .iter()
        .map(|v| grads.get(v.as_tensor()).expect("loss depends on every class").flatten_all().unwrap().to_vec1().unwrap())
        .collect()
}

/// The explicit path against the autodiff reference, relative to the largest entry.
fn difference_from_reference(ctx: &mut Fixed, level: &dyn GradientLevel, distance: &dyn Distance) -> f64 {
    ctx.explicit = true;
    let explicit = matching_gradient(ctx, level, distance);
    ctx.explicit = false;
    let reference = matching_gradient(ctx, level, distance);
    ctx.explicit = true;
    let (e, r): (Vec<f64>, Vec<f64>) = (explicit.concat(), reference.concat());
    let scale = r.iter().fold(0f64, |m, v| m.max(v.abs())).max(1e-12);
    e.iter().zip(&r).fold(0f64, |m, (a, b)| m.max((a - b).abs())) / scale
}

fn relative_error(ctx: &mut Fixed, level: &dyn GradientLevel, distance: &dyn Distance) -> f64 {
    let loss = level.matching_loss(ctx, distance).unwrap();
    let grads = loss.backward().unwrap();
    let eps = 1e-6;
    let mut worst = 0f64;
    for c in 0..CLASSES {
        let analytic =
            grads.get(ctx.syn[c].as_tensor()).expect("loss depends on every class").flatten_all().unwrap().to_vec1::<f64>().unwrap();
        let scale = analytic.iter().fold(0f64, |m, v| m.max(v.abs())).max(1e-4);
        let original = ctx.syn[c].as_tensor().flatten_all().unwrap().to_vec1::<f64>().unwrap();
        // Pixels where the analytic gradient is largest, plus a spread of others.
        let mut picks: Vec<usize> = (0..original.len()).step_by(397).collect();
        picks.push((0..analytic.len()).max_by(|&a, &b| analytic[a].abs().total_cmp(&analytic[b].abs())).unwrap());
        for i in picks {
            let mut at = |delta: f64| {
                let mut v = original.clone();
                v[i] += delta;
                ctx.syn[c].set(&Tensor::from_vec(v, (IPC, 1, 28, 28), &Device::Cpu).unwrap()).unwrap();
                level.matching_loss(ctx, distance).unwrap().to_scalar::<f64>().unwrap()
            };
            let numeric = (at(eps) - at(-eps)) / (2.0 * eps);
            ctx.syn[c].set(&Tensor::from_vec(original.clone(), (IPC, 1, 28, 28), &Device::Cpu).unwrap()).unwrap();
            worst = worst.max((numeric - analytic[i]).abs() / scale);
        }
    }
    worst
}

#[test]
fn every_distance_and_level_equals_the_second_order_reference() {
    let spec = ModelSpec { width: 4, depth: 3, ..ModelSpec::CONVNET };
    let mut ctx = mnist_context(&spec);
    let plugins = Plugins::builtin();
    for (dname, distance) in plugins.method.distance.defaults() {
        for (lname, level) in plugins.method.level.defaults() {
            // Both parities: a level may alternate between iterations (interleaved does).
            for iteration in [0, 1] {
                ctx.iteration = iteration;
                let err = difference_from_reference(&mut ctx, level.as_ref(), distance.as_ref());
                eprintln!("{lname} x {dname} (iteration {iteration}): {err:.1e} from the reference");
                assert!(err <= 1e-9, "{lname} x {dname} (iteration {iteration}): differs from the reference by {err:e}");
            }
        }
    }
}

#[test]
fn matching_gradient_matches_finite_differences() {
    let spec = ModelSpec { width: 4, depth: 3, ..ModelSpec::CONVNET };
    let mut ctx = mnist_context(&spec);
    let plugins = Plugins::builtin();
    let level = plugins.method.level.build("multi-level", &Default::default()).unwrap();
    for (dname, distance) in plugins.method.distance.defaults() {
        let err = relative_error(&mut ctx, level.as_ref(), distance.as_ref());
        eprintln!("multi-level x {dname}: {err:.1e} from finite differences");
        assert!(err < 1e-5, "multi-level x {dname}: relative error {err:e} against finite differences");
    }
}

#[test]
fn batch_norm_with_frozen_statistics() {
    let spec = ModelSpec { width: 4, depth: 2, norm: gradmatch_models::NormKind::Batch, ..ModelSpec::CONVNET };
    let mut ctx = mnist_context(&spec);
    // As the engine does: statistics from real images in train mode, then frozen for matching.
    ctx.net.forward(&Tensor::cat(&ctx.real, 0).unwrap(), Mode::Train).unwrap();
    ctx.mode = Mode::Eval;
    let plugins = Plugins::builtin();
    let level = plugins.method.level.build("multi-level", &Default::default()).unwrap();
    let distance = plugins.method.distance.build("combined", &Default::default()).unwrap();
    let (level, distance) = (level.as_ref(), distance.as_ref());
    let err = difference_from_reference(&mut ctx, level, distance);
    assert!(err <= 1e-9, "batch-norm network: differs from the reference by {err:e}");
    let err = relative_error(&mut ctx, level, distance);
    assert!(err < 1e-5, "batch-norm network: relative error {err:e} against finite differences");
}
