//! Ablation grids: a base experiment, axes of variants, and the table layout. Parsing a grid expands
//! it to cells (one resolved [`Experiment`] each), validated as a whole before any work starts.

use crate::experiment::Baseline;
use crate::experiment::{Experiment, Resolved};
use crate::located::{field_path, from_value, AtPath, Key, TomlFile};
use crate::provenance::Provenance;
use anyhow::{bail, Context, Result};
use gradmatch_plugins::did_you_mean;
use gradmatch_plugins::Plugins;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The pseudo-axis of the evaluation model pool (cross-architecture tables).
pub const EVAL_MODEL_AXIS: &str = "eval_model";

/// The label axis of a curve cell: the iterations after which its set is taken.
pub const CURVE_AXIS: &str = "iterations";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grid {
    /// Name of the grid (its store folder); the file stem when left out.
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Condensation runs per cell (seeds `base.condense.seed + k`); each is evaluated `num_eval` times.
    #[serde(default = "one")]
    pub experiments: usize,
    /// An experiment, exactly as in `experiments/*.toml`.
    pub base: toml::Table,
    #[serde(default, rename = "axis")]
    pub axes: Vec<Axis>,
    #[serde(default)]
    pub table: TableLayout,
    /// Accuracy against iterations: the sets each condensation passes through, evaluated too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub curve: Option<Curve>,
    /// Published figures to set beside the cells they correspond to.
    #[serde(default, rename = "published", skip_serializing_if = "Vec::is_empty")]
    pub published: Vec<Published>,
    /// Every combination of the axes' variants, in file order (the last axis varies fastest),
    /// expanded and validated by [`Grid::parse`].
    #[serde(skip)]
    pub cells: Vec<Cell>,
}

fn one() -> usize {
    1
}

/// One dimension of the grid: `values` of one `field`, or named `variants` setting several fields.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Axis {
    pub name: String,
    /// Dotted path into the experiment (`condense.ipc`), with `values`.
    #[serde(default)]
    pub field: Option<String>,
    #[serde(default)]
    pub values: Vec<toml::Value>,
    #[serde(default)]
    pub variants: Vec<Variant>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Variant {
    pub label: String,
    /// Fields merged into the base experiment: `{ level.name = "multi-level", distance.name = "combined" }`
    /// (`{ baseline = "random" }`: DC's Random row, real subsets, one per evaluation network).
    #[serde(default)]
    pub set: toml::Table,
}

/// `[curve]`: every condensation of the grid also yields its set after each of `iterations` (the
/// same run: nothing but the count depends on where it stops), evaluated by `num_eval` networks.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Curve {
    pub iterations: Vec<usize>,
    pub num_eval: usize,
}

/// `[[published]]`: a figure from the literature for the cell with these labels.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Published {
    /// The cell's labels by axis: `{ dataset = "mnist", method = "DC" }`.
    pub labels: toml::Table,
    /// Mean and, where the source gives it, std (%).
    pub mean: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub std: Option<f64>,
    pub source: String,
}

/// Which axes label the rows and which one the columns (`eval_model` for cross-architecture tables).
/// Axes named in neither are appended to the rows.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableLayout {
    #[serde(default)]
    pub rows: Vec<String>,
    #[serde(default)]
    pub columns: Option<String>,
}

/// One point of the grid.
#[derive(Debug, Clone)]
pub struct Cell {
    /// `(axis, label)` in axis order.
    pub labels: Vec<(String, String)>,
    /// The cell's experiment with its plug-ins built.
    pub resolved: Resolved,
    /// The key of its provenance: a changed config is a new cell, never mixed with old records.
    pub id: String,
    /// Its key under gradmatch's first evaluation recipes (before they were resolved per dataset):
    /// the store's records under it are this cell's, made under the old recipe.
    pub first_revision_id: String,
    /// The key of its condensation (the provenance without `[evaluation]`): cells that differ only
    /// in how their sets are evaluated (a protocol axis, say) condense the same sets, once.
    pub condensation: String,
    /// For a `[curve]` cell, the index of the cell whose condensations it stops early.
    pub curve_of: Option<usize>,
}

