//! CutMix (Yun et al., ICCV 2019) as IDC's `train_epoch` applies it to a training batch (snu-mllab/
//! Efficient-Dataset-Condensation, `train.py` with `misc/utils.py`'s `rand_bbox` and
//! `random_indices`): with probability `p`, `lam ~ Beta(beta, beta)`, a permutation of the batch
//! pairs every image with a partner, and a box of side `int(side * sqrt(1 - lam))` centred at a
//! uniform pixel (clipped to the image) is pasted from the partner. The loss is
//! `ratio * CE(target) + (1 - ratio) * CE(partner's target)` with `ratio` the share of the image
//! kept; cross-entropy being linear in its target, that is the cross-entropy against the mixed
//! target `ratio * target + (1 - ratio) * partner's target`, which [`CutMix::apply`] returns.

use gradmatch_core::candle_core::Tensor;
use gradmatch_core::Result;
use rand::seq::SliceRandom;
use rand::{Rng, RngCore};
use rand_distr::{Beta, Distribution};
use std::ops::Range;

/// CutMix's two parameters: the probability of mixing a batch and Beta's parameter.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CutMix {
    /// IDC's `mix_p`: 0.5 for MNIST, FashionMNIST, SVHN and CIFAR, 1.0 otherwise.
    pub p: f64,
    /// IDC's `beta`: 1.0 (lam uniform on [0, 1]).
    pub beta: f64,
}

/// The pasted box: rows `rows` and columns `cols` (IDC's `bbx1:bbx2` on dimension 2 and
/// `bby1:bby2` on dimension 3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CutBox {
    pub rows: Range<usize>,
    pub cols: Range<usize>,
}

impl CutBox {
    /// `rand_bbox` for `(h, w)` images given its draws: `lam` and the centre `(cy, cx)`, a uniform
    /// pixel. The box's sides are `int(h * sqrt(1 - lam))` and `int(w * sqrt(1 - lam))`, half of
    /// each (rounded down) on either side of the centre, clipped to the image.
    pub fn around(centre: (usize, usize), lam: f64, (h, w): (usize, usize)) -> CutBox {
        let cut = (1.0 - lam).sqrt();
        let span = |c: usize, side: usize| {
            let half = ((side as f64 * cut) as usize / 2) as isize;
            let clip = |v: isize| v.clamp(0, side as isize) as usize;
            clip(c as isize - half)..clip(c as isize + half)
        };
        CutBox { rows: span(centre.0, h), cols: span(centre.1, w) }
    }

    /// The share of an `(h, w)` image left outside the box: IDC's `ratio`, the weight of the
    /// image's own target.
    pub fn kept(&self, (h, w): (usize, usize)) -> f64 {
        1.0 - (self.rows.len() * self.cols.len()) as f64 / (h * w) as f64
    }
}

/// One batch's mix: each image's partner (a permutation of the batch) and the box.
#[derive(Debug, Clone, PartialEq)]
pub struct Mix {
    pub partners: Vec<u32>,
    pub cut: CutBox,
}

impl CutMix {
    /// The draws of one batch of `n` images of `(h, w)`, in IDC's order (whether to mix, lam, the
    /// partners, the centre); `None` when the batch is left as it is.
    pub fn draw(&self, rng: &mut dyn RngCore, n: usize, (h, w): (usize, usize)) -> Result<Option<Mix>> {
        if rng.random::<f64>() >= self.p {
            return Ok(None);
        }
        let beta = Beta::new(self.beta, self.beta).map_err(|e| gradmatch_core::candle_core::Error::Msg(format!("cutmix: {e}")))?;
        let lam = beta.sample(rng);
        let mut partners: Vec<u32> = (0..n as u32).collect();
        partners.shuffle(rng);
        let centre = (rng.random_range(0..h), rng.random_range(0..w));
        Ok(Some(Mix { partners, cut: CutBox::around(centre, lam, (h, w)) }))
    }

