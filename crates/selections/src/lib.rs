//! Which real images make a coreset: the baselines of DC's table beside condensation. [`Random`]
//! (uniform draws, the Random baseline's), [`Herding`] (Welling, 2009: the images whose running mean
//! stays nearest the class mean in feature space), [`KCenter`] (Sener and Savarese, 2018: greedy
//! farthest-first cover of the class in feature space) and [`Forgetting`] (Toneva et al., 2019: the
//! images forgotten most often while a network trains). Features and forgetting counts come from
//! the [`SelectContext`] (a network trained on the whole split, which counts them as it trains).
#![cfg_attr(test, allow(clippy::disallowed_methods))] // tests read values to check them

mod features;
mod forgetting;
mod herding;
mod k_center;
mod random;

pub use features::Rows;
pub use forgetting::Forgetting;
pub use herding::Herding;
pub use k_center::KCenter;
pub use random::Random;

use gradmatch_core::{Result, SelectContext};

/// The class's indices when it has at least `n` images; otherwise an error naming the class and its size.
fn class_of(ctx: &dyn SelectContext, class: usize, n: usize) -> Result<&[usize]> {
    let indices = ctx.class_indices(class);
    if n > indices.len() {
        gradmatch_core::candle_core::bail!(
            "a coreset of {n} images of class {class}, which has {} training images: give ipc {} or less",
            indices.len(),
            indices.len()
        )
    }
    Ok(indices)
}

#[cfg(test)]
mod testing;
