//! Matching gradients against finite differences through the MNIST context.

use crate::{MnistContext, SquaredDiff};
use candle_core::{Result, Tensor};
use gradmatch_core::{Distance, GradientLevel, MatchContext};

/// Largest relative error tolerated against finite differences, as the engine's own test.
const TOLERANCE: f64 = 1e-5;

/// Checks d/d(synthetic images) of sum_c D(g_real_c, g_syn_c) by autodiff against finite
/// differences on real MNIST images. Panics if they disagree: the distance is not differentiable
/// as written (a detach, a host round trip, a non-smooth guard in the wrong place).
pub fn check_matching_gradient(distance: &dyn Distance) {
    let mut ctx = MnistContext::new().expect("the MNIST context");
    let mismatch = ctx
        .finite_difference_mismatch(&mut |ctx| class_sum(ctx, distance))
        .unwrap_or_else(|e| panic!("check_matching_gradient: the distance failed on a network's gradients: {e}"));
    assert!(
        mismatch.error < TOLERANCE,
        "check_matching_gradient: d/d(synthetic images) of sum_c D(real_c, syn_c) disagrees with central finite differences: \
         {mismatch}. The distance must reach `syn` through differentiable tensor operations only (no detach, no host values)"
    );
}

/// sum_c D(real_c, syn_c): the intra-class loss, here so that the kit needs no level crate.
fn class_sum(ctx: &mut MnistContext, distance: &dyn Distance) -> Result<Tensor> {
    let (real, syn) = (ctx.real_class_grads()?, ctx.syn_class_grads()?);
    let terms = real.iter().zip(&syn).map(|(r, s)| distance.distance(r, s)).collect::<Result<Vec<_>>>()?;
    Tensor::stack(&terms, 0)?.sum_all()
}

/// Checks, at iterations 0 and 1 (levels may alternate by parity), that the matching loss with a
/// squared-difference distance is a finite f64 scalar and that its gradient with respect to the
/// synthetic images agrees with finite differences on real MNIST images. Panics otherwise.
pub fn check_level(level: &dyn GradientLevel) {
    let mut ctx = MnistContext::new().expect("the MNIST context");
    for iteration in [0, 1] {
        ctx.iteration = iteration;
        let fail = |what: String| -> ! { panic!("check_level (iteration {iteration}): {what}") };
        let loss = level.matching_loss(&mut ctx, &SquaredDiff).unwrap_or_else(|e| fail(format!("matching_loss failed: {e}")));
        if !loss.to_scalar::<f64>().is_ok_and(f64::is_finite) {
            fail(format!("the loss must be a finite f64 scalar, got {loss}"));
        }
        let mismatch = ctx
            .finite_difference_mismatch(&mut |ctx| level.matching_loss(ctx, &SquaredDiff))
            .unwrap_or_else(|e| fail(format!("matching_loss failed: {e}")));
        if mismatch.error.is_nan() || mismatch.error >= TOLERANCE {
            fail(format!(
                "d(matching loss)/d(synthetic images) disagrees with central finite differences: {mismatch}. \
                 The loss must reach the synthetic gradients the context offers through differentiable tensor operations only"
            ));
        }
    }
}
