//! Shared types and the three plug-in traits of gradmatch, one per question the paper asks:
//!
//! * **what to match**: [`GradientLevel`] (intra-class, inter-class, interleaved, multi-level, ...);
//! * **how to match**: [`Distance`] (angle, magnitude, combined, ...);
//! * **how long to train between matches**: [`StepStrategy`] (fixed, adaptive, overfitting-aware, ...).
//!
//! Plug-in crates depend on this crate only; the runner composes them by name through a [`Registry`].

mod distance;
mod level;
mod loops;
mod registry;
mod step;

pub use distance::{as_rows, sum_over_tensors, Distance};
pub use level::{GradientLevel, MatchContext};
pub use loops::Loops;
pub use registry::{did_you_mean, number_option, Params, PluginError, Registry};
pub use step::{InnerTrainer, StepContext, StepStrategy};

/// Re-exported so that plug-in crates need no direct candle dependency to name tensors.
pub use candle_core::{Result, Tensor};
