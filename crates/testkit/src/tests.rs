//! The kit against toy plug-ins: sound ones pass, each broken one fails with the law it breaks.

use super::*;
use candle_core::{Result, Tensor};
use gradmatch_core::{Distance, InnerTrainer, StepContext, StepStrategy};

#[test]
fn squared_difference_obeys_its_laws() {
    check_distance_laws(&SquaredDiff, &DistanceLaws { symmetric: true, ..DistanceLaws::UNIVERSAL });
}

/// Only where the synthetic side falls short of the real one: zero on identical inputs, asymmetric.
struct Shortfall;

impl Distance for Shortfall {
    fn distance(&self, real: &[Tensor], syn: &[Tensor]) -> Result<Tensor> {
        let terms = real.iter().zip(syn).map(|(a, b)| (a - b)?.relu()?.sum_all()).collect::<Result<Vec<_>>>()?;
        Tensor::stack(&terms, 0)?.sum_all()
    }
}

#[test]
#[should_panic(expected = "law `symmetric` fails")]
fn an_asymmetric_distance_fails_symmetry() {
    check_distance_laws(&Shortfall, &DistanceLaws { symmetric: true, ..DistanceLaws::UNIVERSAL });
}

/// Squared differences of the flattened sets over their norm product, unguarded: NaN on a zero side.
struct Unguarded;

impl Distance for Unguarded {
    fn distance(&self, real: &[Tensor], syn: &[Tensor]) -> Result<Tensor> {
        let (a, b) =
            (SquaredDiff.distance(real, syn)?, (SquaredDiff.distance(real, &zeros(real)?)? * SquaredDiff.distance(syn, &zeros(syn)?)?)?);
        a / b.sqrt()?
    }
}

fn zeros(ts: &[Tensor]) -> Result<Vec<Tensor>> {
    ts.iter().map(|t| t.zeros_like()).collect()
}

#[test]
#[should_panic(expected = "law `finite value and gradient when one side is all zeros` fails")]
fn a_distance_without_a_zero_guard_fails() {
    check_distance_laws(&Unguarded, &DistanceLaws::UNIVERSAL);
}

/// Trains `inner_epochs` and reports `inner_epochs + misreport`.
struct Table {
    misreport: usize,
}

impl StepStrategy for Table {
    fn train(&self, ctx: &StepContext, trainer: &mut dyn InnerTrainer) -> Result<usize> {
        for _ in 0..ctx.inner_epochs {
            trainer.train_epoch()?;
        }
        Ok(ctx.inner_epochs + self.misreport)
    }
}

#[test]
fn a_sound_step_strategy_passes() {
    check_step_strategy(&Table { misreport: 0 });
}

#[test]
#[should_panic(expected = "returned 2 epochs but called train_epoch 1 times")]
fn a_miscounting_step_strategy_fails() {
    check_step_strategy(&Table { misreport: 1 });
}

/// Trains until the validation loss stops falling: never, on a falling script.
struct UntilPlateau;

impl StepStrategy for UntilPlateau {
    fn train(&self, _: &StepContext, trainer: &mut dyn InnerTrainer) -> Result<usize> {
        let (mut epochs, mut previous) = (0, f64::INFINITY);
        while trainer.validation_loss()? < previous {
            previous = trainer.validation_loss()?;
            trainer.train_epoch()?;
            epochs += 1;
        }
        Ok(epochs)
    }
}

#[test]
#[should_panic(expected = "train failed: more than 1000 epochs")]
fn a_runaway_step_strategy_fails() {
    check_step_strategy(&UntilPlateau);
}
