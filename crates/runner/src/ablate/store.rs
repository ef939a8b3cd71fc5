//! The results store: append-only JSON Lines, one record per finished unit of work, fsynced.
//!
//! Why JSONL and not SQLite: a record is written by one `write` of one line to a file opened for
//! appending, then `fsync`ed, so a `kill -9` can at worst leave one partial last line (work in flight),
//! which reading ignores and the next writer cuts off. Shards write their own files in the same
//! folder, so merging is reading every `records*.jsonl`; the files are greppable, diffable and need
//! no C library. Keys make records idempotent: a unit already recorded is never run or counted twice.

use super::grid::{Grid, Shard};
use crate::experiment::Experiment;
use crate::jsonl::{self, complete_lines, open_for_append};
use anyhow::{bail, Context, Result};
use gradmatch_engine::Recipe;
use gradmatch_plugins::Plugins;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The store's files are `records*.jsonl` (one per shard).
pub const RECORDS: &str = "records";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Record {
    /// The provenance schema its `cell` id was made under; a store holding older records is
    /// migrated when opened ([`crate::migrate::store`]).
    pub schema: u32,
    /// Unique per unit of work: `<cell id>/e<k>/condense` or `<cell id>/e<k>/<model>/<n>`.
    pub key: String,
    pub cell: String,
    pub labels: Vec<(String, String)>,
    pub experiment: usize,
    /// Condensation seed of this experiment.
    pub seed: u64,
    pub config: Experiment,
    pub device: String,
    /// What it ran on ([`crate::global::machine`]): a grid resumed across sittings may run on
    /// several machines. Absent in records made before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine: Option<String>,
    pub version: String,
    /// Wall seconds of this unit.
    pub seconds: f64,
    pub finished_unix: u64,
    #[serde(flatten)]
    pub outcome: Outcome,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Outcome {
    Condensed {
        seconds_per_iteration: f64,
        /// Matching loss per outer iteration (index = iteration).
        losses: Vec<f64>,
        /// Inner epochs run per outer iteration (summed over its outer-loop steps).
        inner_epochs: Vec<usize>,
        /// The synthetic set, relative to the store folder.
        set: PathBuf,
        grid_image: PathBuf,
    },
    Evaluated {
        model: String,
        index: usize,
        eval_seed: u64,
        accuracy: f64,
        final_train_loss: f64,
        /// What the accuracy was measured under (absent in records written before protocols: those
        /// were measured under their config's `[evaluation]`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        recipe: Option<Recipe>,
    },
    /// A unit that failed; it is retried on the next run and reported until it succeeds.
    Failed { stage: String, error: String },
}

impl Record {
    pub fn is_failure(&self) -> bool {
        matches!(self.outcome, Outcome::Failed { .. })
    }
}

pub fn condense_key(cell: &str, experiment: usize) -> String {
    format!("{cell}/e{experiment}/condense")
}

pub fn evaluation_key(cell: &str, experiment: usize, model: &str, index: usize) -> String {
    format!("{cell}/e{experiment}/{model}/{index}")
}

impl Outcome {
    /// Whether two records of one unit report the same result (timings aside): a resumed or shared
    /// unit reproduces its numbers exactly, so any difference is worth a reader's attention.
    fn agrees_with(&self, other: &Outcome) -> bool {
        match (self, other) {
            (Outcome::Condensed { losses: a, set: s, .. }, Outcome::Condensed { losses: b, set: t, .. }) => a == b && s == t,
            (
                Outcome::Evaluated { accuracy: a, final_train_loss: la, .. },
                Outcome::Evaluated { accuracy: b, final_train_loss: lb, .. },
            ) => a == b && la == lb,
            _ => self == other,
        }
    }
}

/// Brings the records of earlier versions in store `dir` to today's schema ([`crate::migrate::store`]):
/// called by the commands that open a store, before they lock or read it.
pub fn migrate(dir: &Path) -> Result<()> {
    let locks: Vec<PathBuf> = shard_locks(dir)?.into_iter().map(|(path, _)| path).collect();
    crate::migrate::store::<Record>(dir, &jsonl::files(dir, RECORDS)?, &locks)
}

/// All records of a store folder (every shard's file), successes deduplicated by key.
pub struct Records {
    pub done: HashMap<String, Record>,
    pub failures: Vec<Record>,
    /// Records of a unit that disagree with its earliest finished one (which is the one used).
    pub conflicts: Vec<Record>,
}

impl Records {
    /// Reads every `records*.jsonl` of the given store folders (several folders merge).
    pub fn read(dirs: &[&Path]) -> Result<Records> {
        let mut files: Vec<PathBuf> = Vec::new();
        for dir in dirs {
            files.extend(jsonl::files(dir, RECORDS)?);
        }
        let mut records = Records { done: HashMap::new(), failures: Vec::new(), conflicts: Vec::new() };
        for file in files {
            for record in read_file(&file)? {
                if record.is_failure() {
                    records.failures.push(record);
                    continue;
                }
                match records.done.get_mut(&record.key) {
                    None => drop(records.done.insert(record.key.clone(), record)),
                    // The earliest finished record of a unit is the one used, whichever file holds it.
                    Some(first) if !first.outcome.agrees_with(&record.outcome) => {
                        let later = match record.finished_unix < first.finished_unix {
                            true => std::mem::replace(first, record),
                            false => record,
                        };
                        records.conflicts.push(later);
                    }
                    Some(_) => {}
                }
            }
        }
        // A failure is history once its unit has succeeded.
        records.failures.retain(|f| !records.done.contains_key(&f.key));
        Ok(records)
    }
}

/// Complete lines of one store file; a partial last line (a write cut by a kill) is ignored.
fn read_file(path: &Path) -> Result<Vec<Record>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading store file {}", path.display()))?;
    complete_lines(&text)
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, line)| {
            serde_json::from_str(line).with_context(|| {
                format!("{} line {}: not a gradmatch record (the file is corrupt; remove that line to go on)", path.display(), i + 1)
            })
        })
        .collect()
}

