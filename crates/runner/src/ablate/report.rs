//! Reports from the store alone: the paper-style table, per-cell plots, and an index page.

use super::grid::{Cell, Grid, EVAL_MODEL_AXIS};
use super::plot;
use super::store::{Outcome, Records};
use crate::pipeline::Recipe;
use crate::stats::mean_std;
use anyhow::{Context, Result};
use gradmatch_plugins::Plugins;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

/// Accuracies of one table entry, over experiments x evaluations.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub mean: f64,
    pub std: f64,
    pub count: usize,
}

impl Entry {
    fn of(accuracies: &[f64]) -> Option<Entry> {
        (!accuracies.is_empty()).then(|| {
            let (mean, std) = mean_std(accuracies);
            Entry { mean: 100.0 * mean, std: 100.0 * std, count: accuracies.len() }
        })
    }
}

impl std::fmt::Display for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:.2} ± {:.2} (n={})", self.mean, self.std, self.count)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    pub row_axes: Vec<String>,
    pub column_axis: String,
    pub columns: Vec<String>,
    pub rows: Vec<(String, Vec<Option<Entry>>)>,
    /// The evaluation recipes of each row's cells: no number without its recipe.
    pub recipes: Vec<Vec<Recipe>>,
}

/// Lays the evaluation records out as the grid's `[table]` says.
pub fn table(grid: &Grid, records: &Records) -> Table {
    let column_axis = grid.table.columns.clone().unwrap_or_else(|| EVAL_MODEL_AXIS.to_string());
    let mut row_axes = grid.table.rows.clone();
    for axis in &grid.axes {
        if !row_axes.contains(&axis.name) && axis.name != column_axis {
            row_axes.push(axis.name.clone());
        }
    }
    // (row, column) -> accuracies, keeping first-seen order of rows and columns (the grid's order).
    let mut row_order: Vec<String> = Vec::new();
    let mut column_order: Vec<String> = Vec::new();
    let mut values: BTreeMap<(usize, usize), Vec<f64>> = BTreeMap::new();
    let mut recipes: Vec<Vec<Recipe>> = Vec::new();
    let index_of = |order: &mut Vec<String>, key: String| match order.iter().position(|k| *k == key) {
        Some(i) => i,
        None => {
            order.push(key);
            order.len() - 1
        }
    };
    for cell in &grid.cells {
        let row_key = row_axes.iter().map(|a| cell.label_of(a).unwrap_or("-")).collect::<Vec<_>>().join(" / ");
        let row = index_of(&mut row_order, row_key);
        recipes.resize(row_order.len(), Vec::new());
        let recipe = Recipe::from(&cell.experiment.evaluation);
        if !recipes[row].contains(&recipe) {
            recipes[row].push(recipe);
        }
        for model in cell.experiment.eval_models() {
            let column_key =
                if column_axis == EVAL_MODEL_AXIS { model.to_string() } else { cell.label_of(&column_axis).unwrap_or("-").to_string() };
            let column = index_of(&mut column_order, column_key);
            let accuracies = values.entry((row, column)).or_default();
            for k in 0..grid.experiments {
                for n in 0..cell.experiment.evaluation.num_eval {
                    let key = super::store::evaluation_key(&cell.id, k, &model.to_string(), n);
                    if let Some(Outcome::Evaluated { accuracy, .. }) = records.done.get(&key).map(|r| &r.outcome) {
                        accuracies.push(*accuracy);
                    }
                }
            }
        }
    }
    let rows = row_order
        .iter()
        .enumerate()
        .map(|(r, name)| (name.clone(), (0..column_order.len()).map(|c| values.get(&(r, c)).and_then(|v| Entry::of(v))).collect()))
        .collect();
    Table { row_axes, column_axis, columns: column_order, rows, recipes }
}

