//! Every layer type and variant: the explicit backward against candle's autodiff (f64, relative error
//! <= 1e-9), first order (parameter gradients) and second order (the derivative of a functional of
//! the parameter gradient with respect to the input, the path of gradient matching); finite
//! differences on tiny networks; per-group gradients against separate passes.
#![allow(clippy::disallowed_methods)] // reads values to check them
mod common;

use common::{max_relative_error, random_tensor, relative_difference, Problem};
use gradmatch_models::layers::{col2im, fused, im2col};
use gradmatch_models::{Act, Arch, Mode, ModelSpec, NormKind, PoolKind};

const EXACT: f64 = 1e-9;
const FINITE_DIFFERENCES: f64 = 1e-6;

fn small_convnet() -> ModelSpec {
    ModelSpec { width: 4, depth: 2, ..ModelSpec::CONVNET }
}

/// Explicit against autodiff: every parameter gradient, and d/dx of a functional of them.
fn check_against_autodiff(spec: &ModelSpec, input: (usize, usize, usize), mode: Mode) {
    let p = Problem::new(spec, input, 2, mode).unwrap();
    let (explicit, reference) = (p.explicit_grads().unwrap(), p.param_grads().unwrap());
    for ((e, r), param) in explicit.iter().zip(&reference).zip(p.net.params()) {
        let err = relative_difference(e, r).unwrap();
        assert!(err <= EXACT, "{spec} {mode:?}: gradient of {} differs from autodiff by {err:e}", param.name);
    }
    if mode == Mode::Train && spec.norm == NormKind::Batch {
        return; // matching freezes batch-norm statistics: only first order is used in train mode
    }
    let dirs = p.directions().unwrap();
    let dx = |explicit: bool| p.phi(&dirs, explicit).unwrap().backward().unwrap().remove(p.x.as_tensor()).expect("phi depends on x");
    let err = relative_difference(&dx(true), &dx(false)).unwrap();
    assert!(err <= EXACT, "{spec} {mode:?}: second-order gradient differs from autodiff by {err:e}");
}

/// The explicit path's second-order gradient against finite differences.
fn check_finite_differences(spec: &ModelSpec, input: (usize, usize, usize), mode: Mode) {
    let p = Problem::new(spec, input, 2, mode).unwrap();
    let dirs = p.directions().unwrap();
    let analytic = p.phi(&dirs, true).unwrap().backward().unwrap().remove(p.x.as_tensor()).expect("phi depends on x");
    let f = || p.phi(&dirs, true)?.to_scalar::<f64>();
    let err = max_relative_error(&p.x, &analytic, 8, 3, &f).unwrap();
    assert!(err < FINITE_DIFFERENCES, "{spec} {mode:?}: second-order relative error {err:e} against finite differences");
}

/// The path of gradient matching on the CPU (im2col and col2im as graph operations) against the
/// compositions CUDA runs: d/dx of a functional of the parameter gradients.
#[test]
fn second_order_through_the_cpu_graph_operations_equals_the_compositions() {
    for (spec, input) in [(small_convnet(), (1, 12, 12)), (small_convnet(), (3, 7, 7)), ("ResNet18".parse().unwrap(), (1, 16, 16))] {
        let p = Problem::new(&spec, input, 2, Mode::Train).unwrap();
        let dirs = p.directions().unwrap();
        let dx = || p.phi(&dirs, true)?.backward().map(|mut g| g.remove(p.x.as_tensor()).expect("phi depends on x"));
        let err = relative_difference(&dx().unwrap(), &fused::compositions_only(dx).unwrap()).unwrap();
        assert!(err <= 1e-12, "{spec} {input:?}: the graph operations' second-order gradient differs by {err:e}");
    }
}

#[test]
fn convnet_norms() {
    for norm in [NormKind::None, NormKind::Instance, NormKind::Group, NormKind::Layer] {
        let spec = ModelSpec { norm, ..small_convnet() };
        check_against_autodiff(&spec, (1, 12, 12), Mode::Train);
        check_against_autodiff(&spec, (3, 8, 8), Mode::Train);
        check_finite_differences(&spec, (1, 12, 12), Mode::Train);
    }
}

#[test]
fn convnet_batch_norm_frozen_and_training() {
    let spec = ModelSpec { norm: NormKind::Batch, ..small_convnet() };
    // Matching runs with frozen statistics; evaluation training runs with batch statistics.
    check_against_autodiff(&spec, (1, 12, 12), Mode::Eval);
    check_finite_differences(&spec, (1, 12, 12), Mode::Eval);
    check_against_autodiff(&spec, (3, 8, 8), Mode::Train);
}

#[test]
fn convnet_activations() {
    for act in [Act::Relu, Act::Sigmoid, Act::LeakyRelu] {
        check_against_autodiff(&ModelSpec { act, ..small_convnet() }, (1, 12, 12), Mode::Train);
        check_finite_differences(&ModelSpec { act, ..small_convnet() }, (1, 12, 12), Mode::Train);
    }
}

