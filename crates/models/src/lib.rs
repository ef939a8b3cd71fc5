//! Networks for condensing and evaluating, written with differentiable candle ops only, so that the
//! gradient of a loss with respect to the parameters can itself be differentiated (second order).
//!
//! Every network exposes its parameters as named [`Var`](candle_core::Var)s in a stable order
//! (creation = forward order), shapes output-first as in PyTorch, initialised like PyTorch's defaults
//! from a seeded host RNG (the same seed gives the same network on every device).

pub mod arch;
pub mod layers;
mod loss;
mod network;
mod params;
mod spec;

pub use layers::Mode;
pub use loss::{accuracy_count, cross_entropy, one_hot};
pub use network::Network;
pub use params::Param;
pub use spec::{Act, Arch, ModelSpec, NormKind, PoolKind};
