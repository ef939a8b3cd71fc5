//! Reports from the store alone: the paper-style table, per-cell plots, and an index page.

use super::grid::{Cell, Grid, CURVE_AXIS, EVAL_MODEL_AXIS};
use super::neighbours::{self, Side};
use super::plot;
use super::store::{Outcome, Record, Records};
use crate::stats::{Estimate, Over};
use anyhow::{Context, Result};
use gradmatch_engine::Recipe;
use gradmatch_models::ModelSpec;
use gradmatch_plugins::Plugins;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;

/// One evaluation network of a table entry: its accuracy (%) and what pairs it with another entry's.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub experiment: usize,
    pub model: String,
    pub index: usize,
    pub eval_seed: u64,
    pub percent: f64,
}

/// Accuracies (%) of one table entry, over experiments x evaluations.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub estimate: Estimate,
    pub samples: Vec<Sample>,
}

impl Entry {
    fn of(samples: Vec<Sample>) -> Option<Entry> {
        (!samples.is_empty()).then(|| {
            let sets = samples.iter().map(|s| s.experiment).collect::<BTreeSet<_>>().len();
            let over = Over { sets, networks: samples.len() };
            Entry { estimate: Estimate::of(&Entry::percents(&samples), over), samples }
        })
    }

    pub fn percents(samples: &[Sample]) -> Vec<f64> {
        samples.iter().map(|s| s.percent).collect()
    }
}

/// `93.00 ± 1.20, CI [92.10, 93.90] (n=2×5)`.
impl std::fmt::Display for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let e = &self.estimate;
        let ci = e.ci95.map_or("no CI".to_string(), |ci| format!("CI {ci}"));
        write!(f, "{:.2} ± {:.2}, {ci} ({})", e.mean, e.std, e.over.short())
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

/// Between the labels of a row's axes in its name.
pub const ROW_SEPARATOR: &str = " / ";

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
    let mut values: BTreeMap<(usize, usize), Vec<Sample>> = BTreeMap::new();
    let mut recipes: Vec<Vec<Recipe>> = Vec::new();
    let mut cell_rows = Vec::new();
    let index_of = |order: &mut Vec<String>, key: String| match order.iter().position(|k| *k == key) {
        Some(i) => i,
        None => {
            order.push(key);
            order.len() - 1
        }
    };
    for cell in grid.table_cells() {
        let row_key = row_axes.iter().map(|a| cell.label_of(a).unwrap_or("-")).collect::<Vec<_>>().join(ROW_SEPARATOR);
        let row = index_of(&mut row_order, row_key);
        cell_rows.push(row);
        recipes.resize(row_order.len(), Vec::new());
        for model in cell.experiment().eval_models() {
            let column_key =
                if column_axis == EVAL_MODEL_AXIS { model.to_string() } else { cell.label_of(&column_axis).unwrap_or("-").to_string() };
            let column = index_of(&mut column_order, column_key);
            values.entry((row, column)).or_default().extend(samples(grid, cell, &model, records, &mut recipes[row]));
        }
    }
    for (&row, cell) in cell_rows.iter().zip(grid.table_cells()) {
        // A row with no records yet names what its cells will be evaluated under.
        if recipes[row].is_empty() {
            cell.experiment().recipes().into_iter().for_each(|r| add_recipe(&mut recipes[row], r));
        }
    }
    let rows = row_order
        .iter()
        .enumerate()
        .map(|(r, name)| (name.clone(), (0..column_order.len()).map(|c| values.remove(&(r, c)).and_then(Entry::of)).collect()))
        .collect();
    Table { row_axes, column_axis, columns: column_order, rows, recipes }
}

