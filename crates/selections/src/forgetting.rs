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

/// Forgetting events per image: an image is forgotten when a visit classifies it wrongly right after
/// a visit that classified it correctly (Toneva et al.'s count).
#[derive(Debug, Clone)]
pub struct ForgettingCounter {
    last_correct: Vec<bool>,
    events: Vec<u32>,
}

impl ForgettingCounter {
    pub fn new(images: usize) -> ForgettingCounter {
        ForgettingCounter { last_correct: vec![false; images], events: vec![0; images] }
    }

    /// Image `index` was just classified (`correct` or not) during training.
    pub fn visit(&mut self, index: usize, correct: bool) {
        if self.last_correct[index] && !correct {
            self.events[index] += 1;
        }
        self.last_correct[index] = correct;
    }

    pub fn events(&self) -> &[u32] {
        &self.events
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{line, Context};

    #[test]
    fn counts_each_correct_to_wrong_transition() {
        let mut counter = ForgettingCounter::new(3);
        // Image 0: wrong, right, wrong, right, wrong: 2 events. Image 1: right throughout: 0. Image 2: never learnt: 0.
        for (visit, correct) in
            [[false, true, false], [true, true, false], [false, true, false], [true, true, false], [false, true, false]].iter().enumerate()
        {
            for (image, &c) in correct.iter().enumerate() {
                counter.visit(image, c);
            }
            assert!(visit < 5);
        }
        assert_eq!(counter.events(), [2, 0, 0]);
    }

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
