//! ConvNet-3 (width 128, instance norm, ReLU, average pooling) on MNIST-sized images, whole network
//! at a time: the evaluation's two workloads, inference of a test pass of 256 images and a training
//! step (loss and every gradient) of 10 images, the ipc-1 batch. `cargo bench -p gradmatch-models
//! --bench network`; `-- --profile-time 20` runs one without analysis, for `perf record`.

use candle_core::{DType, Device, Tensor};
use criterion::{criterion_group, criterion_main, Criterion};
use gradmatch_models::{one_hot, Mode, ModelSpec, Network};

fn images(n: usize) -> Tensor {
    let values: Vec<f32> = (0..n * 784).map(|i| (i as f32 * 0.37).sin()).collect();
    Tensor::from_vec(values, (n, 1, 28, 28), &Device::Cpu).unwrap()
}

fn network(c: &mut Criterion) {
    let net = Network::new(&ModelSpec::CONVNET, (1, 28, 28), 10, 7, DType::F32, &Device::Cpu).unwrap();
    let mut group = c.benchmark_group("ConvNet-3, MNIST");
    group.sample_size(10);
    let test = images(256);
    group.bench_function("inference, 256 images", |b| b.iter(|| net.forward(&test, Mode::Eval).unwrap()));
    let batch = images(10);
    let labels: Vec<u32> = (0..10).collect();
    let targets = one_hot(&labels, 10, DType::F32, &Device::Cpu).unwrap();
    group.bench_function("training step, 10 images", |b| b.iter(|| net.loss_and_grads(&batch, &targets, Mode::Train, 1).unwrap()));
    group.finish();
}

criterion_group!(benches, network);
criterion_main!(benches);