impl Table {
    pub fn markdown(&self) -> String {
        let head = if self.row_axes.is_empty() { "cell".to_string() } else { self.row_axes.join(" / ") };
        let mut out = format!("| {head} \\ {} | {} | evaluated under |\n", self.column_axis, self.columns.join(" | "));
        let _ = writeln!(out, "|---|{}---|", "---|".repeat(self.columns.len()));
        for ((name, entries), recipes) in self.rows.iter().zip(&self.recipes) {
            let cells: Vec<String> = entries.iter().map(|e| e.as_ref().map_or("—".to_string(), Entry::to_string)).collect();
            let recipes: Vec<String> = recipes.iter().map(Recipe::to_string).collect();
            let _ = writeln!(out, "| {name} | {} | {} |", cells.join(" | "), recipes.join("; "));
        }
        out
    }
}

/// The grid a store keeps (`grid.toml`, written by `ablate`), expanded.
pub fn store_grid(store: &Path, plugins: &Plugins) -> Result<Grid> {
    Grid::from_file(&store.join("grid.toml"), plugins)
        .with_context(|| format!("{} is not a gradmatch ablation store (no valid grid.toml)", store.display()))
}

/// Writes `report.md` (table, cells, failures), `table.md` and `plots/<cell>.png` of `grid` into
/// `store`, from the records of `store` and of any `more` stores (other shards' folders), and returns
/// the table.
pub fn write(grid: &Grid, store: &Path, more: &[&Path]) -> Result<Table> {
    let records = Records::read(&[&[store], more].concat())?;
    let table = table(grid, &records);

    let mut page = format!(
        "# Ablation `{}`\n\n{}\n\n## Test accuracy (%), mean ± std over experiments × evaluations\n\n",
        grid.name, grid.description
    );
    page += &table.markdown();
    page += "\n## Cells\n\n| cell | experiments condensed | s / iteration | loss (first → last) | plot | synthetic sets |\n|---|---|---|---|---|---|\n";
    std::fs::create_dir_all(store.join("plots"))?;
    for cell in &grid.cells {
        page += &cell_row(grid, cell, &records, store)?;
    }
    if !records.failures.is_empty() {
        page += "\n## Failures (retried on the next run)\n\n";
        for f in &records.failures {
            if let Outcome::Failed { stage, error } = &f.outcome {
                let _ = writeln!(page, "- `{}` ({stage}): {error}", f.key);
            }
        }
    }
    std::fs::write(store.join("report.md"), page).with_context(|| format!("writing {}", store.join("report.md").display()))?;
    std::fs::write(store.join("table.md"), table.markdown())?;
    Ok(table)
}

/// The line of `cell` in the report's cells table; draws the cell's plot into `store` when some
/// experiment of it is condensed.
fn cell_row(grid: &Grid, cell: &Cell, records: &Records, store: &Path) -> Result<String> {
    let runs: Vec<_> =
        (0..grid.experiments).filter_map(|k| records.done.get(&super::store::condense_key(&cell.id, k)).map(|r| (k, r))).collect();
    let mut curves = Vec::new();
    let mut images = Vec::new();
    let mut speed = Vec::new();
    for (k, r) in &runs {
        if let Outcome::Condensed { losses, seconds_per_iteration, grid_image, .. } = &r.outcome {
            curves.push((format!("experiment {k}"), losses.clone()));
            images.push(format!("[e{k}]({})", grid_image.display()));
            speed.push(*seconds_per_iteration);
        }
    }
    let plot_name = format!("plots/{}.png", cell.folder());
    let plotted = !curves.is_empty();
    if plotted {
        let accuracies = cell_accuracies(cell, records);
        plot::cell_plot(&store.join(&plot_name), &cell.label(), &curves, &accuracies, cell.experiment.condense.iterations)?;
    }
    let loss = curves.first().and_then(|(_, l)| Some(format!("{:.4} → {:.4}", l.first()?, l.last()?))).unwrap_or_else(|| "—".into());
    Ok(format!(
        "| {} | {}/{} | {} | {loss} | {} | {} |\n",
        cell.label(),
        runs.len(),
        grid.experiments,
        if speed.is_empty() { "—".into() } else { format!("{:.3}", speed.iter().sum::<f64>() / speed.len() as f64) },
        if plotted { format!("[plot]({plot_name})") } else { "—".into() },
        images.join(" ")
    ))
}

