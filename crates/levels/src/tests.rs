//! Levels against hand computations with a mock context and a squared-difference distance, and
//! against finite differences through the test kit's MNIST context.

use crate::{InterClass, Interleaved, IntraClass, MultiLevel};
use gradmatch_core::candle_core::{Device, Result, Tensor, Var};
use gradmatch_core::{GradientLevel, MatchContext};
use gradmatch_testkit::{check_level, SquaredDiff};

/// Class c: real gradient [c], synthetic gradient [s_c] (a Var), mixed ones [100] and [s_mixed].
struct Mock {
    syn: Vec<Var>,
    mixed_syn: Var,
    iteration: usize,
    calls: [usize; 4],
}

impl Mock {
    fn new(classes: usize) -> Mock {
        let syn = (0..classes).map(|c| Var::new(&[c as f64 + 0.5], &Device::Cpu).unwrap()).collect();
        Mock { syn, mixed_syn: Var::new(&[98.0], &Device::Cpu).unwrap(), iteration: 0, calls: [0; 4] }
    }
}

impl MatchContext for Mock {
    fn num_classes(&self) -> usize {
        self.syn.len()
    }
    fn iteration(&self) -> usize {
        self.iteration
    }
    fn real_class_grads(&mut self) -> Result<Vec<Vec<Tensor>>> {
        self.calls[0] += 1;
        (0..self.syn.len()).map(|c| Ok(vec![Tensor::new(&[c as f64], &Device::Cpu)?])).collect()
    }
    fn syn_class_grads(&mut self) -> Result<Vec<Vec<Tensor>>> {
        self.calls[1] += 1;
        Ok(self.syn.iter().map(|s| vec![s.as_tensor().clone()]).collect())
    }
    fn real_mixed_grads(&mut self, n: usize) -> Result<Vec<Tensor>> {
        assert_eq!(n, 1024);
        self.calls[2] += 1;
        Ok(vec![Tensor::new(&[100.0], &Device::Cpu)?])
    }
    fn syn_mixed_grads(&mut self, max: usize) -> Result<Vec<Tensor>> {
        assert_eq!(max, 256);
        self.calls[3] += 1;
        Ok(vec![self.mixed_syn.as_tensor().clone()])
    }
}

fn loss(level: &dyn GradientLevel, ctx: &mut Mock) -> f64 {
    level.matching_loss(ctx, &SquaredDiff).unwrap().to_scalar::<f64>().unwrap()
}

#[test]
fn intra_sums_per_class_distances() {
    let mut ctx = Mock::new(4);
    assert_eq!(loss(&IntraClass, &mut ctx), 4.0 * 0.25);
    assert_eq!(ctx.calls, [1, 1, 0, 0], "one call computes every class");
    // The gradient reaches every class's synthetic tensor: dL/ds_c = 2 (s_c - c) = 1.
    let grads = IntraClass.matching_loss(&mut ctx, &SquaredDiff).unwrap().backward().unwrap();
    for v in &ctx.syn {
        assert_eq!(grads.get(v.as_tensor()).unwrap().to_vec1::<f64>().unwrap(), [1.0]);
    }
}

#[test]
fn inter_weights_the_mixed_distance_by_the_class_count() {
    let mut ctx = Mock::new(10);
    assert_eq!(loss(&InterClass::default(), &mut ctx), 10.0 * 4.0);
    assert_eq!(ctx.calls, [0, 0, 1, 1]);
}

#[test]
fn interleaved_alternates_by_iteration_parity() {
    let mut ctx = Mock::new(4);
    assert_eq!(loss(&Interleaved::default(), &mut ctx), 1.0);
    ctx.iteration = 1;
    assert_eq!(loss(&Interleaved::default(), &mut ctx), 4.0 * 4.0);
    ctx.iteration = 2;
    assert_eq!(loss(&Interleaved::default(), &mut ctx), 1.0);
    assert_eq!(ctx.calls, [2, 2, 1, 1]);
}

#[test]
fn multi_level_adds_the_weighted_distance_of_class_means() {
    // Real mean over classes 0..4 = 1.5, synthetic mean = 2.0: inter term (0.5)^2 = 0.25.
    let mut ctx = Mock::new(4);
    assert_eq!(loss(&MultiLevel::default(), &mut ctx), 1.0 + 4.0 * 0.25);
    assert_eq!(ctx.calls, [1, 1, 0, 0], "each class's gradients are computed once");
    assert_eq!(loss(&MultiLevel { inter_weight: Some(2.0) }, &mut ctx), 1.0 + 2.0 * 0.25);
    // dL/ds_c = 2 (s_c - c) + w * 2 (mean_s - mean_r) / C = 1 + 4 * 1.0 / 4 = 2.
    let grads = MultiLevel::default().matching_loss(&mut ctx, &SquaredDiff).unwrap().backward().unwrap();
    for v in &ctx.syn {
        assert!((grads.get(v.as_tensor()).unwrap().to_vec1::<f64>().unwrap()[0] - 2.0).abs() < 1e-12);
    }
}

#[test]
fn every_level_differentiates_to_the_synthetic_images() {
    check_level(&IntraClass);
    check_level(&InterClass::default());
    check_level(&Interleaved::default());
    check_level(&MultiLevel::default());
}
