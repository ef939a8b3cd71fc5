use crate::features::{squared_distance, Rows};
use gradmatch_core::{plugin_without_options, Result, SelectContext, Selection};

/// Greedy k-center in feature space (Sener and Savarese, 2018; DC's baseline): the image nearest
/// the class mean first, then each time the image farthest from every picked one.
#[derive(Debug, Default, Clone, Copy)]
pub struct KCenter;

impl Selection for KCenter {
    fn select(&self, ctx: &mut dyn SelectContext, class: usize, n: usize) -> Result<Vec<usize>> {
        let indices = super::class_of(ctx, class, n)?.to_vec();
        let rows = Rows::of(&ctx.features(&indices)?)?;
        Ok(cover(&rows, n).into_iter().map(|i| indices[i]).collect())
    }
}

/// The first `n` centres of the greedy cover.
pub fn cover(rows: &Rows, n: usize) -> Vec<usize> {
    if n == 0 {
        return Vec::new();
    }
    let first = rows.nearest(&rows.mean());
    let mut nearest_centre: Vec<f64> = (0..rows.len()).map(|i| squared_distance(rows.row(i), rows.row(first))).collect();
    let mut picked = vec![first];
    while picked.len() < n {
        // The first of the farthest: a picked row is at distance 0, so it is never chosen again while others are farther.
        let next = (0..rows.len()).max_by(|&a, &b| nearest_centre[a].total_cmp(&nearest_centre[b]).then(b.cmp(&a))).expect("rows");
        for (i, d) in nearest_centre.iter_mut().enumerate() {
            *d = d.min(squared_distance(rows.row(i), rows.row(next)));
        }
        picked.push(next);
    }
    picked
}

plugin_without_options!(KCenter, "k-center", "greedy k-center in feature space: each pick farthest from the picked (DC's baseline)");

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{line, Context};

    #[test]
    fn picks_start_at_the_mean_and_spread_out() {
        let mut ctx = Context::new(line(&[0.0, 1.0, 2.0, 10.0, 11.0]));
        // 2 is nearest the mean 4.8; 11 is farthest from 2; then 0 (2 from 2) beats 1 and 10 (1 from a centre).
        assert_eq!(KCenter.select(&mut ctx, 0, 3).unwrap(), [12, 14, 10]);
        let picked = KCenter.select(&mut ctx, 0, 5).unwrap();
        let mut sorted = picked.clone();
        sorted.sort();
        assert_eq!(sorted, [10, 11, 12, 13, 14], "every image once when the class is taken whole: {picked:?}");
    }
}
