//! K networks held as one ensemble equal the same K networks run one by one: the initial
//! parameters bit for bit, and the logits, each network's loss and each network's gradients, for
//! every architecture that can be held as one, on the fused CPU kernels and on the compositions
//! CUDA runs (f64, 1e-12 of the scale), and ConvNet-3 in f32 (1e-5).
#![allow(clippy::disallowed_methods)] // reads values to check them
mod common;

use candle_core::{DType, Device, Tensor};
use common::{random_tensor, relative_difference};
use gradmatch_models::layers::fused;
use gradmatch_models::{one_hot, Mode, ModelSpec, Network, NormKind, PoolKind};

const SEEDS: [u64; 3] = [3, 8, 21];
const PER_NETWORK: usize = 2;
const CLASSES: usize = 3;

fn check(spec: &ModelSpec, input: (usize, usize, usize), dtype: DType, tolerance: f64) {
    let cpu = &Device::Cpu;
    let ensemble = Network::ensemble(spec, input, CLASSES, &SEEDS, dtype, cpu).unwrap();
    let singles: Vec<Network> = SEEDS.iter().map(|&s| Network::new(spec, input, CLASSES, s, dtype, cpu).unwrap()).collect();
    assert_eq!(ensemble.members(), SEEDS.len());
    for (k, single) in singles.iter().enumerate() {
        for (stacked, own) in ensemble.params().iter().zip(single.params()) {
            let (a, b) = (stacked.var.as_tensor().get(k).unwrap(), own.var.as_tensor());
            assert_eq!(a.dims(), b.dims());
            assert_eq!(values(&a), values(b), "{spec}: network {k}'s {} is its own seed's", own.name);
        }
    }
    // The norms' affine parameters start equal in every network: moved apart, so that a network
    // reading another's parameters shows.
    for (i, stacked) in ensemble.params().iter().enumerate() {
        let own: Vec<Tensor> = singles
            .iter()
            .enumerate()
            .map(|(k, single)| {
                let var = &single.params()[i].var;
                let moved = (var.as_tensor() + random_tensor(var.dims(), (100 * i + k) as u64)?.to_dtype(dtype)?)?;
                var.set(&moved)?;
                Ok(moved)
            })
            .collect::<candle_core::Result<_>>()
            .unwrap();
        stacked.var.set(&Tensor::stack(&own, 0).unwrap()).unwrap();
    }
    let n = SEEDS.len() * PER_NETWORK;
    let x = random_tensor(&[n, input.0, input.1, input.2], 11).unwrap().to_dtype(dtype).unwrap();
    let labels: Vec<u32> = (0..n as u32).map(|i| (i * 7 + 1) % CLASSES as u32).collect();
    let targets = one_hot(&labels, CLASSES, dtype, cpu).unwrap();
    let (losses, grads) = ensemble.member_losses_and_grads(&x, &targets, Mode::Train).unwrap();
    let logits = ensemble.forward(&x, Mode::Eval).unwrap();
    let f64s = |t: &Tensor| t.to_dtype(DType::F64).unwrap();
    for (k, single) in singles.iter().enumerate() {
        let rows = |t: &Tensor| t.narrow(0, k * PER_NETWORK, PER_NETWORK).unwrap();
        let (loss, own) = single.loss_and_grads(&rows(&x), &rows(&targets), Mode::Train, 1).unwrap();
        let gap = relative_difference(&f64s(&losses.get(k).unwrap()), &f64s(&loss)).unwrap();
        assert!(gap <= tolerance, "{spec}: network {k}'s loss differs by {gap:e}");
        // Against the network's largest gradient entry: a conv bias before a norm has a gradient
        // that is zero but for rounding.
        let scale = own.iter().map(|g| values(g).iter().fold(0f64, |m, v| m.max(v.abs()))).fold(0f64, f64::max);
        assert!(scale > 0.0, "{spec}: a zero gradient tests nothing");
        for ((all, one), param) in grads.iter().zip(&own).zip(single.params()) {
            let (a, b) = (values(&all.get(k).unwrap()), values(&one.squeeze(0).unwrap()));
            let gap = a.iter().zip(&b).fold(0f64, |m, (x, y)| m.max((x - y).abs())) / scale;
            assert!(gap <= tolerance, "{spec}: network {k}'s gradient of {} differs by {gap:e}", param.name);
        }
        let gap = relative_difference(&f64s(&rows(&logits)), &f64s(&single.forward(&rows(&x), Mode::Eval).unwrap())).unwrap();
        assert!(gap <= tolerance, "{spec}: network {k}'s logits differ by {gap:e}");
    }
}

fn values(t: &Tensor) -> Vec<f64> {
    t.to_dtype(DType::F64).unwrap().flatten_all().unwrap().to_vec1::<f64>().unwrap()
}

fn small_convnet() -> ModelSpec {
    ModelSpec { width: 4, depth: 2, ..ModelSpec::CONVNET }
}

#[test]
fn convnets_on_the_fused_kernels_and_the_compositions() {
    let norms = [NormKind::Instance, NormKind::None, NormKind::Group, NormKind::Layer].map(|norm| ModelSpec { norm, ..small_convnet() });
    for spec in norms.into_iter().chain([ModelSpec { pool: PoolKind::Max, ..small_convnet() }, "ConvNetAS".parse().unwrap()]) {
        let spec = ModelSpec { width: 4, depth: 2, ..spec };
        check(&spec, (1, 12, 12), DType::F64, 1e-12);
        fused::compositions_only(|| check(&spec, (3, 7, 7), DType::F64, 1e-12));
    }
    // Wide enough for Winograd's kernels, whose GEMMs are batched over the members too; odd sides.
    let wide = ModelSpec { width: 16, depth: 2, ..ModelSpec::CONVNET };
    assert!(fused::winograd_applies(3, 1, wide.width));
    check(&wide, (1, 12, 12), DType::F64, 1e-12);
    check(&wide, (3, 7, 7), DType::F64, 1e-12);
}

#[test]
fn the_rest_of_the_zoo() {
    for (name, input) in [("MLP", (1, 12, 12)), ("LeNet", (1, 12, 12)), ("AlexNet", (1, 4, 4)), ("ResNet18", (1, 16, 16))] {
        check(&name.parse().unwrap(), input, DType::F64, 1e-12);
    }
}

#[test]
fn convnet3_in_f32() {
    check(&ModelSpec::CONVNET, (1, 28, 28), DType::F32, 1e-5);
}

#[test]
fn batch_norm_networks_are_refused() {
    let spec = ModelSpec { norm: NormKind::Batch, ..small_convnet() };
    let err = Network::ensemble(&spec, (1, 12, 12), CLASSES, &SEEDS, DType::F64, &Device::Cpu).err().expect("refused");
    assert!(err.to_string().contains("batch norm keeps statistics per network"), "{err}");
    assert_eq!(Network::ensemble(&spec, (1, 12, 12), CLASSES, &SEEDS[..1], DType::F64, &Device::Cpu).unwrap().members(), 1);
}