impl Cell {
    pub fn experiment(&self) -> &Experiment {
        &self.resolved.experiment
    }

    pub fn label(&self) -> String {
        label_text(&self.labels)
    }

    /// A folder name: readable labels plus the start of its id.
    pub fn folder(&self) -> String {
        let readable: String = self
            .labels
            .iter()
            .map(|(_, l)| l.as_str())
            .collect::<Vec<_>>()
            .join("_")
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '.' { c } else { '_' })
            .collect();
        if readable.is_empty() {
            self.id.clone()
        } else {
            format!("{readable}-{}", &self.id[..8])
        }
    }

    pub fn label_of(&self, axis: &str) -> Option<&str> {
        self.labels.iter().find(|(a, _)| a == axis).map(|(_, l)| l.as_str())
    }

    /// What it evaluates instead of condensed sets, if anything.
    pub fn baseline(&self) -> Option<Baseline> {
        self.experiment().baseline
    }

    /// Whether it condenses (a baseline or a coreset does not).
    pub fn condenses(&self) -> bool {
        self.baseline().is_none() && self.experiment().coreset.is_none()
    }
}

/// A cell of `resolved` with its identities.
fn cell(labels: Vec<(String, String)>, resolved: Resolved, curve_of: Option<usize>) -> Cell {
    let experiment = &resolved.experiment;
    let provenance = Provenance::of(experiment);
    let first_revision_id = Provenance::under_first_recipes(experiment).key();
    let (id, condensation) = (provenance.key(), provenance.condensation().key());
    Cell { labels, id, first_revision_id, resolved, condensation, curve_of }
}

/// `axis=label ...` of a cell's labels; `base` for the cell of a grid without axes.
pub fn label_text(labels: &[(String, String)]) -> String {
    if labels.is_empty() {
        return "base".into();
    }
    labels.iter().map(|(a, l)| format!("{a}={l}")).collect::<Vec<_>>().join(" ")
}

/// A condensation run of one cell: the unit that `--jobs` and `--shard` distribute.
#[derive(Debug, Clone)]
pub struct Job {
    pub cell: usize,
    /// Experiment index k (seed `base seed + k`).
    pub experiment: usize,
}

