//! Step strategies against scripted trainers.

use candle_core::Result;
use gradmatch_core::{InnerTrainer, StepContext, StepStrategy};

/// Most epochs one training phase may run: beyond it the check calls the strategy a runaway.
const CAP: usize = 1000;

/// A validation loss by epochs trained so far.
type Script = fn(usize) -> f64;

/// The scripts, each named for failure messages.
const SCRIPTS: [(&str, Script); 4] = [
    ("falling", |e| 10.0 / (1.0 + e as f64)),
    ("rising", |e| 1.0 + e as f64),
    ("flat", |_| 1.0),
    // Deterministic noise: the same script twice gives the same losses.
    ("noisy", |e| 1.0 + ((e * 7919) % 13) as f64 / 13.0),
];

/// Early, middle and last matching steps, with the loops table's epochs from 0 to 50.
const CONTEXTS: [StepContext; 4] = [
    StepContext { outer_step: 0, outer_loop: 1, inner_epochs: 1 },
    StepContext { outer_step: 0, outer_loop: 10, inner_epochs: 50 },
    StepContext { outer_step: 5, outer_loop: 10, inner_epochs: 10 },
    StepContext { outer_step: 49, outer_loop: 50, inner_epochs: 0 },
];

/// A trainer whose validation loss follows a script; counts epochs, refuses to run past [`CAP`].
struct Scripted {
    script: Script,
    epochs: usize,
}

impl InnerTrainer for Scripted {
    fn train_epoch(&mut self) -> Result<()> {
        if self.epochs == CAP {
            candle_core::bail!("more than {CAP} epochs in one training phase")
        }
        self.epochs += 1;
        Ok(())
    }
    fn validation_loss(&mut self) -> Result<f64> {
        Ok((self.script)(self.epochs))
    }
}

/// Checks, for every script and context, that the returned count equals the epochs trained, that a
/// second run returns the same, and that training stops within 1000 epochs. Panics otherwise.
pub fn check_step_strategy(steps: &dyn StepStrategy) {
    for ctx in &CONTEXTS {
        for (name, script) in SCRIPTS {
            let run = || {
                let mut trainer = Scripted { script, epochs: 0 };
                (steps.train(ctx, &mut trainer), trainer.epochs)
            };
            let fail = |what: String| -> ! { panic!("check_step_strategy ({name} validation loss, {ctx:?}): {what}") };
            let (count, epochs) = run();
            let count = count.unwrap_or_else(|e| fail(format!("train failed: {e}")));
            if count != epochs {
                fail(format!("returned {count} epochs but called train_epoch {epochs} times"));
            }
            match run().0 {
                Ok(again) if again == count => {}
                again => fail(format!("not deterministic: returned {count}, then {again:?} on the same script")),
            }
        }
    }
}