/// The accuracies recorded for `cell`'s networks of `model`, adding the recipes they were measured
/// under to `recipes`.
fn samples(grid: &Grid, cell: &Cell, model: &ModelSpec, records: &Records, recipes: &mut Vec<Recipe>) -> Vec<Sample> {
    let id = shown_id(cell, records);
    let mut samples = Vec::new();
    for k in 0..grid.experiments {
        for n in 0..cell.experiment().evaluation.num_eval {
            let key = super::store::evaluation_key(id, k, &model.to_string(), n);
            if let Some(record @ Record { outcome: Outcome::Evaluated { accuracy, eval_seed, .. }, .. }) = records.done.get(&key) {
                add_recipe(recipes, record_recipe(record, model));
                samples.push(Sample {
                    experiment: k,
                    model: model.to_string(),
                    index: n,
                    eval_seed: *eval_seed,
                    percent: 100.0 * accuracy,
                });
            }
        }
    }
    samples
}

/// Accuracy against iterations (`[curve]`): one row per condensing cell of the table, one column per
/// number of iterations (the curve's points, then the cell's own), its own evaluation model's networks.
pub fn curve_table(grid: &Grid, records: &Records) -> Option<Table> {
    grid.curve.as_ref()?;
    let mut columns: Vec<usize> = grid.cells.iter().filter(|c| c.condenses()).map(|c| c.experiment().condense.iterations).collect();
    columns.sort_unstable();
    columns.dedup();
    let (mut rows, mut recipes) = (Vec::new(), Vec::new());
    for (of, cell) in grid.cells.iter().enumerate().filter(|(_, c)| c.curve_of.is_none() && c.condenses()) {
        let mut row_recipes = Vec::new();
        let model = cell.experiment().model;
        let points: Vec<&Cell> = grid.cells.iter().filter(|c| c.curve_of == Some(of)).chain([cell]).collect();
        let entries = columns
            .iter()
            .map(|&at| {
                let point = points.iter().find(|c| c.experiment().condense.iterations == at)?;
                Entry::of(samples(grid, point, &model, records, &mut row_recipes))
            })
            .collect();
        let name = cell.labels.iter().map(|(_, l)| l.as_str()).collect::<Vec<_>>().join(ROW_SEPARATOR);
        rows.push((name, entries));
        // A row with no records yet names what its cells will be evaluated under.
        if row_recipes.is_empty() {
            row_recipes = cell.experiment().recipes();
        }
        recipes.push(row_recipes);
    }
    let row_axes = grid.axes.iter().map(|a| a.name.clone()).collect();
    Some(Table { row_axes, column_axis: CURVE_AXIS.to_string(), columns: columns.iter().map(usize::to_string).collect(), rows, recipes })
}

/// Every other cell of the table (condensed or a coreset) against its baseline: the cell whose labels
/// differ from its own only in the variant that names the baseline (`Random` beside `DC`), as `+d
/// points, CI`.
fn gains_over_baselines(grid: &Grid, records: &Records) -> String {
    let mut lines = String::new();
    let entry = |cell: &Cell| Entry::of(samples(grid, cell, &cell.experiment().model, records, &mut Vec::new()));
    for baseline in grid.table_cells().filter(|c| c.baseline().is_some()) {
        let apart = |c: &Cell| c.labels.iter().zip(&baseline.labels).filter(|(a, b)| a != b).count();
        for cell in grid.table_cells().filter(|c| c.baseline().is_none() && apart(c) == 1) {
            let (Some(ours), Some(theirs)) = (entry(cell), entry(baseline)) else { continue };
            let gain = neighbours::difference(&ours, &theirs).map_or("too few networks for an interval".to_string(), |d| d.to_string());
            let _ = writeln!(lines, "- {} − {}: {gain}", cell.label(), baseline.label());
        }
    }
    match lines.is_empty() {
        true => lines,
        false => format!("\n## Gain over the baseline (its own random subsets, so unpaired: Welch)\n\n{lines}"),
    }
}