    /// The mixed batch of `images (n, c, h, w)` and of their `targets (n, classes)` (one-hot or
    /// already soft): the box's pixels taken from each image's partner, and the targets mixed by
    /// the kept share. Pixels are selected, never blended: each one equals its source exactly.
    pub fn apply(images: &Tensor, targets: &Tensor, mix: &Mix) -> Result<(Tensor, Tensor)> {
        let (_, _, h, w) = images.dims4()?;
        let device = images.device();
        let partners = Tensor::new(mix.partners.as_slice(), device)?;
        let inside: Vec<u8> = (0..h * w).map(|p| u8::from(mix.cut.rows.contains(&(p / w)) && mix.cut.cols.contains(&(p % w)))).collect();
        let inside = Tensor::from_vec(inside, (1, 1, h, w), device)?.broadcast_as(images.shape())?;
        let mixed = inside.where_cond(&images.index_select(&partners, 0)?, images)?;
        let kept = mix.cut.kept((h, w));
        let targets = ((targets * kept)? + (targets.index_select(&partners, 0)? * (1.0 - kept))?)?;
        Ok((mixed, targets))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gradmatch_core::candle_core::Device;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn the_box_follows_rand_bbox() {
        // 7 x 5 images, lam 0.36: sides int(7 * 0.8) = 5 and int(5 * 0.8) = 4, halves 2 and 2.
        let cut = CutBox::around((3, 2), 0.36, (7, 5));
        assert_eq!(cut, CutBox { rows: 1..5, cols: 0..4 });
        assert!((cut.kept((7, 5)) - (1.0 - 16.0 / 35.0)).abs() < 1e-15);
        // Clipped at the border; lam 1 gives an empty box (nothing pasted, the target kept).
        assert_eq!(CutBox::around((0, 4), 0.36, (7, 5)), CutBox { rows: 0..2, cols: 2..5 });
        let empty = CutBox::around((3, 3), 1.0, (7, 5));
        assert_eq!(empty.kept((7, 5)), 1.0);
    }

    #[test]
    fn pixels_are_selected_and_targets_mixed() {
        let images = Tensor::arange(0f32, 2.0 * 3.0 * 4.0, &Device::Cpu).unwrap().reshape((2, 1, 3, 4)).unwrap();
        let targets = Tensor::new(&[[1f32, 0.0], [0.0, 1.0]], &Device::Cpu).unwrap();
        let mix = Mix { partners: vec![1, 0], cut: CutBox { rows: 0..2, cols: 1..3 } };
        let (mixed, soft) = CutMix::apply(&images, &targets, &mix).unwrap();
        let mixed = mixed.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        for (p, &v) in mixed.iter().enumerate() {
            let (img, row, col) = (p / 12, (p % 12) / 4, p % 4);
            let source = if (0..2).contains(&row) && (1..3).contains(&col) { 1 - img } else { img };
            assert_eq!(v, (source * 12 + row * 4 + col) as f32, "image {img} pixel ({row}, {col})");
        }
        let kept = 1.0 - 4.0 / 12.0;
        let soft = soft.to_vec2::<f32>().unwrap();
        assert_eq!(soft, [[kept as f32, (1.0 - kept) as f32], [(1.0 - kept) as f32, kept as f32]]);
    }

    #[test]
    fn draws_are_seeded_and_follow_p() {
        let cutmix = CutMix { p: 0.5, beta: 1.0 };
        let draws = |seed| {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            (0..200).map(|_| cutmix.draw(&mut rng, 8, (28, 28)).unwrap()).collect::<Vec<_>>()
        };
        assert_eq!(draws(3), draws(3));
        let mixed = draws(3).into_iter().flatten().collect::<Vec<_>>();
        assert!((70..130).contains(&mixed.len()), "p 0.5: {} of 200 batches mixed", mixed.len());
        for mix in &mixed {
            let mut sorted = mix.partners.clone();
            sorted.sort();
            assert_eq!(sorted, (0..8).collect::<Vec<u32>>(), "a permutation");
            assert!(mix.cut.rows.end <= 28 && mix.cut.cols.end <= 28);
        }
        let never = CutMix { p: 0.0, beta: 1.0 };
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        assert!((0..50).all(|_| never.draw(&mut rng, 4, (5, 5)).unwrap().is_none()));
    }

    /// The `cutmix` section of the recipes fixture: IDC's CutMix run by PyTorch with its draws given.
    #[derive(serde::Deserialize)]
    struct Fixture {
        cutmix: Vec<Case>,
    }

    #[derive(serde::Deserialize)]
    struct Case {
        shape: (usize, usize, usize),
        lam: f64,
        centre: (usize, usize),
        perm: Vec<u32>,
        #[serde(rename = "box")]
        cut: (usize, usize, usize, usize),
        ratio: f64,
        targets: Vec<u32>,
        logits: Vec<f64>,
        mixed: Vec<f64>,
        loss: f64,
    }

    #[test]
    fn the_box_the_batch_and_the_loss_are_idcs() {
        for case in crate::recipes_fixture::read::<Fixture>().cutmix {
            let (n, h, w) = case.shape;
            let cut = CutBox::around(case.centre, case.lam, (h, w));
            assert_eq!(cut, CutBox { rows: case.cut.0..case.cut.2, cols: case.cut.1..case.cut.3 }, "{:?}", case.shape);
            assert!((cut.kept((h, w)) - case.ratio).abs() < 1e-15);
            let batch = crate::recipes_fixture::image((n, h, w)).into_iter().map(f64::from).collect::<Vec<_>>();
            let images = Tensor::from_vec(batch, (n, 1, h, w), &Device::Cpu).unwrap();
            let classes = 3;
            let one_hot: Vec<f64> = case.targets.iter().flat_map(|&t| (0..classes).map(move |k| f64::from(u8::from(k == t)))).collect();
            let targets = Tensor::from_vec(one_hot, (n, classes as usize), &Device::Cpu).unwrap();
            let (mixed, soft) = CutMix::apply(&images, &targets, &Mix { partners: case.perm.clone(), cut }).unwrap();
            assert_eq!(mixed.flatten_all().unwrap().to_vec1::<f64>().unwrap(), case.mixed, "pixels are copied exactly");
            // Cross-entropy against the mixed targets (mean over the batch) is IDC's two-term loss.
            let soft = soft.to_vec2::<f64>().unwrap();
            let loss = case.logits.chunks(classes as usize).zip(&soft).map(|(z, t)| {
                let log_sum = z.iter().map(|v| v.exp()).sum::<f64>().ln();
                -z.iter().zip(t).map(|(v, p)| p * (v - log_sum)).sum::<f64>()
            });
            let loss = loss.sum::<f64>() / n as f64;
            assert!((loss - case.loss).abs() < 1e-12, "{loss} against PyTorch's {}", case.loss);
        }
    }
}
