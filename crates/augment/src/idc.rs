//! IDC's augmentation (snu-mllab/Efficient-Dataset-Condensation, misc/augment.py: `DiffAug`): the
//! flip and the colour transforms of the strategy on every batch, then one transform drawn
//! uniformly from the rest of it (`single_aug`: crop, scale, rotate), then its cutout. DSA's
//! transforms and formulas (`ParamDiffAug`'s values are `DiffAug`'s), in IDC's arrangement.

use crate::{Dsa, DsaOptions, Transform};
use gradmatch_core::{Augmentation, OptionError, Plugin, Result, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// IDC's `DiffAug` on a strategy such as `color_crop_cutout_flip_scale_rotate` (its default).
#[derive(Debug, Clone)]
pub struct Idc {
    dsa: Dsa,
    /// The strategy's transforms that `DiffAug` draws one of per batch, in the strategy's order.
    single: Vec<Transform>,
}

impl Plugin for Idc {
    const NAME: &'static str = "idc";
    const SUMMARY: &'static str = "IDC's DiffAug: flip and colour on every batch, then one of the strategy's other transforms, then cutout";
    type Options = DsaOptions;

    fn from_options(options: DsaOptions) -> std::result::Result<Self, OptionError> {
        let dsa = Dsa::from_options(options)?;
        let single = dsa.transforms().iter().copied().filter(|t| !Self::EVERY_BATCH.contains(t) && *t != Transform::Cutout).collect();
        Ok(Idc { dsa, single })
    }
}

impl Idc {
    /// What `DiffAug` applies to every batch before its single draw, in its order.
    const EVERY_BATCH: [Transform; 2] = [Transform::Flip, Transform::Color];

    /// The transforms a batch goes through, in `DiffAug.__call__`'s order, the single one drawn
    /// from `rng`.
    pub fn stages(&self, rng: &mut ChaCha8Rng) -> Vec<Transform> {
        let has = |t: Transform| self.dsa.transforms().contains(&t);
        let mut stages: Vec<Transform> = Self::EVERY_BATCH.into_iter().filter(|&t| has(t)).collect();
        if !self.single.is_empty() {
            stages.push(self.single[rng.random_range(0..self.single.len())]);
        }
        if has(Transform::Cutout) {
            stages.push(Transform::Cutout);
        }
        stages
    }
}

impl Augmentation for Idc {
    /// `DiffAug(batch=True)`, the matching's: one draw of every parameter for the batch.
    fn augment(&self, x: &Tensor, seed: u64) -> Result<Tensor> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        self.stages(&mut rng).into_iter().try_fold(x.clone(), |x, t| self.dsa.apply(t, &x, &mut rng))
    }

    /// `DiffAug(batch=False)`, the evaluation's (`train.py`): the single transform drawn for the
    /// batch, every parameter per image.
    fn augment_each(&self, x: &Tensor, seed: u64) -> Result<Tensor> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        self.stages(&mut rng).into_iter().try_fold(x.clone(), |x, t| self.dsa.apply_each(t, &x, &mut rng))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gradmatch_core::candle_core::Device;

    fn idc(strategy: &str) -> Idc {
        Idc::from_options(DsaOptions { strategy: strategy.into(), ..DsaOptions::default() }).unwrap()
    }

    #[test]
    fn flip_and_colour_come_first_cutout_last_and_one_other_between() {
        let augment = idc("color_crop_cutout_flip_scale_rotate");
        let mut drawn = std::collections::BTreeSet::new();
        for seed in 0..200 {
            let stages = augment.stages(&mut ChaCha8Rng::seed_from_u64(seed));
            assert_eq!(stages.len(), 4, "{stages:?}");
            assert_eq!(stages[..2], [Transform::Flip, Transform::Color]);
            assert_eq!(stages[3], Transform::Cutout);
            drawn.insert(stages[2].name());
        }
        assert_eq!(drawn.into_iter().collect::<Vec<_>>(), ["crop", "rotate", "scale"], "each of the others is drawn");
        // IDC's MNIST evaluation: no flip (`remove_aug(.., 'flip')`), no cutout under CutMix.
        let mnist = idc("color_crop_scale_rotate").stages(&mut ChaCha8Rng::seed_from_u64(3));
        assert_eq!(mnist.len(), 2);
        assert_eq!(mnist[0], Transform::Color);
        assert!(matches!(mnist[1], Transform::Crop | Transform::Scale | Transform::Rotate));
        assert_eq!(idc("flip_color").stages(&mut ChaCha8Rng::seed_from_u64(1)), [Transform::Flip, Transform::Color]);
    }

    #[test]
    fn training_batches_draw_per_image_and_matches_per_batch() {
        // Contrast and brightness per image change two equal images differently; one draw for the
        // batch changes them alike. Deterministic given the seed.
        let augment = idc("color");
        let image = Tensor::arange(0f64, 16.0, &Device::Cpu).unwrap().reshape((1, 1, 4, 4)).unwrap();
        let batch = Tensor::cat(&[&image, &image], 0).unwrap();
        let rows = |t: &Tensor| -> Vec<Vec<f64>> { t.flatten_from(1).unwrap().to_vec2().unwrap() };
        let each = rows(&augment.augment_each(&batch, 5).unwrap());
        assert_ne!(each[0], each[1]);
        let siamese = rows(&augment.augment(&batch, 5).unwrap());
        assert_eq!(siamese[0], siamese[1]);
        assert_eq!(rows(&augment.augment_each(&batch, 5).unwrap()), each);
    }

    #[test]
    fn options_are_checked_as_dsa_checks_them() {
        let bad = Idc::from_options(DsaOptions { strategy: "color_zoom".into(), ..DsaOptions::default() }).unwrap_err();
        assert_eq!(bad.field, "strategy");
        let bad = Idc::from_options(DsaOptions { flip: 1.5, ..DsaOptions::default() }).unwrap_err();
        assert_eq!(bad.field, "flip");
    }
}
