//! The augmentations of gradmatch: `none` (the identity, DC's default), `dsa`, the Differentiable
//! Siamese Augmentation of Zhao & Bilen (ICML 2021): one random transform per batch, the same for
//! the real and the synthetic images of a match, differentiable with respect to the images; and
//! `idc`, IDC's arrangement of DSA's transforms (flip and colour always, one other, cutout).
#![cfg_attr(test, allow(clippy::disallowed_methods))] // tests read values to check them

mod affine;
mod color;
mod crop;
mod cutmix;
mod cutout;
mod dc;
mod dsa;
mod flip;
mod idc;
mod identity;
#[cfg(test)]
mod recipes_fixture;
mod transform;

pub use affine::{resample, resample_each, Affine};
pub use color::{brightness, contrast, saturation};
pub use crop::translate;
pub use cutmix::{CutBox, CutMix, Mix};
pub use cutout::{cutout, Square};
pub use dc::DcAugmentation;
pub use dsa::{Dsa, DsaOptions};
pub use flip::flip_horizontal;
pub use idc::Idc;
pub use identity::NoAugmentation;
pub use transform::Transform;