/// The grid's `[[published]]` figures beside the cells they correspond to.
fn published_beside_ours(grid: &Grid, records: &Records) -> String {
    let mut lines = String::new();
    for published in &grid.published {
        let wanted = |c: &&Cell| published.labels.iter().all(|(axis, label)| Some(label.as_str().unwrap_or_default()) == c.label_of(axis));
        let Some(cell) = grid.table_cells().find(wanted) else { continue };
        let ours = Entry::of(samples(grid, cell, &cell.experiment().model, records, &mut Vec::new()));
        let ours = ours.map_or("no records yet".to_string(), |e| {
            let (mean, apart) = (e.estimate.mean, e.estimate.mean - published.mean);
            let stds = published.std.map_or(String::new(), |std| format!(" = {:+.1} published std", apart / std));
            format!("{mean:.2} ± {:.2} ({}): {apart:+.2} points{stds}", e.estimate.std, e.estimate.over.short())
        });
        let figure = published.std.map_or(format!("{:.1}", published.mean), |std| format!("{:.1} ± {std:.1}", published.mean));
        let _ = writeln!(lines, "| {} | {figure} | {ours} | {} |", cell.label(), published.source);
    }
    match lines.is_empty() {
        true => lines,
        false => format!("\n## Published figures beside ours\n\n| cell | published (%) | ours (%) | source |\n|---|---|---|---|\n{lines}"),
    }
}

/// The id whose records a cell shows: its own, or, when the store has none under it, the id it had
/// under gradmatch's first recipes (an old store, read as it was made, under its own recipe).
fn shown_id<'c>(cell: &'c Cell, records: &Records) -> &'c str {
    let evaluated = |r: &Record| r.cell == cell.id && matches!(r.outcome, Outcome::Evaluated { .. });
    match records.done.values().any(evaluated) {
        true => &cell.id,
        false => &cell.first_revision_id,
    }
}

/// The recipe a record was measured under: as recorded, or, for records made before recipes were
/// recorded, its config's `[evaluation]` as gradmatch's first recipes read it.
fn record_recipe(record: &Record, model: &ModelSpec) -> Recipe {
    match &record.outcome {
        // Recipes recorded before revision 2 did not record the learning rate: their config did.
        Outcome::Evaluated { recipe: Some(recipe), .. } if recipe.revision < Recipe::REVISION => {
            Recipe { lr: record.config.evaluation.lr, ..recipe.clone() }
        }
        Outcome::Evaluated { recipe: Some(recipe), .. } => recipe.clone(),
        _ => {
            let config = &record.config;
            Recipe { revision: 1, ..config.evaluation.as_first_revision().resolve(config.dataset, model) }
        }
    }
}

fn add_recipe(recipes: &mut Vec<Recipe>, recipe: Recipe) {
    if !recipes.contains(&recipe) {
        recipes.push(recipe);
    }
}

/// Below every table: what a cell and a mark say.
const LEGEND: &str = "Cells: mean ± std (%), 95 % CI of the mean (Student t over the n accuracies, pooled: \
sets and networks counted alike), n = sets (condensation experiments) × networks per set. \
◀ the cell differs from the one to its left beyond noise, ▲ from the one above: the 95 % CI of their \
difference leaves out 0 (significant at 5 %, two-sided). Paired t over the networks of both cells when \
they share evaluation seeds one to one (same experiment, network index and seed: cells condensed with \
the same seeds), Welch's unequal-variance t otherwise; each difference below says which.";

impl Table {
    pub fn markdown(&self) -> String {
        let head = if self.row_axes.is_empty() { "cell".to_string() } else { self.row_axes.join(" / ") };
        let mut out = format!("| {head} \\ {} | {} | evaluated under |\n", self.column_axis, self.columns.join(" | "));
        let _ = writeln!(out, "|---|{}---|", "---|".repeat(self.columns.len()));
        let marked = neighbours::marked(self);
        for (r, ((name, entries), recipes)) in self.rows.iter().zip(&self.recipes).enumerate() {
            let cells: Vec<String> = entries
                .iter()
                .enumerate()
                .map(|(c, e)| {
                    let marks: String = marked.iter().filter(|m| (m.row, m.column) == (r, c)).map(|m| m.side.mark()).collect();
                    e.as_ref().map_or("—".to_string(), |e| format!("{e}{}{marks}", if marks.is_empty() { "" } else { " " }))
                })
                .collect();
            let recipes: Vec<String> = recipes.iter().map(Recipe::to_string).collect();
            let _ = writeln!(out, "| {name} | {} | {} |", cells.join(" | "), recipes.join("; "));
        }
        let _ = writeln!(out, "\n{LEGEND}");
        for m in &marked {
            let (nr, nc) = match m.side {
                Side::Left => (m.row, m.column - 1),
                Side::Above => (m.row - 1, m.column),
            };
            let _ = writeln!(out, "- {} {} − {}: {}", m.side.mark(), self.label(m.row, m.column), self.label(nr, nc), m.difference);
        }
        out
    }

