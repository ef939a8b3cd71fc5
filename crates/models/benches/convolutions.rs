//! ConvNet-3's 3 x 3 convolutions at full size (one class's 256 real images, 128 -> 128 channels, on
//! 16 x 16 and 8 x 8 maps): the forward by Winograd's F(2 x 2, 3 x 3) (the input gradient is the
//! same kernel, flipped), and the weight gradient by F(3 x 3, 2 x 2) against im2col's patches times
//! the output gradient, the path it replaced. `cargo bench -p gradmatch-models`.

use candle_core::{Device, Tensor};
use criterion::{criterion_group, criterion_main, Criterion};
use gradmatch_models::layers::fused;

fn filled(dims: &[usize], seed: f32) -> Tensor {
    let n: usize = dims.iter().product();
    let values: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37 + seed).sin()).collect();
    Tensor::from_vec(values, dims, &Device::Cpu).unwrap()
}

fn weight_gradient(c: &mut Criterion) {
    let (images, channels) = (256, 128);
    let mut group = c.benchmark_group("conv weight gradient, 256 images, 128 -> 128");
    group.sample_size(10);
    for side in [16, 8] {
        let x = filled(&[images, side, side, channels], 0.1);
        let g = filled(&[images, side, side, channels], 0.2);
        group.bench_function(format!("{side}x{side} winograd"), |b| b.iter(|| fused::winograd_weight_gradient(&x, &g, 1, 1).unwrap()));
        group.bench_function(format!("{side}x{side} patches"), |b| {
            b.iter(|| {
                let cols = fused::im2col(&x, 3, 1, 1).unwrap();
                cols.t().unwrap().matmul(&g.reshape(((), channels)).unwrap()).unwrap()
            })
        });
    }
    group.finish();
}

fn forward(c: &mut Criterion) {
    let (images, channels) = (256, 128);
    let mut group = c.benchmark_group("conv forward, 256 images, 128 -> 128");
    group.sample_size(10);
    let (weight, bias) = (filled(&[channels, channels, 3, 3], 0.3), filled(&[1, channels], 0.4));
    for side in [16, 8] {
        let x = filled(&[images, side, side, channels], 0.1);
        group.bench_function(format!("{side}x{side} winograd"), |b| {
            b.iter(|| fused::winograd_conv(&x, &weight, Some(&bias), 1, false).unwrap())
        });
    }
    group.finish();
}

criterion_group!(benches, forward, weight_gradient);
criterion_main!(benches);