#[test]
fn convnet_pools_including_odd_sides() {
    for pool in [PoolKind::Avg, PoolKind::Max, PoolKind::None] {
        for input in [(3, 8, 8), (3, 7, 7)] {
            check_against_autodiff(&ModelSpec { pool, ..small_convnet() }, input, Mode::Train);
        }
        check_finite_differences(&ModelSpec { pool, ..small_convnet() }, (3, 7, 7), Mode::Train);
    }
}

#[test]
fn convnet_depths() {
    for depth in [1, 3] {
        check_against_autodiff(&ModelSpec { depth, ..small_convnet() }, (1, 12, 12), Mode::Train);
    }
}

#[test]
fn small_zoo() {
    for name in ["MLP", "LeNet"] {
        let spec: ModelSpec = name.parse().unwrap();
        check_against_autodiff(&spec, (1, 12, 12), Mode::Train);
        check_finite_differences(&spec, (1, 12, 12), Mode::Train);
    }
}

#[test]
fn big_zoo() {
    // Full-width architectures on tiny inputs: 5x5 kernels with padding 4 and 2 (AlexNet), stride-2
    // 3x3 and 1x1 convolutions and residual blocks (ResNet18), pooling to odd sides (ResNet18BN_AP).
    // Instance norm needs more than one pixel in the last stage: on a 1x1 map every output is exactly
    // 0, where candle's ReLU derivative (1 at 0) and PyTorch's (0 at 0, ours) disagree.
    let zoo = [
        ("AlexNet", (1, 4, 4), Mode::Train),
        ("VGG11BN", (3, 32, 32), Mode::Eval),
        ("ResNet18", (1, 16, 16), Mode::Train),
        ("ResNet18BN", (1, 9, 9), Mode::Eval),
        ("ResNet18BN", (1, 8, 8), Mode::Train),
        ("ResNet18BN_AP", (1, 14, 14), Mode::Eval),
    ];
    for (name, input, mode) in zoo {
        let spec: ModelSpec = name.parse().unwrap();
        assert!(matches!(spec.arch, Arch::AlexNet | Arch::Vgg11 | Arch::ResNet18 | Arch::ResNet18Ap));
        check_against_autodiff(&spec, input, mode);
    }
}

#[test]
fn grouped_gradients_equal_separate_passes() {
    for spec in [small_convnet(), ModelSpec { norm: NormKind::Batch, ..small_convnet() }, "MLP".parse().unwrap()] {
        let p = Problem::new(&spec, (1, 10, 10), 6, Mode::Eval).unwrap();
        let (_, grouped) = p.net.loss_and_grads(p.x.as_tensor(), &p.targets, Mode::Eval, 3).unwrap();
        for g in 0..3 {
            let x = p.x.as_tensor().narrow(0, 2 * g, 2).unwrap();
            let t = p.targets.narrow(0, 2 * g, 2).unwrap();
            let separate = p.net.param_grads(&x, &t, Mode::Eval).unwrap();
            for (all, one) in grouped.iter().zip(&separate) {
                let err = relative_difference(&all.get(g).unwrap(), one).unwrap();
                assert!(err <= EXACT, "{spec}: group {g} differs from its own pass by {err:e}");
            }
        }
    }
}

#[test]
fn col2im_is_the_adjoint_of_im2col() {
    // <im2col(x), y> = <x, col2im(y)> for every kernel, stride and padding the zoo uses, odd sides too.
    for (k, stride, padding, side) in [(3, 1, 1, 6), (3, 1, 3, 5), (3, 2, 1, 7), (3, 2, 1, 8), (1, 2, 0, 7), (5, 1, 2, 6), (5, 1, 0, 9)] {
        let x = random_tensor(&[2, side, side, 3], 1).unwrap();
        let cols = im2col(&x, k, stride, padding).unwrap();
        let y = random_tensor(cols.dims(), 2).unwrap();
        let lhs = (&cols * &y).unwrap().sum_all().unwrap().to_scalar::<f64>().unwrap();
        let back = col2im(&y, x.dims4().unwrap(), k, stride, padding).unwrap();
        let rhs = (&x * &back).unwrap().sum_all().unwrap().to_scalar::<f64>().unwrap();
        assert!((lhs - rhs).abs() <= 1e-10 * lhs.abs().max(1.0), "k {k} s {stride} p {padding} side {side}: {lhs} vs {rhs}");
        // The one-pass CPU kernel equals the candle composition (what CUDA runs), tracked or not.
        let v = candle_core::Var::from_tensor(&x).unwrap();
        assert!(fused::eligible(&x) && !fused::eligible(v.as_tensor()) && fused::cpu_float(v.as_tensor()));
        let composed = fused::compositions_only(|| im2col(v.as_tensor(), k, stride, padding)).unwrap();
        assert_eq!(relative_difference(&cols, &composed).unwrap(), 0.0, "k {k} s {stride} p {padding} side {side}");
        assert_eq!(relative_difference(&cols, &im2col(v.as_tensor(), k, stride, padding).unwrap()).unwrap(), 0.0);
        // Autodiff of im2col is col2im: of the graph operation and of the composition.
        for compositions in [false, true] {
            let pairing = || (im2col(v.as_tensor(), k, stride, padding)? * &y)?.sum_all()?.backward();
            let g = if compositions { fused::compositions_only(pairing) } else { pairing() }.unwrap();
            let err = relative_difference(g.get(v.as_tensor()).unwrap(), &back).unwrap();
            assert!(err <= EXACT, "autodiff of im2col (compositions: {compositions}) differs from col2im by {err:e}");
        }
        // col2im's one-pass CPU kernel equals its composition; autodiff of col2im is im2col.
        let tracked = candle_core::Var::from_tensor(&y).unwrap();
        let composed = fused::compositions_only(|| col2im(tracked.as_tensor(), x.dims4().unwrap(), k, stride, padding)).unwrap();
        let err = relative_difference(&back, &composed).unwrap();
        assert!(err <= 1e-14, "col2im's kernel differs from its composition by {err:e}");
        let g = (col2im(tracked.as_tensor(), x.dims4().unwrap(), k, stride, padding).unwrap() * &x).unwrap().sum_all().unwrap();
        let g = g.backward().unwrap();
        let err = relative_difference(g.get(tracked.as_tensor()).unwrap(), &cols).unwrap();
        assert!(err <= EXACT, "autodiff of col2im differs from im2col by {err:e}");
    }
}

