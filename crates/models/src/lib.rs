//! Networks for condensing and evaluating. Every layer has an explicit backward written in candle
//! operations (see [`layers`]), so the parameter gradient of a loss is an ordinary tensor expression
//! that candle's first-order autodiff differentiates with respect to the images.
//!
//! Every network exposes its parameters as named [`Var`](candle_core::Var)s in a stable order
//! (creation = forward order), shapes output-first as in PyTorch, initialised like PyTorch's defaults
//! from a seeded host RNG (the same seed gives the same network on every device).
#![cfg_attr(test, allow(clippy::disallowed_methods))] // tests read values to check them

pub mod arch;
mod footprint;
pub mod gemm;
pub mod layers;
mod loss;
mod network;
mod params;
#[cfg(feature = "reference")]
pub mod reference;
mod spec;

pub use footprint::{Footprint, MAX_TENSOR_ELEMENTS};
pub use layers::Mode;
pub use loss::{correct_counts, cross_entropy, cross_entropy_grad, one_hot};
pub use network::Network;
pub use params::{Param, ParamRef};
pub use spec::{Act, Arch, ModelSpec, NormKind, PoolKind};
