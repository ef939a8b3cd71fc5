//! DSA's augmentation in its default mode ("S": one transform per batch, chosen at random from the
//! strategy) with Siamese parameters, after VICO-UoE/DatasetCondensation, utils.py (`DiffAugment`,
//! `ParamDiffAug` and the `rand_*` functions).

use crate::{brightness, contrast, cutout, flip_horizontal, resample, resample_each, saturation, translate, Affine, Square, Transform};
use gradmatch_core::{Augmentation, OptionError, Plugin, Result, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Deserialize;

/// DSA's parameters, with its defaults (`ParamDiffAug`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DsaOptions {
    /// The transforms to choose from, joined by `_`.
    pub strategy: String,
    /// Probability of a horizontal flip.
    pub flip: f64,
    /// Each axis is stretched by a factor in [1 / scale, scale].
    pub scale: f64,
    /// Largest rotation, in degrees either way.
    pub rotate: f64,
    /// Largest translation, as a fraction of the side.
    pub crop: f64,
    /// Side of the cut-out square, as a fraction of the image's side.
    pub cutout: f64,
    /// Brightness shift in [-brightness / 2, brightness / 2].
    pub brightness: f64,
    /// Saturation factor in [0, saturation].
    pub saturation: f64,
    /// Contrast factor in [contrast, contrast + 1].
    pub contrast: f64,
}

impl Default for DsaOptions {
    fn default() -> Self {
        DsaOptions {
            strategy: "color_crop_cutout_flip_scale_rotate".into(),
            flip: 0.5,
            scale: 1.2,
            rotate: 15.0,
            crop: 0.125,
            cutout: 0.5,
            brightness: 1.0,
            saturation: 2.0,
            contrast: 0.5,
        }
    }
}

/// Differentiable Siamese Augmentation (Zhao & Bilen, ICML 2021).
#[derive(Debug, Clone)]
pub struct Dsa {
    options: DsaOptions,
    transforms: Vec<Transform>,
}

impl Plugin for Dsa {
    const NAME: &'static str = "dsa";
    const SUMMARY: &'static str =
        "DSA: one random transform per batch (colour, crop, cutout, flip, scale or rotate), the same on both sides";
    type Options = DsaOptions;

    fn from_options(options: DsaOptions) -> std::result::Result<Self, OptionError> {
        let transforms = Transform::parse_strategy("strategy", &options.strategy)?;
        for (field, value) in [
            ("rotate", options.rotate),
            ("brightness", options.brightness),
            ("saturation", options.saturation),
            ("contrast", options.contrast),
        ] {
            OptionError::non_negative(field, value)?;
        }
        for (field, value) in [("flip", options.flip), ("crop", options.crop), ("cutout", options.cutout)] {
            if !(0.0..=1.0).contains(&value) {
                return Err(OptionError { field, message: format!("expected a fraction in [0, 1], found {value}") });
            }
        }
        if !(options.scale.is_finite() && options.scale >= 1.0) {
            return Err(OptionError { field: "scale", message: format!("expected a factor >= 1, found {}", options.scale) });
        }
        Ok(Dsa { options, transforms })
    }
}

impl Augmentation for Dsa {
    fn augment(&self, x: &Tensor, seed: u64) -> Result<Tensor> {
        // Every draw comes from the seed, never from the batch: the Siamese property.
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let transform = self.pick(&mut rng);
        self.apply(transform, x, &mut rng)
    }

    /// DSA's default for training batches: one transform for the batch, its parameters per image.
    fn augment_each(&self, x: &Tensor, seed: u64) -> Result<Tensor> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let transform = self.pick(&mut rng);
        self.apply_each(transform, x, &mut rng)
    }
}

impl Dsa {
    /// The transform that `seed` applies.
    pub fn transform(&self, seed: u64) -> Transform {
        self.pick(&mut ChaCha8Rng::seed_from_u64(seed))
    }

    /// DSA's mode "S": one transform of the strategy, uniformly.
    fn pick(&self, rng: &mut ChaCha8Rng) -> Transform {
        self.transforms[rng.random_range(0..self.transforms.len())]
    }

    /// `transform` on every image of `x` with parameters of its own, drawn from `rng` in image order.
    pub(crate) fn apply_each(&self, transform: Transform, x: &Tensor, rng: &mut ChaCha8Rng) -> Result<Tensor> {
        let n = x.dim(0)?;
        if matches!(transform, Transform::Scale | Transform::Rotate) {
            let maps: Vec<Affine> = (0..n).map(|_| self.affine(transform, rng)).collect();
            return resample_each(x, &maps);
        }
        let images = (0..n).map(|i| self.apply(transform, &x.narrow(0, i, 1)?, rng)).collect::<Result<Vec<_>>>()?;
        Tensor::cat(&images, 0)
    }

    /// The strategy's transforms, in its order.
    pub(crate) fn transforms(&self) -> &[Transform] {
        &self.transforms
    }

    /// `transform` with its parameters drawn from `rng`, by DSA's formulas.
    pub(crate) fn apply(&self, transform: Transform, x: &Tensor, rng: &mut ChaCha8Rng) -> Result<Tensor> {
        let o = &self.options;
        let (h, w) = (x.dim(2)?, x.dim(3)?);
        match transform {
            Transform::Color => {
                let x = brightness(x, (rng.random::<f64>() - 0.5) * o.brightness)?;
                let x = saturation(&x, rng.random::<f64>() * o.saturation)?;
                contrast(&x, rng.random::<f64>() + o.contrast)
            }
            Transform::Crop => {
                let (rows, cols) = (fraction_of(h, o.crop) as i64, fraction_of(w, o.crop) as i64);
                let (by_rows, by_cols) = (rng.random_range(-rows..=rows), rng.random_range(-cols..=cols));
                translate(x, by_rows as isize, by_cols as isize)
            }
            Transform::Cutout => {
                let size = (fraction_of(h, o.cutout), fraction_of(w, o.cutout));
                // An odd square's centre stays inside; an even one's may sit one past the last pixel.
                let centre = (rng.random_range(0..h + 1 - size.0 % 2), rng.random_range(0..w + 1 - size.1 % 2));
                cutout(x, Square { centre, size })
            }
            Transform::Flip if rng.random::<f64>() < o.flip => flip_horizontal(x),
            Transform::Flip => Ok(x.clone()),
            Transform::Scale | Transform::Rotate => resample(x, self.affine(transform, rng)),
        }
    }

    /// The map of a scale or a rotation, its parameters drawn from `rng` by DSA's formulas.
    fn affine(&self, transform: Transform, rng: &mut ChaCha8Rng) -> Affine {
        let o = &self.options;
        match transform {
            Transform::Rotate => Affine::rotation(((rng.random::<f64>() - 0.5) * 2.0 * o.rotate).to_radians()),
            _ => {
                let mut factor = || rng.random::<f64>() * (o.scale - 1.0 / o.scale) + 1.0 / o.scale;
                Affine::scale(factor(), factor())
            }
        }
    }
}

/// `int(side * ratio + 0.5)`, DSA's rounding of a fraction of a side.
fn fraction_of(side: usize, ratio: f64) -> usize {
    (side as f64 * ratio + 0.5) as usize
}
