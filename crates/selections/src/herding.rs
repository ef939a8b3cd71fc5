use crate::features::Rows;
use gradmatch_core::{plugin_without_options, Result, SelectContext, Selection};

/// Herding in feature space (Welling, 2009; DC's baseline): each pick is the image that brings the
/// mean of the picked images nearest the class mean, so the first is the image nearest it.
#[derive(Debug, Default, Clone, Copy)]
pub struct Herding;

impl Selection for Herding {
    fn select(&self, ctx: &mut dyn SelectContext, class: usize, n: usize) -> Result<Vec<usize>> {
        let indices = super::class_of(ctx, class, n)?.to_vec();
        let rows = Rows::of(&ctx.features(&indices)?)?;
        Ok(herd(&rows, n).into_iter().map(|i| indices[i]).collect())
    }
}

/// The first `n` rows herding picks.
pub fn herd(rows: &Rows, n: usize) -> Vec<usize> {
    let mean = rows.mean();
    let mut sum = vec![0.0; mean.len()];
    let mut picked: Vec<usize> = Vec::with_capacity(n);
    for t in 1..=n {
        // How far the mean of the picked images and image i would lie from the class mean.
        let gap = |i: usize| -> f64 { rows.row(i).iter().zip(&sum).zip(&mean).map(|((x, s), m)| ((s + x) / t as f64 - m).powi(2)).sum() };
        let gaps: Vec<(usize, f64)> = (0..rows.len()).filter(|i| !picked.contains(i)).map(|i| (i, gap(i))).collect();
        let next = gaps.iter().min_by(|a, b| a.1.total_cmp(&b.1)).expect("n <= rows").0;
        sum.iter_mut().zip(rows.row(next)).for_each(|(s, x)| *s += x);
        picked.push(next);
    }
    picked
}

plugin_without_options!(Herding, "herding", "herding in feature space: the running mean nearest the class mean (DC's baseline)");

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{line, Context};

    #[test]
    fn the_first_pick_is_nearest_the_mean_and_the_picks_keep_their_mean_near_it() {
        // Class 0 at 0, 1, 2, 10, 11 (mean 4.8); training-split indices 10..15.
        let mut ctx = Context::new(line(&[0.0, 1.0, 2.0, 10.0, 11.0]));
        let picked = Herding.select(&mut ctx, 0, 3).unwrap();
        assert_eq!(picked[0], 12, "2 is nearest 4.8");
        // Then the image whose mean with 2 is nearest 4.8 ((2 + 10) / 2 = 6), then with both ((12 + 1) / 3 = 4.33).
        assert_eq!(picked, [12, 13, 11]);
        let err = Herding.select(&mut ctx, 0, 6).unwrap_err().to_string();
        assert!(err.contains("class 0") && err.contains("has 5"), "{err}");
    }
}