#[test]
fn cpu_fast_paths_equal_the_candle_composition() {
    // Plain tensors take the fused CPU kernels (the ConvNet block's norm, affine, ReLU and pooling,
    // the conv bias in the GEMM, im2col/col2im; batch norm's affine); tracked ones im2col and col2im
    // as graph operations; `compositions_only` the candle operations CUDA runs. Same gradients, per
    // group too, in f64 and f32, with odd sides and batch norm.
    let bn = ModelSpec { norm: NormKind::Batch, ..small_convnet() };
    // Wide enough that the 3 x 3 convolutions after the first take Winograd's kernels (the first
    // takes the short-patch kernels on one channel, im2col's GEMM on three).
    let wide = ModelSpec { width: 16, ..small_convnet() };
    assert!(fused::winograd_applies(3, 1, wide.width) && 9 <= fused::SHORT_PATCH && 27 > fused::SHORT_PATCH);
    let cases = [
        (small_convnet(), (1, 12, 12), Mode::Train),
        (small_convnet(), (3, 7, 7), Mode::Train),
        (bn, (1, 12, 12), Mode::Eval),
        (wide, (1, 12, 12), Mode::Train),
        (wide, (3, 7, 7), Mode::Train),
    ];
    for dtype in [candle_core::DType::F64, candle_core::DType::F32] {
        for (spec, input, mode) in cases {
            for groups in [1, 2] {
                let p = Problem::new(&spec, input, 4, mode).unwrap();
                let x = p.x.as_tensor().detach().to_dtype(dtype).unwrap();
                assert!(fused::eligible(&x), "a plain CPU tensor takes the fast path");
                let net = gradmatch_models::Network::new(&spec, input, 3, 7, dtype, &candle_core::Device::Cpu).unwrap();
                let targets = p.targets.to_dtype(dtype).unwrap();
                let fast = net.loss_and_grads(&x, &targets, mode, groups).unwrap().1;
                let tracked = candle_core::Var::from_tensor(&x).unwrap();
                let composed = fused::compositions_only(|| net.loss_and_grads(tracked.as_tensor(), &targets, mode, groups)).unwrap().1;
                // On the CPU a tracked input takes im2col and col2im as graph operations.
                let graph_ops = net.loss_and_grads(tracked.as_tensor(), &targets, mode, groups).unwrap().1;
                // Over all gradients at once, relative to the largest entry: in f32 a conv bias before
                // a norm (exactly zero in exact arithmetic) is rounding noise on both paths.
                let flat = |g: &[candle_core::Tensor]| {
                    let parts: Vec<_> = g.iter().map(|t| t.flatten_all().unwrap().to_dtype(candle_core::DType::F64).unwrap()).collect();
                    candle_core::Tensor::cat(&parts, 0).unwrap()
                };
                let tolerance = if dtype == candle_core::DType::F64 { 1e-12 } else { 1e-5 };
                for (path, grads) in [("the fast path", &fast), ("the graph operations", &graph_ops)] {
                    let err = relative_difference(&flat(grads), &flat(&composed)).unwrap();
                    assert!(err <= tolerance, "{spec} {input:?} {dtype:?} groups {groups}: {path} differs from the composition by {err:e}");
                }
                // Inference (no tape: the block's forward writes the pooled map only).
                let f64_logits = |t: candle_core::Result<candle_core::Tensor>| t.and_then(|t| t.to_dtype(candle_core::DType::F64)).unwrap();
                let logits = f64_logits(net.forward(&x, mode));
                let composed = f64_logits(fused::compositions_only(|| net.forward(&x, mode)));
                let err = relative_difference(&logits, &composed).unwrap();
                assert!(err <= tolerance, "{spec} {input:?} {dtype:?}: inference differs from the composition by {err:e}");
            }
        }
    }
}