    /// The columns as numbers, when every one is a number and there are at least two (an axis of
    /// iterations or ipc): the x axis of the table's plot.
    pub fn numeric_columns(&self) -> Option<Vec<f64>> {
        let xs = self.columns.iter().map(|c| c.parse::<f64>().ok()).collect::<Option<Vec<_>>>()?;
        (xs.len() >= 2).then_some(xs)
    }

    /// Draws every row's accuracy against the columns into `path` when the columns are numbers;
    /// whether it did.
    pub fn plot(&self, path: &Path, title: &str) -> Result<bool> {
        let Some(xs) = self.numeric_columns() else { return Ok(false) };
        let curves: Vec<plot::Curve> = self
            .rows
            .iter()
            .map(|(label, entries)| plot::Curve {
                label: label.clone(),
                points: xs.iter().zip(entries).filter_map(|(&x, e)| e.as_ref().map(|e| (x, e.estimate.mean, e.estimate.std))).collect(),
            })
            .filter(|c| !c.points.is_empty())
            .collect();
        if curves.is_empty() {
            return Ok(false);
        }
        plot::curves_plot(path, title, &self.column_axis, &curves)?;
        Ok(true)
    }

    /// `row @ column` of a cell.
    fn label(&self, row: usize, column: usize) -> String {
        format!("{} @ {}", self.rows[row].0, self.columns[column])
    }
}

/// The grid a store keeps (`grid.toml`, written by `ablate`), expanded.
pub fn store_grid(store: &Path, plugins: &Plugins) -> Result<Grid> {
    Grid::from_file(&store.join("grid.toml"), plugins)
        .with_context(|| format!("{} is not a gradmatch ablation store (no valid grid.toml)", store.display()))
}

/// The table's plot in a store, when its columns are numbers.
pub const TABLE_PLOT: &str = "plots/table.png";

/// Writes `report.md` (table, cells, failures), `table.md`, `plots/<cell>.png` and, when the table's
/// columns are numbers, [`TABLE_PLOT`] of `grid` into `store`, from the records of `store` and of any
/// `more` stores (other shards' folders), and returns the table.
pub fn write(grid: &Grid, store: &Path, more: &[&Path]) -> Result<Table> {
    let records = Records::read(&[&[store], more].concat())?;
    let table = table(grid, &records);

    let mut page = format!(
        "# Ablation `{}`\n\n{}\n\n## Test accuracy (%): mean ± std and 95 % CI over experiments × evaluation networks\n\n",
        grid.name, grid.description
    );
    page += &table.markdown();
    std::fs::create_dir_all(store.join("plots"))?;
    let (table_plot, tmp) = (store.join(TABLE_PLOT), crate::files::beside(&store.join(TABLE_PLOT)));
    if table.plot(&tmp, &format!("{}: test accuracy against {}", grid.name, table.column_axis))? {
        crate::files::publish(&tmp, &table_plot)?;
        let _ = write!(page, "\n![test accuracy against {0}, one line per row, bars ± one std]({TABLE_PLOT})\n", table.column_axis);
    }
    page += &images_per_class_note(grid);
    page += &gains_over_baselines(grid, &records);
    page += &published_beside_ours(grid, &records);
    page += &curve_section(grid, &records, store)?;
    page += &machines(&records);
    page += "\n## Cells\n\n| cell | images per class (stored → seen) | experiments condensed | s / iteration | wall time | loss (first → last) | plot | synthetic sets |\n|---|---|---|---|---|---|---|---|\n";
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
    if !records.conflicts.is_empty() {
        page += "\n## Disagreeing duplicates (the earliest finished record of each unit is the one used)\n\n";
        for conflict in &records.conflicts {
            let first = &records.done[&conflict.key];
            let _ = writeln!(page, "- `{}`: {} (used) vs {}", conflict.key, outcome_text(&first.outcome), outcome_text(&conflict.outcome));
        }
        eprintln!(
            "warning: {} unit(s) of {} have records that disagree; the earliest of each is used (listed in report.md)",
            records.conflicts.len(),
            store.display()
        );
    }
    crate::files::write_atomic(&store.join("report.md"), page)?;
    crate::files::write_atomic(&store.join("table.md"), table.markdown())?;
    Ok(table)
}

