//! Every registered distance on gradient sets the size of ConvNet-3's on MNIST (317,706 values),
//! value alone and value + backward to the synthetic side. `just bench-distances`.
#![allow(clippy::disallowed_methods)] // reads values to check them

use candle_core::{Device, Tensor, Var};
use criterion::{criterion_group, criterion_main, Criterion};
use gradmatch_plugins::Plugins;

const SHAPES: &[&[usize]] = &[
    &[128, 1, 3, 3],
    &[128],
    &[128],
    &[128],
    &[128, 128, 3, 3],
    &[128],
    &[128],
    &[128],
    &[128, 128, 3, 3],
    &[128],
    &[128],
    &[128],
    &[10, 2048],
    &[10],
];

fn gradient_set(seed: f64) -> Vec<Tensor> {
    SHAPES
        .iter()
        .map(|s| {
            let n: usize = s.iter().product();
            let v: Vec<f32> = (0..n).map(|i| ((i as f64 * 0.7 + seed).sin() * 1e-2) as f32).collect();
            Tensor::from_vec(v, *s, &Device::Cpu).unwrap()
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let real = gradient_set(0.0);
    let syn_vars: Vec<Var> = gradient_set(1.0).iter().map(|t| Var::from_tensor(t).unwrap()).collect();
    let syn: Vec<Tensor> = syn_vars.iter().map(|v| v.as_tensor().clone()).collect();
    let mut group = c.benchmark_group("distance");
    group.sample_size(20);
    for (name, d) in Plugins::builtin().method.distance.defaults() {
        group.bench_function(format!("{name}/value"), |b| b.iter(|| d.distance(&real, &syn).unwrap().to_scalar::<f32>().unwrap()));
        group.bench_function(format!("{name}/value+backward"), |b| b.iter(|| d.distance(&real, &syn).unwrap().backward().unwrap()));
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
