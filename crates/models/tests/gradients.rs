//! Every layer type and variant: first- and second-order gradients against finite differences (f64).
mod common;

use common::{max_relative_error, Problem};
use gradmatch_models::{Act, Arch, Mode, ModelSpec, NormKind, PoolKind};

const TOLERANCE: f64 = 1e-6;

fn small_convnet() -> ModelSpec {
    ModelSpec { width: 4, depth: 2, ..ModelSpec::CONVNET }
}

/// d/dx of a linear functional of the parameter gradient (the second-order path of matching).
fn check_second_order(spec: &ModelSpec, input: (usize, usize, usize), mode: Mode) {
    let p = Problem::new(spec, input, 2, mode).unwrap();
    let dirs = p.directions().unwrap();
    let analytic = p.phi(&dirs).unwrap().backward().unwrap().remove(p.x.as_tensor()).expect("phi depends on x");
    let f = || p.phi(&dirs)?.to_scalar::<f64>();
    let err = max_relative_error(&p.x, &analytic, 12, 3, &f).unwrap();
    assert!(err < TOLERANCE, "{spec} {mode:?}: second-order relative error {err:e}");
}

/// dL/dx and dL/dθ for every parameter tensor.
fn check_first_order(spec: &ModelSpec, input: (usize, usize, usize), mode: Mode) {
    let p = Problem::new(spec, input, 2, mode).unwrap();
    let grads = p.loss().unwrap().backward().unwrap();
    let f = || p.loss()?.to_scalar::<f64>();
    let gx = grads.get(p.x.as_tensor()).unwrap();
    let err = max_relative_error(&p.x, gx, 6, 5, &f).unwrap();
    assert!(err < TOLERANCE, "{spec}: input gradient relative error {err:e}");
    for param in p.net.params() {
        let g = grads.get(param.var.as_tensor()).unwrap_or_else(|| panic!("{spec}: no gradient for {}", param.name));
        let err = max_relative_error(&param.var, g, 3, 9, &f).unwrap();
        assert!(err < TOLERANCE, "{spec}: gradient of {} relative error {err:e}", param.name);
    }
}

#[test]
fn convnet_norms_second_order() {
    for norm in [NormKind::None, NormKind::Instance, NormKind::Group, NormKind::Layer] {
        let spec = ModelSpec { norm, ..small_convnet() };
        check_second_order(&spec, (1, 12, 12), Mode::Train);
        check_first_order(&spec, (3, 8, 8), Mode::Train);
    }
}

#[test]
fn convnet_batch_norm_frozen_and_training() {
    let spec = ModelSpec { norm: NormKind::Batch, ..small_convnet() };
    // Matching runs with frozen statistics; evaluation training runs with batch statistics.
    check_second_order(&spec, (1, 12, 12), Mode::Eval);
    check_first_order(&spec, (3, 8, 8), Mode::Train);
}

#[test]
fn convnet_activations_second_order() {
    for act in [Act::Relu, Act::Sigmoid, Act::LeakyRelu] {
        check_second_order(&ModelSpec { act, ..small_convnet() }, (1, 12, 12), Mode::Train);
    }
}

#[test]
fn convnet_pools_second_order_including_odd_sides() {
    for pool in [PoolKind::Avg, PoolKind::Max, PoolKind::None] {
        check_second_order(&ModelSpec { pool, ..small_convnet() }, (3, 8, 8), Mode::Train);
        // 7 -> 3: the case where candle's own avg_pool2d gradient is wrong.
        check_first_order(&ModelSpec { pool, ..small_convnet() }, (3, 7, 7), Mode::Train);
        check_second_order(&ModelSpec { pool, ..small_convnet() }, (3, 7, 7), Mode::Train);
    }
}

#[test]
fn convnet_depths() {
    for depth in [1, 3] {
        check_second_order(&ModelSpec { depth, ..small_convnet() }, (1, 12, 12), Mode::Train);
    }
}

#[test]
fn zoo_first_order() {
    for name in ["MLP", "LeNet"] {
        let spec: ModelSpec = name.parse().unwrap();
        check_first_order(&spec, (1, 12, 12), Mode::Train);
        check_second_order(&spec, (1, 12, 12), Mode::Train);
    }
}

#[test]
fn big_zoo_second_order() {
    // Full-width architectures on tiny inputs: one second-order check each (cheap enough in f64).
    for (name, input) in [("AlexNet", (1, 4, 4)), ("VGG11BN", (3, 32, 32)), ("ResNet18BN", (1, 8, 8)), ("ResNet18BN_AP", (1, 14, 14))] {
        let spec: ModelSpec = name.parse().unwrap();
        assert!(matches!(spec.arch, Arch::AlexNet | Arch::Vgg11 | Arch::ResNet18 | Arch::ResNet18Ap));
        check_second_order(&spec, input, Mode::Eval);
    }
}
