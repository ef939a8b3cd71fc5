use gradmatch_core::{plugin_without_options, Parameterisation, Result, Tensor};

/// Each stored image is an image, as in DC.
#[derive(Debug, Default, Clone, Copy)]
pub struct Pixels;

impl Parameterisation for Pixels {
    fn images_per_stored(&self) -> usize {
        1
    }

    fn decode(&self, stored: &Tensor) -> Result<Tensor> {
        Ok(stored.clone())
    }

    fn encode(&self, real: &Tensor) -> Result<Tensor> {
        Ok(real.clone())
    }
}

plugin_without_options!(Pixels, "pixels", "each stored image is an image (DC)");
