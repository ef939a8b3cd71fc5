//! Which real images to match against: how each class's real batch is chosen at every matching step.
//! [`Random`] (DC's: uniform draws) and [`Dream`] (Liu et al., ICCV 2023: the images nearest the
//! k-means centres of the network's features), with the k-means both share, [`KMeans`], in candle's
//! operations (so it runs where the features are, a GPU included).
#![cfg_attr(test, allow(clippy::disallowed_methods))] // tests read values to check them

mod dream;
mod kmeans;
mod random;

pub use dream::Dream;
pub use kmeans::{Clustering, KMeans};
pub use random::Random;