/// Accuracies (%) of every evaluation of `cell` per evaluation model.
fn cell_accuracies(cell: &Cell, records: &Records) -> Vec<(String, Vec<f64>)> {
    cell.experiment
        .eval_models()
        .iter()
        .map(|m| {
            let acc = records
                .done
                .values()
                .filter(|r| r.cell == cell.id)
                .filter_map(|r| match &r.outcome {
                    Outcome::Evaluated { model, accuracy, .. } if *model == m.to_string() => Some(100.0 * accuracy),
                    _ => None,
                })
                .collect();
            (m.to_string(), acc)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::store::{evaluation_key, Record};
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn table_entries_are_the_mean_std_and_count_of_their_records() {
        let text = r#"
experiments = 2
[base]
dataset = "mnist"
[base.evaluation]
num_eval = 2
models = ["ConvNet", "MLP"]
[[axis]]
name = "method"
variants = [{ label = "DC", set = {} }, { label = "M", set = { level.name = "multi-level" } }]
[table]
rows = ["method"]
columns = "eval_model"
"#;
        let grid = Grid::parse(text, Path::new("t.toml"), &Plugins::builtin()).unwrap();
        let cells = &grid.cells;
        let mut done = HashMap::new();
        let mut add = |cell: &Cell, k: usize, model: &str, n: usize, accuracy: f64| {
            let key = evaluation_key(&cell.id, k, model, n);
            let outcome = Outcome::Evaluated { model: model.into(), index: n, eval_seed: 0, accuracy, final_train_loss: 0.0, recipe: None };
            let record = Record {
                key: key.clone(),
                cell: cell.id.clone(),
                labels: cell.labels.clone(),
                experiment: k,
                seed: k as u64,
                config: cell.experiment.clone(),
                device: "cpu".into(),
                version: "t".into(),
                seconds: 0.0,
                finished_unix: 0,
                outcome,
            };
            done.insert(key, record);
        };
        // DC on ConvNet: 4 records (2 experiments x 2 evaluations); M on ConvNet: only 1; MLP: none for M.
        for (k, n, a) in [(0, 0, 0.90), (0, 1, 0.92), (1, 0, 0.94), (1, 1, 0.96)] {
            add(&cells[0], k, "ConvNet", n, a);
        }
        add(&cells[0], 0, "MLP", 0, 0.5);
        add(&cells[1], 1, "ConvNet", 1, 0.8);
        let records = Records { done, failures: Vec::new() };
        let t = table(&grid, &records);
        assert_eq!(t.columns, ["ConvNet", "MLP"]);
        assert_eq!(t.rows.iter().map(|r| r.0.as_str()).collect::<Vec<_>>(), ["DC", "M"]);
        let dc = t.rows[0].1[0].as_ref().unwrap();
        let (mean, std) = mean_std(&[0.90, 0.92, 0.94, 0.96]);
        assert_eq!((dc.count, dc.mean, dc.std), (4, 100.0 * mean, 100.0 * std));
        assert!((dc.mean - 93.0).abs() < 1e-9);
        assert_eq!(t.rows[0].1[1].as_ref().unwrap().count, 1);
        assert_eq!(t.rows[1].1[0].as_ref().unwrap().mean, 80.0);
        assert!(t.rows[1].1[1].is_none());
        let md = t.markdown();
        assert_eq!(md.matches(" | protocol dc (").count(), 2, "each row names its recipe: {md}");
        assert!(md.contains("| DC | 93.00 ± ") && md.contains("(n=4)") && md.contains("| M | 80.00 ± 0.00 (n=1) | — |"), "{md}");
    }
}
