//! What to match: gradient levels. Each turns the gradients a `MatchContext` offers into one loss.
#![cfg_attr(test, allow(clippy::disallowed_methods))] // tests read values to check them

mod inter;
mod interleaved;
mod intra;
mod multi;

pub use inter::InterClass;
pub use interleaved::Interleaved;
pub use intra::IntraClass;
pub use multi::MultiLevel;

#[cfg(test)]
mod tests;
