//! How long to train the network between matching steps.
#![cfg_attr(test, allow(clippy::disallowed_methods))] // tests read values to check them

use gradmatch_core::{plugin_without_options, InnerTrainer, OptionError, Plugin, Result, StepContext, StepStrategy};

/// DC: the loops table's `inner` epochs every time.
#[derive(Debug, Default, Clone, Copy)]
pub struct Fixed;

impl StepStrategy for Fixed {
    fn train(&self, ctx: &StepContext, trainer: &mut dyn InnerTrainer) -> Result<usize> {
        for _ in 0..ctx.inner_epochs {
            trainer.train_epoch()?;
        }
        Ok(ctx.inner_epochs)
    }
}

plugin_without_options!(Fixed, "fixed", "inner epochs from the loops table (DC)");

/// The paper's "A": long training early in an outer iteration, short later.
pub fn adaptive_epochs(outer_step: usize) -> usize {
    match outer_step {
        0..=3 => 50 - 10 * outer_step,
        4..=9 => 10,
        _ => 5,
    }
}

/// Epochs by [`adaptive_epochs`], whatever the loops table says.
#[derive(Debug, Default, Clone, Copy)]
pub struct Adaptive;

impl StepStrategy for Adaptive {
    fn train(&self, ctx: &StepContext, trainer: &mut dyn InnerTrainer) -> Result<usize> {
        let epochs = adaptive_epochs(ctx.outer_step);
        for _ in 0..epochs {
            trainer.train_epoch()?;
        }
        Ok(epochs)
    }
}

plugin_without_options!(Adaptive, "adaptive", "50, 40, 30, 20 epochs, then 10 until step 10, then 5 (the paper's A)");

/// Trains until the loss on a real validation batch rises (that epoch counts), at most
/// `max_epochs`: the network stops before it overfits the synthetic set.
#[derive(Debug, Clone, Copy, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OverfittingAware {
    pub max_epochs: usize,
}

impl Default for OverfittingAware {
    fn default() -> Self {
        OverfittingAware { max_epochs: 50 }
    }
}

impl StepStrategy for OverfittingAware {
    fn train(&self, _ctx: &StepContext, trainer: &mut dyn InnerTrainer) -> Result<usize> {
        let mut previous = trainer.validation_loss()?;
        for epoch in 1..=self.max_epochs {
            trainer.train_epoch()?;
            let loss = trainer.validation_loss()?;
            if loss > previous {
                return Ok(epoch);
            }
            previous = loss;
        }
        Ok(self.max_epochs)
    }
}

impl Plugin for OverfittingAware {
    const NAME: &'static str = "overfitting-aware";
    const SUMMARY: &'static str = "train until the loss on a real batch rises, at most max_epochs";
    type Options = Self;
    fn from_options(o: Self) -> std::result::Result<Self, OptionError> {
        OptionError::at_least_one("max_epochs", o.max_epochs)?;
        Ok(o)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gradmatch_testkit::check_step_strategy;

    /// Scripted validation losses; counts epochs.
    struct Script {
        losses: Vec<f64>,
        epochs: usize,
    }

    impl InnerTrainer for Script {
        fn train_epoch(&mut self) -> Result<()> {
            self.epochs += 1;
            Ok(())
        }
        fn validation_loss(&mut self) -> Result<f64> {
            Ok(self.losses.get(self.epochs).copied().unwrap_or(0.0))
        }
    }

    const CTX: StepContext = StepContext { outer_step: 2, outer_loop: 10, inner_epochs: 7 };

    #[test]
    fn fixed_runs_the_table_epochs() {
        let mut t = Script { losses: vec![], epochs: 0 };
        assert_eq!(Fixed.train(&CTX, &mut t).unwrap(), 7);
        assert_eq!(t.epochs, 7);
    }

    #[test]
    fn adaptive_schedule() {
        let got: Vec<usize> = (0..12).map(adaptive_epochs).collect();
        assert_eq!(got, [50, 40, 30, 20, 10, 10, 10, 10, 10, 10, 5, 5]);
        let mut t = Script { losses: vec![], epochs: 0 };
        assert_eq!(Adaptive.train(&CTX, &mut t).unwrap(), 30);
        assert_eq!(t.epochs, 30);
    }

    #[test]
    fn overfitting_aware_stops_at_the_first_rise() {
        let mut t = Script { losses: vec![2.0, 1.5, 1.2, 1.3, 0.1], epochs: 0 };
        assert_eq!(OverfittingAware::default().train(&CTX, &mut t).unwrap(), 3);
        assert_eq!(t.epochs, 3);
    }

    #[test]
    fn overfitting_aware_caps_at_max_epochs() {
        let mut t = Script { losses: (0..100).map(|i| 10.0 - i as f64 * 0.01).collect(), epochs: 0 };
        assert_eq!(OverfittingAware { max_epochs: 50 }.train(&CTX, &mut t).unwrap(), 50);
        assert_eq!(t.epochs, 50);
    }

    #[test]
    fn every_strategy_counts_its_epochs() {
        check_step_strategy(&Fixed);
        check_step_strategy(&Adaptive);
        check_step_strategy(&OverfittingAware::default());
    }
}
