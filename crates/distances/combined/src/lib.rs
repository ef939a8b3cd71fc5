//! The combined distance of Jiang et al. (the paper's "D", "improved" in its code): angle + magnitude.

use gradmatch_core::{Distance, Result, Tensor};
use gradmatch_distance_angle::Angle;
use gradmatch_distance_magnitude::Magnitude;

pub const NAME: &str = "combined";
pub const SUMMARY: &str = "angle + magnitude, per row (the paper's D)";

#[derive(Debug, Default, Clone, Copy)]
pub struct Combined;

impl Distance for Combined {
    fn distance(&self, real: &[Tensor], syn: &[Tensor]) -> Result<Tensor> {
        Angle.distance(real, syn)? + Magnitude.distance(real, syn)?
    }
}