/// The `[curve]` table and its plot ([`CURVE_PLOT`]); empty without a `[curve]`.
fn curve_section(grid: &Grid, records: &Records, store: &Path) -> Result<String> {
    let Some(curve) = curve_table(grid, records) else { return Ok(String::new()) };
    let mut section = format!("\n## Test accuracy (%) against iterations (the sets each run passed through)\n\n{}", curve.markdown());
    let (plot, tmp) = (store.join(CURVE_PLOT), crate::files::beside(&store.join(CURVE_PLOT)));
    if curve.plot(&tmp, &format!("{}: test accuracy against iterations", grid.name))? {
        crate::files::publish(&tmp, &plot)?;
        let _ = write!(section, "\n![test accuracy against iterations, one line per cell, bars ± one std]({CURVE_PLOT})\n");
    }
    Ok(section)
}

/// Where the units finished, machine by machine: a grid resumed across sittings may meet several,
/// and its speeds are theirs.
fn machines(records: &Records) -> String {
    let mut units: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for record in records.done.values() {
        let machine = record.machine.as_deref().unwrap_or("not recorded (made before machines were)");
        let (all, condensed) = units.entry(machine).or_default();
        *all += 1;
        *condensed += usize::from(matches!(record.outcome, Outcome::Condensed { .. }) && record.seconds > 0.0);
    }
    if units.keys().all(|m| m.starts_with("not recorded")) {
        return String::new();
    }
    let lines: String =
        units.iter().map(|(m, (all, condensed))| format!("- {m}: {all} units finished, {condensed} condensations among them\n")).collect();
    format!("\n## Machines (where each unit finished; a resumed condensation's earlier sittings may have run elsewhere)\n\n{lines}")
}

/// The `[curve]` table's plot in a store.
pub const CURVE_PLOT: &str = "plots/curve.png";

/// `ipc → images networks see` of a cell (`10 → 40` for multi-formation of factor 2).
fn images_per_class(cell: &Cell) -> String {
    let e = cell.experiment();
    format!("{} → {}", e.condense.ipc, cell.resolved.method().images_per_class(e.condense.ipc))
}

/// Under the table, when a parameterisation makes the networks see more images than are stored:
/// every cell's storage budget and images, so that no row compares 40 images with 10 unsaid.
fn images_per_class_note(grid: &Grid) -> String {
    let differs = |c: &Cell| c.resolved.method().images_per_class(c.experiment().condense.ipc) != c.experiment().condense.ipc;
    if !grid.cells.iter().any(differs) {
        return String::new();
    }
    let cells: Vec<String> = grid.cells.iter().map(|c| format!("{} {}", c.label(), images_per_class(c))).collect();
    format!("\nImages per class, stored (the storage budget, ipc) → as the networks see them (decoded): {}.\n", cells.join("; "))
}

