//! Checks for plug-in authors: one call tests a new distance, gradient level, step strategy,
//! augmentation, parameterisation or sampler against the laws its kind must obey, and its gradient against finite differences (a
//! matching gradient on real MNIST images through a small f64 ConvNet; an augmentation's on tiny images).
//!
//! ```
//! // In a distance crate's `#[test]`, with its own distance in place of the kit's `SquaredDiff`:
//! use gradmatch_testkit::{check_distance_laws, DistanceLaws, SquaredDiff};
//! check_distance_laws(&SquaredDiff, &DistanceLaws { symmetric: true, ..DistanceLaws::UNIVERSAL });
//! ```
//!
//! The laws of distances, step strategies and augmentations need no network and no data; the checks
//! through a network on MNIST (matching gradients, levels, parameterisations, samplers, selections,
//! and `check_distance` = laws + matching gradient) come with the `networks` feature, which
//! `crates/plugins/tests/every_plugin.rs` runs on every registered plug-in.
//!
//! Every check panics with a message naming the law that fails, so it is meant for `#[test]`s.
//! MNIST is read from the workspace's `data/` folder (fetched there on first use, see
//! `gradmatch_data::load`).
#![allow(clippy::disallowed_methods)] // a test kit: its reads are assertions

mod augmentation;
mod distance;
#[cfg(feature = "networks")]
mod gradient;
#[cfg(feature = "networks")]
mod mnist;
#[cfg(feature = "networks")]
mod parameterisation;
#[cfg(feature = "networks")]
mod sampler;
#[cfg(feature = "networks")]
mod selection;
mod step;

pub use augmentation::check_augmentation;
#[cfg(feature = "networks")]
pub use distance::check_distance;
pub use distance::{check_distance_laws, gradient_set, gradient_values, tensor, value, Bound, DistanceLaws, SquaredDiff};
#[cfg(feature = "networks")]
pub use gradient::{check_level, check_matching_gradient};
#[cfg(feature = "networks")]
pub use mnist::{Mismatch, MnistContext};
#[cfg(feature = "networks")]
pub use parameterisation::check_parameterisation;
#[cfg(feature = "networks")]
pub use sampler::check_sampler;
#[cfg(feature = "networks")]
pub use selection::check_selection;
pub use step::check_step_strategy;

#[cfg(all(test, feature = "networks"))]
mod network_tests;
#[cfg(test)]
mod tests;