impl Grid {
    pub fn from_file(path: &Path, plugins: &Plugins) -> Result<Grid> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading ablation grid {}", path.display()))?;
        Grid::parse(&text, path, plugins)
    }

    /// The grid of `text` (read from `path`) with its cells, every one validated against `plugins`.
    pub fn parse(text: &str, path: &Path, plugins: &Plugins) -> Result<Grid> {
        const WHAT: &str = "ablation grid";
        let file = TomlFile::new(path, text);
        let mut grid: Grid = toml::from_str(text).map_err(|e| file.parse_error(WHAT, e))?;
        if grid.name.is_empty() {
            grid.name = path.file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_else(|| "grid".into());
        }
        grid.check_shape().map_err(|e| file.error(WHAT, None, e))?;
        // Expanding builds and validates every cell; errors point at the axis value, variant or base field at fault.
        grid.cells = grid.expand(plugins).map_err(|e| file.error(WHAT, None, e))?;
        Ok(grid)
    }

    fn check_shape(&self) -> Result<()> {
        if self.experiments == 0 {
            return Err(AtPath::error(Key::names(["experiments"]), "`experiments` must be at least 1, found 0"));
        }
        let mut names: Vec<&str> = Vec::new();
        for (a, axis) in self.axes.iter().enumerate() {
            let at = |keys: &[&str]| [axis_key(a), Key::names(keys.iter().copied())].concat();
            if axis.name == EVAL_MODEL_AXIS {
                return Err(AtPath::error(
                    at(&["name"]),
                    format!("axis name `{EVAL_MODEL_AXIS}` is reserved for the evaluation model pool"),
                ));
            }
            if names.contains(&axis.name.as_str()) {
                return Err(AtPath::error(at(&["name"]), format!("axis `{}` is defined twice", axis.name)));
            }
            names.push(&axis.name);
            match (&axis.field, axis.values.is_empty(), axis.variants.is_empty()) {
                (Some(_), false, true) | (None, true, false) => {}
                _ => {
                    let message =
                        format!("axis `{}`: give either `field` with `values`, or `variants` (each with `label` and `set`)", axis.name);
                    return Err(AtPath::error(at(&[]), message));
                }
            }
            let labels = axis_variants(axis).map_err(|e| AtPath::error(at(&["field"]), format!("{e:#}")))?;
            for (i, v) in labels.iter().enumerate() {
                if labels[..i].iter().any(|w| w.label == v.label) {
                    let message = format!("axis `{}`: label `{}` appears twice", axis.name, v.label);
                    return Err(AtPath::error([at(&[]), pick_key(axis, i)].concat(), message));
                }
            }
        }
        if let Some(curve) = &self.curve {
            let ascending = curve.iterations.windows(2).all(|w| w[0] < w[1]);
            if curve.iterations.is_empty() || curve.iterations[0] == 0 || !ascending || curve.num_eval == 0 {
                let message = "[curve]: `iterations` lists where the curve is taken, ascending and above 0 (e.g. [100, 200, 500]), and \
                               `num_eval` is at least 1";
                return Err(AtPath::error(Key::names(["curve"]), message));
            }
            if names.contains(&CURVE_AXIS) {
                let message = format!("[curve] labels its cells `{CURVE_AXIS}`: rename the axis of that name");
                return Err(AtPath::error(Key::names(["curve"]), message));
            }
        }
        let known: Vec<&str> = names.iter().copied().chain([EVAL_MODEL_AXIS]).collect();
        let used = self.table.rows.iter().enumerate().map(|(i, r)| (vec![Key::Name("rows".into()), Key::Index(i)], r));
        let used = used.chain(self.table.columns.iter().map(|c| (Key::names(["columns"]), c)));
        for (at, name) in used {
            if !known.contains(&name.as_str()) {
                let hint = did_you_mean(name, known.iter().copied());
                let message = format!("[table] names axis `{name}`{hint}, but the axes are: {}", known.join(", "));
                return Err(AtPath::error([Key::names(["table"]), at].concat(), message));
            }
        }
        Ok(())
    }

    /// Every combination of the axes' variants, in file order (the last axis varies fastest).
    fn expand(&self, plugins: &Plugins) -> Result<Vec<Cell>> {
        let axes: Vec<Vec<Variant>> = self.axes.iter().map(axis_variants).collect::<Result<_>>()?;
        let mut combos: Vec<Vec<Pick>> = vec![Vec::new()];
        for (axis, variants) in axes.iter().enumerate() {
            let picks = |c: Vec<Pick>| (0..variants.len()).map(move |index| [c.clone(), vec![Pick { axis, index }]].concat());
            combos = combos.into_iter().flat_map(picks).collect();
        }
        self.check_base_keys()?;
        let mut cells = Vec::new();
        for combo in combos {
            let picked: Vec<(&str, &Variant)> = combo.iter().map(|p| (self.axes[p.axis].name.as_str(), &axes[p.axis][p.index])).collect();
            check_no_overlap(&picked)
                .map_err(|e| AtPath::error(self.pick_path(combo.last().expect("overlaps need two axes")), format!("{e:#}")))?;
            let mut table = self.base.clone();
            for (_, variant) in &picked {
                merge(&mut table, &variant.set);
            }
            let where_ = picked.iter().map(|(a, v)| format!("axis `{a}` variant `{}`", v.label)).collect::<Vec<_>>().join(", ");
            let where_ = if where_.is_empty() { "[base]".to_string() } else { where_ };
            // The cell's error, at the variant (or axis value) that sets the field at fault, else at [base].
            let in_cell = |e: anyhow::Error| AtPath::error(self.source_of(&combo, &axes, &field_path(&e)), format!("{where_}: {e:#}"));
            let experiment: Experiment = from_value(toml::Value::Table(table)).map_err(in_cell)?;
            let experiment = match (experiment.baseline, &experiment.coreset) {
                // What it evaluates is real images, never condensed: its config says so.
                (Some(Baseline::Random), _) | (_, Some(_)) => {
                    let mut e = experiment;
                    (e.condense.iterations, e.condense.init) = (0, gradmatch_engine::Init::Real);
                    e
                }
                (None, None) => experiment,
            };
            let resolved = experiment.resolve(plugins).map_err(in_cell)?;
            let labels = picked.iter().map(|(a, v)| (a.to_string(), v.label.clone())).collect();
            cells.push(cell(labels, resolved, None));
        }
        self.add_curve_cells(&mut cells);
        for (i, c) in cells.iter().enumerate() {
            if let Some(same) = cells[..i].iter().find(|d| d.id == c.id) {
                bail!("cells `{}` and `{}` resolve to the same experiment: an axis changes nothing", same.label(), c.label());
            }
        }
        Ok(cells)
    }

    /// The `[curve]` cells of every condensing cell that runs past the curve's points (a point that
    /// is already a cell of the grid is that cell).
    fn add_curve_cells(&self, cells: &mut Vec<Cell>) {
        let Some(curve) = &self.curve else { return };
        let main = cells.len();
        for of in 0..main {
            let (condenses, iterations) = (cells[of].condenses(), cells[of].experiment().condense.iterations);
            for &at in curve.iterations.iter().filter(|&&at| condenses && at < iterations) {
                let mut resolved = cells[of].resolved.clone();
                (resolved.experiment.condense.iterations, resolved.experiment.evaluation.num_eval) = (at, curve.num_eval);
                let mut labels = cells[of].labels.clone();
                labels.push((CURVE_AXIS.to_string(), at.to_string()));
                let point = cell(labels, resolved, Some(of));
                if !cells.iter().any(|c| c.id == point.id) {
                    cells.push(point);
                }
            }
        }
    }

    /// The cells of the table: every cell but the `[curve]` ones.
    pub fn table_cells(&self) -> impl Iterator<Item = &Cell> {
        self.cells.iter().filter(|c| c.curve_of.is_none())
    }

    /// A key of `[base]` that no experiment has is the base's error, whatever the axes set (the
    /// base may lack fields that the axes give, such as `dataset`).
    fn check_base_keys(&self) -> Result<()> {
        match from_value::<Experiment>(toml::Value::Table(self.base.clone())) {
            Err(e) if e.to_string().contains("unknown field") => {
                Err(AtPath::error([Key::names(["base"]), field_path(&e)].concat(), format!("[base]: {e}")))
            }
            _ => Ok(()),
        }
    }

    /// Where in the grid file a pick sits: its variant, or its axis value.
    fn pick_path(&self, pick: &Pick) -> Vec<Key> {
        [axis_key(pick.axis), pick_key(&self.axes[pick.axis], pick.index)].concat()
    }

    /// Where in the grid file a cell's field `path` is written: in the variant (or at the axis value)
    /// that sets it, else in [base] (at the base's table when the field is left out).
    fn source_of(&self, combo: &[Pick], axes: &[Vec<Variant>], path: &[Key]) -> Vec<Key> {
        match combo.iter().find(|p| sets(&axes[p.axis][p.index].set, path)) {
            Some(pick) if self.axes[pick.axis].field.is_some() => self.pick_path(pick),
            Some(pick) => [self.pick_path(pick), Key::names(["set"]), path.to_vec()].concat(),
            None => [Key::names(["base"]), path.to_vec()].concat(),
        }
    }

    /// The lines in which `other` differs from this grid (`- ` this one's, `+ ` the other's), its
    /// description aside; none when they are the same grid.
    pub fn differences(&self, other: &Grid) -> Result<Vec<String>> {
        let lines = |g: &Grid| -> Result<Vec<String>> {
            let text = toml::to_string(&Grid { description: String::new(), ..g.clone() })?;
            Ok(text.lines().map(str::to_string).collect())
        };
        let (mine, theirs) = (lines(self)?, lines(other)?);
        let gone = mine.iter().filter(|l| !theirs.contains(l)).map(|l| format!("- {l}"));
        let new = theirs.iter().filter(|l| !mine.contains(l)).map(|l| format!("+ {l}"));
        let mut differences: Vec<String> = gone.chain(new).collect();
        if differences.is_empty() && mine != theirs {
            differences.push("(the same lines in another order)".into());
        }
        Ok(differences)
    }

    /// All condensation runs, in a fixed order.
    pub fn jobs(&self) -> Vec<Job> {
        (0..self.cells.len()).flat_map(|cell| (0..self.experiments).map(move |experiment| Job { cell, experiment })).collect()
    }
}

