//! Which neighbouring cells of a report table differ beyond noise.
//!
//! An evaluation network's seed is `eval_seed(condensation seed + experiment, index)`
//! (`ablate::Shared::evaluate_and_record`), whatever its model and evaluation recipe: two cells
//! condensed with the same seeds train their k-th experiment's n-th networks from the same seed (the
//! same initialisation and batch order where the sets have the same size), and those pairs are compared
//! paired. Cells whose records do not match one to one (another condensation seed, missing records)
//! are compared with Welch's interval.

use super::report::{Entry, Sample, Table, ROW_SEPARATOR};
use crate::stats::Difference;

/// The neighbour a cell is compared with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Left,
    Above,
}

impl Side {
    pub fn mark(self) -> &'static str {
        match self {
            Side::Left => "◀",
            Side::Above => "▲",
        }
    }
}

/// A cell whose accuracies differ from its neighbour's beyond noise: its mean minus the neighbour's.
#[derive(Debug, Clone, PartialEq)]
pub struct Marked {
    pub row: usize,
    pub column: usize,
    pub side: Side,
    pub difference: Difference,
}

/// Entry `a` minus entry `b`: paired when their networks share evaluation seeds one to one, Welch
/// otherwise; `None` when a side has too few networks for an interval.
pub fn difference(a: &Entry, b: &Entry) -> Option<Difference> {
    match paired(&a.samples, &b.samples) {
        Some((x, y)) => Difference::paired(&x, &y),
        None => Difference::welch(&Entry::percents(&a.samples), &Entry::percents(&b.samples)),
    }
}

/// The accuracies of `a` and `b` in matching order when every network of one has the other's seed
/// (experiment, index and evaluation seed) and none is left over.
fn paired(a: &[Sample], b: &[Sample]) -> Option<(Vec<f64>, Vec<f64>)> {
    let key = |s: &Sample| (s.experiment, s.index, s.eval_seed);
    let sorted = |samples: &[Sample]| {
        let mut sorted = samples.to_vec();
        sorted.sort_by(|x, y| key(x).cmp(&key(y)).then_with(|| x.model.cmp(&y.model)));
        sorted
    };
    let (a, b) = (sorted(a), sorted(b));
    let matched = a.len() == b.len() && a.iter().zip(&b).all(|(x, y)| key(x) == key(y));
    matched.then(|| (Entry::percents(&a), Entry::percents(&b)))
}

/// The nearest row above `row` whose labels differ from its own in exactly one row axis: rows that
/// differ in several (another dataset and another protocol, say) are not a comparison of one choice.
fn row_above(table: &Table, row: usize) -> Option<usize> {
    let labels = |r: usize| table.rows[r].0.split(ROW_SEPARATOR).collect::<Vec<_>>();
    let own = labels(row);
    let above = (0..row).rev().find(|&r| labels(r).iter().zip(&own).filter(|(a, b)| a != b).count() == 1)?;
    // Figures of gradmatch's first recipes beside those of today's differ by the recipe too.
    let revisions = |r: usize| table.recipes[r].iter().map(|recipe| recipe.revision).collect::<std::collections::BTreeSet<_>>();
    (revisions(above) == revisions(row)).then_some(above)
}

/// Every cell of `table` that differs significantly from the cell to its left or above it.
pub fn marked(table: &Table) -> Vec<Marked> {
    let mut marked = Vec::new();
    for (row, (_, entries)) in table.rows.iter().enumerate() {
        for (column, entry) in entries.iter().enumerate() {
            let Some(entry) = entry else { continue };
            let left = column.checked_sub(1).and_then(|c| entries[c].as_ref()).map(|n| (Side::Left, n));
            let above = row_above(table, row).and_then(|r| table.rows[r].1[column].as_ref()).map(|n| (Side::Above, n));
            for (side, neighbour) in left.into_iter().chain(above) {
                if let Some(difference) = difference(entry, neighbour).filter(|d| d.significant) {
                    marked.push(Marked { row, column, side, difference });
                }
            }
        }
    }
    marked
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::{Estimate, Over};

    /// Four networks around `80 + shift` %, with the seeds every cell shares.
    fn entry(shift: f64) -> Option<Entry> {
        let noise = [0.3, -0.2, 0.1, -0.1];
        let samples: Vec<Sample> = (0..4)
            .map(|i| Sample { experiment: 0, model: "ConvNet".into(), index: i, eval_seed: i as u64, percent: 80.0 + shift + noise[i] })
            .collect();
        Some(Entry { estimate: Estimate::of(&Entry::percents(&samples), Over { sets: 1, networks: 4 }), samples })
    }

    #[test]
    fn a_row_is_compared_with_the_nearest_row_above_that_differs_in_one_axis() {
        let rows = [("mnist / dc", 0.0), ("mnist / dsa", 5.0), ("fashion / dc", -10.0)];
        let table = Table {
            row_axes: vec!["dataset".into(), "protocol".into()],
            column_axis: "eval_model".into(),
            columns: vec!["ConvNet".into()],
            rows: rows.iter().map(|(name, shift)| (name.to_string(), vec![entry(*shift)])).collect(),
            recipes: vec![Vec::new(); rows.len()],
        };
        let found: Vec<(usize, f64)> = marked(&table).iter().map(|m| (m.row, (m.difference.mean * 1e6).round() / 1e6)).collect();
        assert_eq!(found, [(1, 5.0), (2, -10.0)], "fashion / dc against mnist / dc (one axis apart), never mnist / dsa (two)");
        let mut old = table.clone();
        let v1: gradmatch_engine::Recipe = serde_json::from_str(r#"{"protocol": "dc", "epochs": 300, "augment": "none"}"#).unwrap();
        old.recipes[0] = vec![v1];
        assert_eq!(marked(&old), [], "a row of v1 figures is not compared with rows of today's recipes");
    }
}
