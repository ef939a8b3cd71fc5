//! Shared types and the plug-in traits of gradmatch, one per question the paper asks:
//!
//! * **what to match**: [`GradientLevel`] (intra-class, inter-class, interleaved, multi-level, ...);
//! * **how to match**: [`Distance`] (angle, magnitude, combined, ...);
//! * **how long to train between matches**: [`StepStrategy`] (fixed, adaptive, overfitting-aware, ...);
//! * **what both sides of a match see**: [`Augmentation`] (none, DSA's Siamese augmentation, ...);
//! * **what a synthetic image is**: [`Parameterisation`] (pixels, IDC's multi-formation, ...);
//! * **which real images to match against**: [`Sampler`] (uniform draws, DREAM's representatives, ...);
//! * **which real images make a coreset**: [`Selection`] (random, herding, k-center, forgetting: the
//!   baselines of DC's table).
//!
//! Each plug-in also implements [`Plugin`] (its name, summary and typed options). Plug-in crates
//! depend on this crate only; `gradmatch-plugins` registers them by name for configs and checks.
#![cfg_attr(test, allow(clippy::disallowed_methods))] // tests read values to check them

mod augment;
mod distance;
pub mod flops;
pub mod host;
mod level;
mod loops;
#[macro_use]
mod method;
mod parameterisation;
mod plugin;
mod sampler;
mod selection;
mod step;

pub use augment::{image_seed, mix64, Augmentation};
pub use distance::{as_rows, at_least, flatten_into_one, sum_over_tensors, Distance};
pub use level::{GradientLevel, MatchContext};
pub use loops::Loops;
pub use method::{Borrowed, EachKind, ForKind, Hold, HoldDefault, Holds, Kind, KindFacts, Nothing, Shared, ZipKind};
pub use parameterisation::Parameterisation;
pub use plugin::{NoOptions, OptionError, Plugin};
pub use sampler::{ClassBatches, SampleContext, Sampler};
pub use selection::{SelectContext, Selection};
pub use step::{InnerTrainer, StepContext, StepStrategy};

// The kinds of a condensation method: one line each, the only list of them (a new kind is its trait
// module above and its line here; `Method`, the experiment file, the provenance, the registries and
// the `condense` flags follow).
method_kinds! {
    /// What to match.
    level: dyn GradientLevel = "intra", "gradient level", "gradient levels";
    /// How to match.
    distance: dyn Distance = "angle", "distance", "distances";
    /// How long to train between matches.
    steps: dyn StepStrategy = "fixed", "step strategy", "step strategies";
    /// What both sides of a match see, and the inner training's batches.
    augment: dyn Augmentation = "none", "augmentation", "augmentations";
    /// What a synthetic image is: what the image optimiser learns, and how it decodes into the images
    /// networks see.
    parameterisation: dyn Parameterisation = "pixels", "parameterisation", "parameterisations";
    /// Which real images each class's matches are made against.
    sampler: dyn Sampler = "random", "sampler", "samplers";
}

/// Re-exported so that a plug-in crate depends on this crate alone: `gradmatch_core::candle_core`.
pub use candle_core;
pub use candle_core::{Result, Tensor};
/// Re-exported for samplers, whose draws come from the run's stream: `gradmatch_core::rand`.
pub use rand;
