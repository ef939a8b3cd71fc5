use super::*;
use serde::Deserialize;

use crate::recipes_fixture::image;

/// The DC transforms' section of the recipes fixture.
#[derive(Deserialize)]
struct Fixture {
    transforms: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    shape: (usize, usize, usize),
    op: String,
    args: (f64, f64),
    output: Vec<f32>,
}

fn fixture() -> Fixture {
    crate::recipes_fixture::read()
}

#[test]
fn each_transform_lands_on_the_pixels_of_pytorch_and_scipy() {
    let cases = fixture().transforms;
    assert!(cases.iter().any(|c| c.op == "rotate") && cases.iter().any(|c| c.op == "scale") && cases.iter().any(|c| c.op == "crop"));
    for case in cases {
        let (c, h, w) = case.shape;
        let mut ours = image(case.shape);
        let means: Vec<f32> =
            ours.chunks_exact(h * w).map(|p| (p.iter().map(|&v| v as f64).sum::<f64>() / (h * w) as f64) as f32).collect();
        let (a, b) = case.args;
        match case.op.as_str() {
            "crop" => crop(&mut ours, (c, h, w), (a as usize, b as usize), &means),
            "scale" => scale(&mut ours, (c, h, w), (a as usize, b as usize)),
            "rotate" => rotate::rotate(&mut ours, (c, h, w), a as i32, b as f32),
            other => panic!("unknown op {other}"),
        }
        let worst = ours.iter().zip(&case.output).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
        assert!(worst < 2e-5, "{} {:?} on {:?}: differs by up to {worst}", case.op, case.args, case.shape);
    }
}

#[test]
fn strategies_parse_by_name_and_the_old_name_reads_as_mnist() {
    assert_eq!(DcAugmentation::parse("mnist"), DcAugmentation::parse(DcAugmentation::MNIST));
    assert_eq!(DcAugmentation::parse("crop_noise").unwrap().name(), "crop_noise");
    assert_eq!(DcAugmentation::parse("rotate").unwrap().transforms, [Transform::Rotate]);
    for bad in ["", "dsa", "crop_", "crop_flip", "none"] {
        assert_eq!(DcAugmentation::parse(bad), None, "{bad}");
    }
}

#[test]
fn every_image_gets_one_transform_of_the_strategy() {
    // A single-transform strategy changes every image; `crop_noise` leaves an image either shifted
    // (pixels moved, the mean filling the border) or within 0.01 of itself (noise of std 0.001).
    let (c, h, w) = (1, 28, 28);
    let original: Vec<f32> = (0..8).flat_map(|_| image((c, h, w))).collect();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    let mut noisy = original.clone();
    DcAugmentation::parse("noise").unwrap().augment_batch(&mut noisy, (c, h, w), &mut rng);
    for (a, b) in noisy.chunks(h * w).zip(original.chunks(h * w)) {
        let worst = a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
        assert!(worst > 0.0 && worst < 0.01, "noise of std 0.001 moves a pixel by {worst}");
    }
    let mut mixed = original.clone();
    DcAugmentation::parse("crop_noise").unwrap().augment_batch(&mut mixed, (c, h, w), &mut rng);
    let noised =
        mixed.chunks(h * w).zip(original.chunks(h * w)).filter(|(a, b)| a.iter().zip(*b).all(|(x, y)| (x - y).abs() < 0.01)).count();
    assert!(noised > 0 && noised < 8, "{noised} of 8 images noised: each draws one of crop and noise");
}

/// The tensor path (a GPU's) lands on the host path's pixels on the CPU, from the same seeds, per
/// group of an ensemble's batch, and reads nothing back to the host.
#[test]
fn the_tensor_path_equals_the_host_path_and_reads_nothing() {
    use gradmatch_core::candle_core::Device;
    let cases = [
        ("crop_scale_rotate", (1, 28, 28), 1),
        ("crop_scale_rotate", (1, 28, 28), 3),
        ("crop_noise", (3, 32, 32), 2),
        ("scale_rotate", (3, 9, 7), 2),
    ];
    for (strategy, (c, h, w), groups) in cases {
        let n = 8 * groups;
        let values: Vec<f32> = (0..n).flat_map(|i| image((c, h, w)).into_iter().map(move |v| v * (1.0 + i as f32 * 0.1))).collect();
        let x = Tensor::from_vec(values, (n, c, h, w), &Device::Cpu).unwrap();
        let seeds: Vec<u64> = (0..groups as u64).map(|g| 40 + g).collect();
        let augmentation = DcAugmentation::parse(strategy).unwrap();
        let host = augmentation.augment_groups(&x, &seeds).unwrap();
        let mut reads = gradmatch_core::host::ReadMeter::start();
        let tensors = augmentation.augment_with_tensors(&x, &seeds).unwrap();
        assert_eq!(reads.lap(), 0, "{strategy}: the tensor path reads nothing");
        let worst = (host - tensors).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(worst < 2e-5, "{strategy} on {:?}, {groups} groups: differs by up to {worst}", (c, h, w));
    }
}
