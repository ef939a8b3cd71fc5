use gradmatch_core::{plugin_without_options, Augmentation, Result, Tensor};

/// No augmentation: the images as they are (DC, DM, MD, MDA).
#[derive(Debug, Default, Clone, Copy)]
pub struct NoAugmentation;

impl Augmentation for NoAugmentation {
    fn augment(&self, x: &Tensor, _seed: u64) -> Result<Tensor> {
        Ok(x.clone())
    }

    fn augment_each(&self, x: &Tensor, _seed: u64) -> Result<Tensor> {
        Ok(x.clone())
    }
}

plugin_without_options!(NoAugmentation, "none", "no augmentation: both sides of a match see the images as they are");
