//! Checks for plug-in authors: one call tests a new distance, gradient level, step strategy,
//! augmentation, parameterisation or sampler against the laws its kind must obey, and its gradient against finite differences (a
//! matching gradient on real MNIST images through a small f64 ConvNet; an augmentation's on tiny images).
//!
//! ```
//! // In a distance crate's `#[test]`, with its own distance in place of the kit's `SquaredDiff`:
//! use gradmatch_testkit::{check_distance, DistanceLaws, SquaredDiff};
//! check_distance(&SquaredDiff, &DistanceLaws { symmetric: true, ..DistanceLaws::UNIVERSAL });
//! ```
//!
//! Every check panics with a message naming the law that fails, so it is meant for `#[test]`s.
//! MNIST is read from the workspace's `data/` folder (fetched there on first use, see
//! `gradmatch_data::load`).

mod augmentation;
mod distance;
mod gradient;
mod mnist;
mod parameterisation;
mod sampler;
mod selection;
mod step;

pub use augmentation::check_augmentation;
pub use distance::{check_distance, gradient_set, gradient_values, tensor, value, Bound, DistanceLaws, SquaredDiff};
pub use gradient::{check_level, check_matching_gradient};
pub use mnist::{Mismatch, MnistContext};
pub use parameterisation::check_parameterisation;
pub use sampler::check_sampler;
pub use selection::check_selection;
pub use step::check_step_strategy;

#[cfg(test)]
mod tests;