/// The file this process appends to.
pub struct Appender {
    path: PathBuf,
    file: Mutex<File>,
}

impl Appender {
    /// Opens (creating) `dir/file_name` for appending records.
    pub fn open(dir: &Path, file_name: &str) -> Result<Appender> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating store folder {}", dir.display()))?;
        let path = dir.join(file_name);
        let file = open_for_append(&path)?;
        Ok(Appender { path, file: Mutex::new(file) })
    }

    pub fn append(&self, record: &Record) -> Result<()> {
        let mut line = serde_json::to_string(record)?;
        if line.contains('\n') {
            bail!("a record serialised over several lines");
        }
        line.push('\n');
        let mut file = self.file.lock().expect("store lock poisoned");
        file.write_all(line.as_bytes()).with_context(|| format!("appending to {}", self.path.display()))?;
        file.sync_data().with_context(|| format!("syncing {}", self.path.display()))
    }
}

/// The exclusive right to run one shard of a store, held while the process lives (the OS releases
/// it when the process ends, even by `kill -9`): two processes on one shard would run every unit twice.
pub struct Lock {
    _file: File,
}

impl Lock {
    /// Takes the lock of `shard` in `store`, or says who holds it; refuses to run beside a shard of
    /// another split of the grid (`--shard i/m` running now), whose units overlap this one's.
    pub fn acquire(store: &Path, shard: &Shard) -> Result<Lock> {
        std::fs::create_dir_all(store).with_context(|| format!("creating store folder {}", store.display()))?;
        let path = store.join(lock_name(&shard.records_file()));
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let holder = std::fs::read_to_string(&path).unwrap_or_default();
                bail!(
                    "store {} is in use by another `gradmatch ablate` ({}) running the same shard; wait for it to end, or run \
                     another shard of the grid (--shard i/n) or another store (--store)",
                    store.display(),
                    holder.trim()
                )
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(e).with_context(|| format!("locking {}", path.display())),
        }
        file.set_len(0)?;
        write!(file, "pid {} on {} since unix time {}", std::process::id(), crate::files::host(), now_unix())?;
        check_no_other_split(store, shard)?;
        Ok(Lock { _file: file })
    }
}

fn lock_name(records_file: &str) -> String {
    format!(".{records_file}.lock")
}

/// Shards of one split (`i/n`, same n) own disjoint units; a shard of another split running at the
/// same time would run some of them twice.
fn check_no_other_split(store: &Path, shard: &Shard) -> Result<()> {
    for (path, other) in shard_locks(store)? {
        if other.count == shard.count {
            continue;
        }
        let file = File::open(&path).with_context(|| format!("opening {}", path.display()))?;
        if let Err(std::fs::TryLockError::WouldBlock) = file.try_lock_shared() {
            bail!(
                "store {} is being run as shard {}/{} by another process ({}); shard {}/{} would run some of its units \
                 again: run the same split (--shard i/{}) or wait for it to end",
                store.display(),
                other.index,
                other.count,
                std::fs::read_to_string(&path).unwrap_or_default().trim(),
                shard.index,
                shard.count,
                other.count
            );
        }
    }
    Ok(())
}