/// `--shard i/n`: which jobs a shard runs (round-robin over the fixed job order, so shards are balanced
/// across axes and every job belongs to exactly one shard).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl Shard {
    pub fn owns(&self, job_index: usize) -> bool {
        job_index % self.count == self.index
    }

    /// The shard whose lock file is `name` (`.records.jsonl.lock`, `.records-shard1of4.jsonl.lock`).
    pub fn of_lock_file(name: &str) -> Option<Shard> {
        let records = name.strip_prefix('.')?.strip_suffix(".lock")?;
        if records == "records.jsonl" {
            return Some(Shard { index: 0, count: 1 });
        }
        let (index, count) = records.strip_prefix("records-shard")?.strip_suffix(".jsonl")?.split_once("of")?;
        Some(Shard { index: index.parse().ok()?, count: count.parse().ok()? })
    }

    /// The store file this shard appends to (shards never share a file, so they never interleave writes).
    pub fn records_file(&self) -> String {
        if self.count == 1 {
            "records.jsonl".into()
        } else {
            format!("records-shard{}of{}.jsonl", self.index, self.count)
        }
    }
}

impl std::str::FromStr for Shard {
    type Err = String;
    fn from_str(s: &str) -> Result<Shard, String> {
        let bad = || format!("--shard expects i/n with 0 <= i < n (e.g. 0/4), found `{s}`");
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let (index, count): (usize, usize) = (i.trim().parse().map_err(|_| bad())?, n.trim().parse().map_err(|_| bad())?);
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

/// A grid's name is its default store folder under `runs/ablations/`: one plain folder name, never
/// a path (with `--store` the name is only a label).
pub fn check_name(name: &str) -> Result<()> {
    let plain = name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) && !name.starts_with('.') && !name.is_empty();
    anyhow::ensure!(
        plain,
        "the grid's `name` = {name:?} (its file name when it gives none) names its store folder under runs/ablations/, so it \
         must be a plain name (letters, digits, '-', '_' and '.', not starting with a dot); rename it, or choose the \
         folder with ablate --store <folder>"
    );
    Ok(())
}

/// The dotted fields a variant sets (`distance.name`, `condense.ipc`).
fn fields_set(table: &toml::Table, prefix: &str) -> Vec<String> {
    table
        .iter()
        .flat_map(|(key, value)| {
            let path = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
            match value {
                toml::Value::Table(inner) if !inner.is_empty() => fields_set(inner, &path),
                _ => vec![path],
            }
        })
        .collect()
}

/// Two axes that set the same field would label a cell with what it does not run: the later one wins
/// the merge, so the cell labelled "DC" might run another distance.
fn check_no_overlap(combo: &[(&str, &Variant)]) -> Result<()> {
    let fields: Vec<Vec<String>> = combo.iter().map(|(_, v)| fields_set(&v.set, "")).collect();
    for (i, (axis, variant)) in combo.iter().enumerate() {
        for (j, (other_axis, other)) in combo.iter().enumerate().skip(i + 1) {
            let overlap = |a: &String, b: &String| a == b || a.starts_with(&format!("{b}.")) || b.starts_with(&format!("{a}."));
            if let Some(field) = fields[i].iter().find(|a| fields[j].iter().any(|b| overlap(a, b))) {
                bail!(
                    "axis `{axis}` variant `{}` and axis `{other_axis}` variant `{}` both set `{field}`: a cell's labels must say what \
                     it runs, so set each field on one axis only (or in [base])",
                    variant.label,
                    other.label
                );
            }
        }
    }
    Ok(())
}

fn axis_variants(axis: &Axis) -> Result<Vec<Variant>> {
    let Some(field) = &axis.field else {
        return Ok(axis.variants.clone());
    };
    axis.values
        .iter()
        .map(|value| {
            let mut set = toml::Table::new();
            let mut path: Vec<&str> = field.split('.').collect();
            let last = path.pop().filter(|s| !s.is_empty()).with_context(|| format!("axis `{}`: empty field path", axis.name))?;
            let mut leaf = toml::Table::new();
            leaf.insert(last.to_string(), value.clone());
            for key in path.iter().rev() {
                let mut outer = toml::Table::new();
                outer.insert(key.to_string(), toml::Value::Table(leaf));
                leaf = outer;
            }
            set.extend(leaf);
            let label = match value {
                toml::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            Ok(Variant { label, set })
        })
        .collect()
}

/// Deep merge: tables merge key by key, anything else replaces.
fn merge(into: &mut toml::Table, from: &toml::Table) {
    for (key, value) in from {
        match (into.get_mut(key), value) {
            (Some(toml::Value::Table(a)), toml::Value::Table(b)) => merge(a, b),
            _ => {
                into.insert(key.clone(), value.clone());
            }
        }
    }
}

/// One variant (or axis value) of one axis: what a cell takes from that axis.
#[derive(Debug, Clone, Copy)]
struct Pick {
    axis: usize,
    index: usize,
}

fn axis_key(axis: usize) -> Vec<Key> {
    vec![Key::Name("axis".into()), Key::Index(axis)]
}

/// The key of an axis's `index`th variant, or value.
fn pick_key(axis: &Axis, index: usize) -> Vec<Key> {
    let list = if axis.field.is_some() { "values" } else { "variants" };
    vec![Key::Name(list.into()), Key::Index(index)]
}

/// Whether `table` (a variant's `set`) sets the field at `path`, or the part of it that it reaches:
/// an empty path (an error about no one field) is the first pick's.
fn sets(table: &toml::Table, path: &[Key]) -> bool {
    let mut table = table;
    for key in path {
        let Key::Name(name) = key else { return true };
        match table.get(name) {
            Some(toml::Value::Table(inner)) => table = inner,
            Some(_) => return true,
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use gradmatch_engine::Schedule;

    const GRID: &str = r#"
experiments = 2
[base]
dataset = "mnist"
model = "ConvNetW16"
[base.condense]
iterations = 5

[[axis]]
name = "method"
variants = [
  { label = "DC", set = {} },
  { label = "M", set = { level.name = "multi-level" } },
]
[[axis]]
name = "ipc"
field = "condense.ipc"
values = [1, 10]

[table]
rows = ["method"]
columns = "ipc"
"#;

    fn parse(text: &str) -> Result<Grid> {
        Grid::parse(text, Path::new("ablations/test.toml"), &Plugins::builtin())
    }

    #[test]
    fn expands_to_every_combination_with_resolved_configs() {
        let grid = parse(GRID).unwrap();
        let cells = &grid.cells;
        let labels: Vec<String> = cells.iter().map(Cell::label).collect();
        assert_eq!(labels, ["method=DC ipc=1", "method=DC ipc=10", "method=M ipc=1", "method=M ipc=10"]);
        assert_eq!(cells[3].experiment().method.level.name, "multi-level");
        assert_eq!(cells[3].experiment().condense.ipc, 10);
        assert_eq!(cells[3].experiment().condense.iterations, 5, "base fields survive the merge");
        assert_eq!(cells[0].experiment().method.level.name, "intra");
        assert_eq!(grid.jobs().len(), 8);
        assert_eq!(grid.name, "test");
    }

    #[test]
    fn a_curve_adds_its_points_below_each_condensation_and_a_baseline_evaluates_real_subsets() {
        let random = GRID.replace("{ label = \"DC\", set = {} },", "{ label = \"Random\", set = { baseline = \"random\" } },");
        let grid = parse(&(random + "[curve]\niterations = [2, 5, 8]\nnum_eval = 3\n")).unwrap();
        let labels: Vec<String> = grid.cells.iter().map(Cell::label).collect();
        let main = ["method=Random ipc=1", "method=Random ipc=10", "method=M ipc=1", "method=M ipc=10"];
        assert_eq!(labels, [&main[..], &["method=M ipc=1 iterations=2", "method=M ipc=10 iterations=2"]].concat(), "points below 5 only");
        assert_eq!(grid.table_cells().map(Cell::label).collect::<Vec<_>>(), main);
        let point = &grid.cells[4];
        assert_eq!((point.curve_of, point.experiment().condense.iterations, point.experiment().evaluation.num_eval), (Some(2), 2, 3));
        let baseline = &grid.cells[0];
        assert_eq!((baseline.baseline(), baseline.condenses()), (Some(Baseline::Random), false));
        assert_eq!(baseline.experiment().condense.iterations, 0, "its config says it condenses nothing");
        let plain = parse(&GRID.replace("{ label = \"DC\", set = {} },", "{ label = \"Random\", set = {} },")).unwrap();
        assert_ne!(plain.cells[0].id, baseline.id, "a baseline is never taken for a set condensed with the same config");

        let err = parse(&(GRID.to_string() + "[curve]\niterations = [4, 2]\nnum_eval = 3\n")).unwrap_err().to_string();
        assert!(err.contains("[curve]") && err.contains("ascending"), "{err}");
        let twice = GRID.replace("{ label = \"DC\", set = {} },", "{ label = \"DC\", set = { baseline = \"random\" } },").replace(
            "values = [1, 10]",
            "values = [1, 10]\n[[axis]]\nname = \"b\"\nvariants = [{ label = \"R\", set = { baseline = \"random\" } }]",
        );
        let err = format!("{:#}", parse(&twice).unwrap_err());
        assert!(err.contains("both set `baseline`"), "{err}");
    }

    #[test]
    fn a_protocol_axis_gives_each_cell_its_recipe_and_given_fields_override_it() {
        let text = "[base]\ndataset = \"mnist\"\n[base.evaluation]\nnum_eval = 2\n\
                    [[axis]]\nname = \"protocol\"\nfield = \"evaluation.protocol\"\nvalues = [\"dc\", \"dsa\"]\n";
        let grid = parse(text).unwrap();
        let recipes: Vec<_> = grid
            .cells
            .iter()
            .map(|c| (c.experiment().recipes(), c.experiment().evaluation.num_eval))
            .map(|(r, n)| (r[0].epochs, r[0].augment.clone(), r[0].schedule, n))
            .collect();
        assert_eq!(recipes, [(1000, "crop_scale_rotate".into(), Schedule::MultiStep, 2), (1000, "dsa".into(), Schedule::Restart, 2)]);
        let (dc, dsa) = (&grid.cells[0], &grid.cells[1]);
        assert!(dc.id != dsa.id && dc.condensation == dsa.condensation, "two cells, one condensation");
        let methods = parse(GRID).unwrap();
        assert_ne!(methods.cells[0].condensation, methods.cells[2].condensation, "DC and M condense different sets");
        let err = format!("{:#}", parse(&text.replace("\"dsa\"]", "\"dsa\", \"mtt\"]")).unwrap_err());
        assert!(err.contains("variant `mtt`") && err.contains("`dsa`"), "{err}");
    }

    #[test]
    fn shards_partition_the_jobs() {
        let n = 3;
        let shards: Vec<Shard> = (0..n).map(|i| format!("{i}/{n}").parse().unwrap()).collect();
        for job in 0..20 {
            assert_eq!(shards.iter().filter(|s| s.owns(job)).count(), 1);
        }
        assert!("3/3".parse::<Shard>().is_err() && "1-2".parse::<Shard>().is_err() && "0/0".parse::<Shard>().is_err());
        for shard in [Shard { index: 0, count: 1 }, Shard { index: 2, count: 3 }] {
            assert_eq!(Shard::of_lock_file(&format!(".{}.lock", shard.records_file())), Some(shard));
        }
        assert_eq!(Shard::of_lock_file("records.jsonl"), None);
    }

    #[test]
    fn errors_name_file_line_field_and_fix() {
        let err = |text: &str| format!("{:#}", parse(text).unwrap_err());
        let e = err(&GRID.replace("experiments = 2", "experimnts = 2"));
        assert!(e.contains("ablations/test.toml") && e.contains("line 2") && e.contains("did you mean `experiments`"), "{e}");
        let e = err(&GRID.replace("level.name = \"multi-level\"", "level.name = \"multilevel\""));
        assert!(
            e.contains("variant `M`") && e.contains("did you mean `multi-level`") && e.contains("interleaved") && e.contains("line 13"),
            "{e}"
        );
        let e = err(&GRID.replace("field = \"condense.ipc\"", "field = \"condense.ipcs\""));
        assert!(e.contains("ipcs") && e.contains("did you mean `ipc`"), "{e}");
        let e = err(&GRID.replace("values = [1, 10]", "values = [0, 10]"));
        assert!(e.contains("`ipc` = 0") && e.contains("variant `0`"), "{e}");
        let e = err(&GRID.replace("columns = \"ipc\"", "columns = \"ipcc\""));
        assert!(e.contains("did you mean `ipc`"), "{e}");
        let e = err(&GRID.replace("{ label = \"M\", set = { level.name = \"multi-level\" } }", "{ label = \"DC\", set = {} }"));
        assert!(e.contains("label `DC` appears twice"), "{e}");
        let e = err(&GRID.replace("level.name = \"multi-level\"", "level.name = \"intra\""));
        assert!(e.contains("resolve to the same experiment"), "{e}");
    }

    #[test]
    fn a_name_is_a_plain_folder_name() {
        for name in ["/elsewhere/victim", "../../../x", "a/b", "..", ".hidden", "my grid"] {
            let e = format!("{:#}", check_name(name).unwrap_err());
            assert!(e.contains("must be a plain name") && e.contains("--store") && e.contains(&format!("{name:?}")), "{name}: {e}");
        }
        check_name("table-3_v2.1").unwrap();
    }

    #[test]
    fn two_axes_never_set_one_field() {
        let text = GRID.replace("field = \"condense.ipc\"\nvalues = [1, 10]", "field = \"level.name\"\nvalues = [\"intra\", \"inter\"]");
        let e = format!("{:#}", parse(&text).unwrap_err());
        assert!(e.contains("axis `method` variant `M` and axis `ipc` variant `intra` both set `level.name`"), "{e}");
        let text = GRID.replace("field = \"condense.ipc\"\nvalues = [1, 10]", "field = \"level\"\nvalues = [{ name = \"intra\" }]");
        assert!(format!("{:#}", parse(&text).unwrap_err()).contains("both set `level"));
    }

    #[test]
    fn an_unknown_base_key_is_the_bases_error() {
        let e = format!("{:#}", parse(&GRID.replace("iterations = 5", "iterations = 5\n[base.evaluation]\nnum_evals = 2")).unwrap_err());
        assert!(e.contains("[base]") && !e.contains("variant") && e.contains("did you mean `num_eval`") && e.contains("line 9"), "{e}");
    }
}