/// A record's result in a few words.
fn outcome_text(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Evaluated { accuracy, final_train_loss, .. } => {
            format!("accuracy {:.4} %, final loss {final_train_loss:.6}", 100.0 * accuracy)
        }
        Outcome::Condensed { losses, .. } => format!("final matching loss {:?}", losses.last()),
        Outcome::Failed { error, .. } => format!("failed: {error}"),
    }
}

/// The line of `cell` in the report's cells table; draws the cell's plot into `store` when some
/// experiment of it is condensed.
fn cell_row(grid: &Grid, cell: &Cell, records: &Records, store: &Path) -> Result<String> {
    let id = shown_id(cell, records);
    let condensed =
        |k| records.done.get(&super::store::condense_key(&cell.id, k)).or_else(|| records.done.get(&super::store::condense_key(id, k)));
    let runs: Vec<_> = (0..grid.experiments).filter_map(|k| condensed(k).map(|r| (k, r))).collect();
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
        let (path, tmp) = (store.join(&plot_name), crate::files::beside(&store.join(&plot_name)));
        plot::cell_plot(&tmp, &cell.label(), &curves, &accuracies, cell.experiment().condense.iterations)?;
        crate::files::publish(&tmp, &path)?;
    }
    let loss = curves.first().and_then(|(_, l)| Some(format!("{:.4} → {:.4}", l.first()?, l.last()?))).unwrap_or_else(|| "—".into());
    // Its own work: a set shared with or saved on the way by another cell's run counts 0 s here.
    let own: Vec<f64> = records.done.values().filter(|r| r.cell == id || r.cell == cell.id).map(|r| r.seconds).collect();
    Ok(format!(
        "| {} | {} | {}/{} | {} | {} | {loss} | {} | {} |\n",
        cell.label(),
        images_per_class(cell),
        runs.len(),
        grid.experiments,
        if speed.is_empty() { "—".into() } else { format!("{:.3}", speed.iter().sum::<f64>() / speed.len() as f64) },
        if own.is_empty() { "—".into() } else { wall_time(own.iter().sum()) },
        if plotted { format!("[plot]({plot_name})") } else { "—".into() },
        images.join(" ")
    ))
}

/// `1 h 23 min`, `4 min 05 s`, `12.3 s`.
fn wall_time(seconds: f64) -> String {
    let whole = seconds.round() as u64;
    match whole {
        0..60 => format!("{seconds:.1} s"),
        60..3600 => format!("{} min {:02} s", whole / 60, whole % 60),
        _ => format!("{} h {:02} min", whole / 3600, whole % 3600 / 60),
    }
}

