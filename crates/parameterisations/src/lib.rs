//! What a synthetic image is: how the tensor the image optimiser learns becomes the images networks
//! see. [`Pixels`] (DC's: each stored image is an image) and [`MultiFormation`] (IDC's: each stored
//! image holds `factor x factor` smaller ones, upsampled before every use).
#![cfg_attr(test, allow(clippy::disallowed_methods))] // tests read values to check them

mod multi_formation;
mod pixels;

pub use multi_formation::MultiFormation;
pub use pixels::Pixels;
