use gradmatch_core::{Augmentation, NoOptions, OptionError, Plugin, Result, Tensor};

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

impl Plugin for NoAugmentation {
    const NAME: &'static str = "none";
    const SUMMARY: &'static str = "no augmentation: both sides of a match see the images as they are";
    type Options = NoOptions;
    fn from_options(_: NoOptions) -> std::result::Result<Self, OptionError> {
        Ok(NoAugmentation)
    }
}