/// Accuracies (%) of every evaluation of `cell` per evaluation model.
fn cell_accuracies(cell: &Cell, records: &Records) -> Vec<(String, Vec<f64>)> {
    let id = shown_id(cell, records);
    cell.experiment()
        .eval_models()
        .iter()
        .map(|m| {
            let acc = records
                .done
                .values()
                .filter(|r| r.cell == id)
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
    use crate::pipeline::eval_seed;
    use crate::stats::Pairing;
    use std::collections::HashMap;

    /// A grid of methods (rows) x evaluation models (columns).
    fn grid(methods: &str, experiments: usize, num_eval: usize) -> Grid {
        let text = format!(
            r#"
experiments = {experiments}
[base]
dataset = "mnist"
[base.evaluation]
num_eval = {num_eval}
models = ["ConvNet", "MLP"]
[[axis]]
name = "method"
variants = [{methods}]
[table]
rows = ["method"]
columns = "eval_model"
"#
        );
        Grid::parse(&text, Path::new("t.toml"), &Plugins::builtin()).unwrap()
    }

    /// The record of network `n` of experiment `k` of `cell` on `model`, with the evaluation seed
    /// `ablate` gives it, moved by `seed_offset`.
    fn record(cell: &Cell, k: usize, model: &str, n: usize, seed_offset: u64, accuracy: f64) -> Record {
        let key = evaluation_key(&cell.id, k, model, n);
        let seed = eval_seed(k as u64, n) + seed_offset;
        let outcome = Outcome::Evaluated { model: model.into(), index: n, eval_seed: seed, accuracy, final_train_loss: 0.0, recipe: None };
        Record {
            schema: crate::provenance::Provenance::SCHEMA,
            key,
            cell: cell.id.clone(),
            labels: cell.labels.clone(),
            experiment: k,
            seed: k as u64,
            config: cell.experiment().clone(),
            device: "cpu".into(),
            machine: None,
            version: "t".into(),
            seconds: 0.0,
            finished_unix: 0,
            outcome,
        }
    }

    fn records(list: Vec<Record>) -> Records {
        Records {
            done: list.into_iter().map(|r| (r.key.clone(), r)).collect::<HashMap<_, _>>(),
            failures: Vec::new(),
            conflicts: Vec::new(),
        }
    }

    #[test]
    fn wall_times_read_at_a_glance() {
        let shown: Vec<String> = [12.34, 245.0, 5000.0].into_iter().map(wall_time).collect();
        assert_eq!(shown, ["12.3 s", "4 min 05 s", "1 h 23 min"]);
    }

    #[test]
    fn table_entries_are_the_estimates_of_their_records() {
        let grid = grid(r#"{ label = "DC", set = {} }, { label = "M", set = { level.name = "multi-level" } }"#, 2, 2);
        let cells = &grid.cells;
        // DC on ConvNet: 4 records (2 experiments x 2 evaluations); M on ConvNet: only 1; MLP: none for M.
        let mut list: Vec<Record> = [(0, 0, 0.90), (0, 1, 0.92), (1, 0, 0.94), (1, 1, 0.96)]
            .iter()
            .map(|&(k, n, a)| record(&cells[0], k, "ConvNet", n, 0, a))
            .collect();
        list.push(record(&cells[0], 0, "MLP", 0, 0, 0.5));
        list.push(record(&cells[1], 1, "ConvNet", 1, 0, 0.8));
        let t = table(&grid, &records(list));
        assert_eq!(t.columns, ["ConvNet", "MLP"]);
        assert_eq!(t.rows.iter().map(|r| r.0.as_str()).collect::<Vec<_>>(), ["DC", "M"]);
        let dc = t.rows[0].1[0].as_ref().unwrap();
        assert_eq!(dc.estimate, Estimate::of(&[90.0, 92.0, 94.0, 96.0], Over { sets: 2, networks: 4 }));
        assert!((dc.estimate.mean - 93.0).abs() < 1e-9);
        assert_eq!(t.rows[0].1[1].as_ref().unwrap().estimate.count, 1);
        assert_eq!(t.rows[1].1[0].as_ref().unwrap().estimate.mean, 80.0);
        assert!(t.rows[1].1[1].is_none());
        let md = t.markdown();
        assert_eq!(md.matches(" | protocol dc (").count(), 2, "each row names its recipe: {md}");
        // 93 +- t(3) 3.182 x sample std 2.582 / sqrt(4) = 93 +- 4.11; population std sqrt(5) = 2.24.
        assert!(md.contains("| DC | 93.00 ± 2.24, CI [88.89, 97.11] (n=2×2) | "), "{md}");
        assert!(md.contains("| M | 80.00 ± 0.00, no CI (n=1×1) | — |"), "{md}");
        assert!(md.contains("95 % CI of the mean") && !md.contains("NaN"), "{md}");
    }

    /// Three methods x two models, 2 experiments x 3 networks each. DC and M hold the same accuracies
    /// in another order (one distribution); MD is 10 points higher. MD's MLP networks carry other
    /// seeds, so they can only be compared unpaired.
    #[test]
    fn report_marks_neighbours_that_differ_beyond_noise_and_no_others() {
        let variants = r#"{ label = "DC", set = {} }, { label = "M", set = { level.name = "multi-level" } },
            { label = "MD", set = { level.name = "multi-level", distance.name = "combined" } }"#;
        let grid = grid(variants, 2, 3);
        let base = [0.900, 0.925, 0.890, 0.910, 0.930, 0.885];
        let reversed: Vec<f64> = base.iter().rev().copied().collect();
        let higher: Vec<f64> = base.iter().zip([0.001, -0.002, 0.0, 0.002, -0.001, 0.0]).map(|(b, e)| b + 0.1 + e).collect();
        let columns: [(usize, &str, &[f64], u64); 6] = [
            (0, "ConvNet", &base, 0),
            (0, "MLP", &reversed, 0),
            (1, "ConvNet", &reversed, 0),
            (1, "MLP", &base, 0),
            (2, "ConvNet", &higher, 0),
            (2, "MLP", &base.map(|b| b + 0.1), 1000),
        ];
        let mut list = Vec::new();
        for (cell, model, values, seed_offset) in columns {
            for (i, &accuracy) in values.iter().enumerate() {
                list.push(record(&grid.cells[cell], i / 3, model, i % 3, seed_offset, accuracy));
            }
        }
        let t = table(&grid, &records(list));
        let marked = neighbours::marked(&t);
        let found: Vec<_> = marked.iter().map(|m| (m.row, m.column, m.side, m.difference.test)).collect();
        assert_eq!(found, [(2, 0, Side::Above, Pairing::Paired), (2, 1, Side::Above, Pairing::Welch)], "{marked:?}");
        assert!(marked.iter().all(|m| (m.difference.mean - 10.0).abs() < 0.01), "{marked:?}");
        let md = t.markdown();
        let rows: Vec<&str> = md.lines().filter(|l| l.starts_with("| ")).collect();
        assert!(!rows[1].contains('▲') && !rows[2].contains('▲'), "DC and M are one distribution: {md}");
        assert!(rows.iter().all(|r| !r.contains('◀')), "the models of a row are one distribution: {md}");
        assert_eq!(rows[3].matches(" ▲ |").count(), 2, "{md}");
        assert!(md.contains("- ▲ MD @ ConvNet − M @ ConvNet: +10.00 points") && md.contains("(paired), significant at 5 %"), "{md}");
        assert!(md.contains("- ▲ MD @ MLP − M @ MLP: +10.00 points") && md.contains("(Welch), significant at 5 %"), "{md}");
    }

    /// A table whose columns are iterations is drawn, one curve per row, and only then.
    #[test]
    fn a_table_with_numeric_columns_is_plotted_and_one_of_models_is_not() {
        let text = r#"
[base]
dataset = "mnist"
[base.evaluation]
num_eval = 2
[[axis]]
name = "sampler"
variants = [{ label = "random", set = {} }, { label = "dream", set = { sampler.name = "dream" } }]
[[axis]]
name = "iterations"
field = "condense.iterations"
values = [10, 20, 50]
[table]
rows = ["sampler"]
columns = "iterations"
"#;
        let by_iterations = Grid::parse(text, Path::new("t.toml"), &Plugins::builtin()).unwrap();
        let list = by_iterations
            .cells
            .iter()
            .enumerate()
            .flat_map(|(i, cell)| (0..2).map(move |n| record(cell, 0, "ConvNet", n, 0, 0.5 + 0.01 * (i + n) as f64)));
        let t = table(&by_iterations, &records(list.collect()));
        assert_eq!(t.numeric_columns(), Some(vec![10.0, 20.0, 50.0]));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("table.png");
        assert!(t.plot(&path, "by iterations").unwrap());
        let png = std::fs::read(&path).unwrap();
        assert!(png.starts_with(b"\x89PNG") && png.len() > 10_000, "a drawn PNG ({} bytes)", png.len());

        let by_model = grid(r#"{ label = "DC", set = {} }"#, 1, 1);
        let t = table(&by_model, &records(vec![record(&by_model.cells[0], 0, "ConvNet", 0, 0, 0.9)]));
        assert_eq!(t.numeric_columns(), None);
        let path = dir.path().join("models.png");
        assert!(!t.plot(&path, "by model").unwrap() && !path.exists());
    }
}