/// The lock files of the shards that have run on `store` (none when it does not exist yet).
fn shard_locks(store: &Path) -> Result<Vec<(PathBuf, Shard)>> {
    if !store.exists() {
        return Ok(Vec::new());
    }
    let mut locks = Vec::new();
    for entry in std::fs::read_dir(store).with_context(|| format!("reading store folder {}", store.display()))? {
        let path = entry?.path();
        let name = path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
        if let Some(shard) = Shard::of_lock_file(&name) {
            locks.push((path, shard));
        }
    }
    Ok(locks)
}

/// Makes `grid` the one `store` keeps (`grid.toml`, what `report` reads), refusing a store that holds
/// another grid unless `replace` says so.
pub fn keep_grid(grid: &Grid, store: &Path, replace: bool, plugins: &Plugins) -> Result<()> {
    let path = store.join("grid.toml");
    if path.exists() && !replace {
        let kept = Grid::from_file(&path, plugins).with_context(|| {
            format!(
                "{} is not a grid this gradmatch accepts (another tool's file, or a grid that today's checks refuse): \
                     give another --store, or pass --replace-grid to make this grid the store's",
                path.display()
            )
        })?;
        let differences = kept.differences(grid)?;
        if !differences.is_empty() {
            bail!(
                "store {} holds the records of another grid (`{}`); it differs from `{}` in:\n  {}\nrun this grid into \
                 another store (--store), or pass --replace-grid to make it this store's grid (the records stay)",
                store.display(),
                kept.name,
                grid.name,
                differences.join("\n  ")
            );
        }
    }
    let text = format!("# Written by `gradmatch ablate`; `gradmatch report` reads it.\n{}", toml::to_string(grid)?);
    crate::files::write_atomic(&path, text)
}

pub fn now_unix() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use gradmatch_data::DatasetName;
    use std::fs::OpenOptions;

    fn record(key: &str, outcome: Outcome) -> Record {
        Record {
            schema: crate::provenance::Provenance::SCHEMA,
            key: key.into(),
            cell: "c".into(),
            labels: vec![("method".into(), "DC".into())],
            experiment: 0,
            seed: 0,
            config: Experiment::dc(DatasetName::Mnist),
            device: "cpu".into(),
            machine: None,
            version: "test".into(),
            seconds: 1.0,
            finished_unix: 0,
            outcome,
        }
    }

    fn evaluated(accuracy: f64) -> Outcome {
        Outcome::Evaluated { model: "ConvNet".into(), index: 0, eval_seed: 1, accuracy, final_train_loss: 0.1, recipe: None }
    }

    #[test]
    fn partial_last_line_is_ignored_then_cut_and_duplicates_count_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Appender::open(dir.path(), "records.jsonl").unwrap();
        store.append(&record("a", evaluated(0.5))).unwrap();
        store.append(&record("a", evaluated(0.9))).unwrap();
        store.append(&record("b", Outcome::Failed { stage: "condense".into(), error: "NaN".into() })).unwrap();
        drop(store);
        // A write cut by kill -9.
        let path = dir.path().join("records.jsonl");
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"key\":\"c\",\"ce").unwrap();
        let records = Records::read(&[dir.path()]).unwrap();
        assert_eq!(records.done.len(), 1);
        assert_eq!(records.done["a"].outcome, evaluated(0.5), "of two finished at the same second, the first read is used");
        assert_eq!(records.conflicts.len(), 1, "and the disagreeing one is reported");
        assert_eq!(records.conflicts[0].outcome, evaluated(0.9));
        assert_eq!(records.failures.len(), 1);

        let store = Appender::open(dir.path(), "records.jsonl").unwrap();
        store.append(&record("b", evaluated(0.7))).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.lines().all(|l| serde_json::from_str::<Record>(l).is_ok()), "the partial line was cut: {text}");
        let records = Records::read(&[dir.path()]).unwrap();
        assert_eq!(records.done.len(), 2);
        assert!(records.failures.is_empty(), "a failure that later succeeded is not reported");
    }

    #[test]
    fn corrupt_line_names_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("records-shard0of2.jsonl"), "{\"not\": \"a record\"}\n").unwrap();
        let err = format!("{:#}", Records::read(&[dir.path()]).err().unwrap());
        assert!(err.contains("records-shard0of2.jsonl line 1") && err.contains("corrupt"), "{err}");
    }
}
