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
}
