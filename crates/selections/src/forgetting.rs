use gradmatch_core::rand::seq::SliceRandom;
use gradmatch_core::{plugin_without_options, Result, SelectContext, Selection};

/// The images forgotten most often while a network trains on the whole training split (Toneva et
/// al., 2019; DC's baseline), ties in a seeded random order.
#[derive(Debug, Default, Clone, Copy)]
pub struct Forgetting;

impl Selection for Forgetting {
    fn select(&self, ctx: &mut dyn SelectContext, class: usize, n: usize) -> Result<Vec<usize>> {
        let mut indices = super::class_of(ctx, class, n)?.to_vec();
        indices.shuffle(ctx.rng());
        let events = ctx.forgetting_events(&indices)?;
        let mut order: Vec<usize> = (0..indices.len()).collect();
        // Stable: equal counts keep the shuffled order.
        order.sort_by(|&a, &b| events[b].cmp(&events[a]));
        Ok(order.into_iter().take(n).map(|i| indices[i]).collect())
    }
}

plugin_without_options!(Forgetting, "forgetting", "the images forgotten most often while a network trains on all of them (DC's baseline)");

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{line, Context};

    #[test]
    fn keeps_the_most_forgotten_and_breaks_ties_by_its_seed() {
        let forgotten = |seed| {
            let mut ctx = Context::new(line(&[0.0, 1.0, 2.0, 10.0, 11.0])).with_seed(seed);
            ctx.events = vec![1, 5, 1, 3, 1];
            Forgetting.select(&mut ctx, 0, 3).unwrap()
        };
        let picked = forgotten(0);
        assert_eq!(&picked[..2], [11, 13], "5 events, then 3");
        assert!([10, 12, 14].contains(&picked[2]), "then one of the images forgotten once: {picked:?}");
        assert_eq!(forgotten(0), picked, "deterministic given its seed");
        let ties: std::collections::BTreeSet<usize> = (0..20).map(|s| forgotten(s)[2]).collect();
        assert!(ties.len() > 1, "ties go by the seed, not by position: {ties:?}");
    }
}
