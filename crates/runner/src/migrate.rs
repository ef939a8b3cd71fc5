//! Files of earlier versions, brought to today's provenance schema in one explicit step each, so that
//! nothing a user has computed is lost or run again.
//!
//! Schema 0 (before the versioned provenance): an ablation cell's id was the MD5 of its experiment's
//! JSON as serde wrote it then, and a checkpoint carried a fingerprint of its config, model and method
//! metadata. A store is migrated by re-keying every record with the provenance of the `config` it
//! holds and renaming the cells' folders to match (the old record files are kept in
//! `<store>/migrated-from-schema-0/`, and a migration cut short starts again from them); a
//! checkpoint by writing its provenance's key into it.
//!
//! Schema 1 (before samplers): the method had no `sampler`; every run drew its real batches
//! uniformly, today's `random`. Stores and checkpoints are re-keyed alike, from the same configs
//! (which read with today's default), the old record files kept in `migrated-from-schema-1/`.
//!
//! Schema 2 (before keys left defaults out): a provenance wrote every plug-in kind of its method, so
//! that a new kind with a default would have changed every key. Today's writes only the kinds that
//! depart from their defaults; stores and checkpoints are re-keyed alike (`migrated-from-schema-2/`),
//! and the sets of unfinished runs that no record names yet (checkpoints, the prefix sets of a curve)
//! are taken over by their keys when their runs resume ([`adopt_unfinished`]).

use crate::experiment::{Experiment, PluginSpec};
use crate::jsonl::complete_lines;
use crate::provenance::{MethodSpec, Provenance};
use anyhow::{bail, Context, Result};
use candle_core::Device;
use gradmatch_engine::{Recipe, RunIdentity, SyntheticSet};
use serde::{de::DeserializeOwned, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// The folder holding a store's record files as they were before the migration from `schema`.
fn backup_folder(schema: u64) -> String {
    format!("migrated-from-schema-{schema}")
}
/// Written into the backup folder once every file is copied there.
const BACKUP_COMPLETE: &str = "COMPLETE";

/// Migrates the record files `files` of the store `dir` to [`Provenance::SCHEMA`] if any record is
/// older, writing each as today's `Record` type writes it; a store already there is left untouched.
/// Refused while a `gradmatch ablate` runs on the store (it holds one of the shard locks `locks`):
/// its records would go to the files being replaced.
pub fn store<Record: Serialize + DeserializeOwned>(dir: &Path, files: &[PathBuf], locks: &[PathBuf]) -> Result<()> {
    let oldest = |stores: &[(PathBuf, Vec<Value>)]| stores.iter().flat_map(|(_, r)| r).map(schema).min().filter(|&s| s < current());
    if oldest(&read(files)?).is_none() {
        return Ok(());
    }
    let _locks = lock_store(dir, locks)?;
    let mut stores = read(files)?; // again: another process may have migrated it meanwhile
    let Some(from) = oldest(&stores) else { return Ok(()) };
    let backup = keep_originals(dir, files, from)?;
    // The ids come from the original records, so that a migration cut short and run again gives
    // every record the id the first run gave it.
    let originals = read(&crate::jsonl::files(&backup, "records")?)?;
    let old: Vec<&Value> = originals.iter().chain(&stores).flat_map(|(_, r)| r).filter(|r| schema(r) < current()).collect();
    let ids = new_cell_ids(&old)?;
    let folders = rename_folders(dir, &old, &ids)?;
    let mut count = 0;
    for (file, records) in &mut stores {
        let mut text = String::new();
        for record in records.iter_mut() {
            if schema(record) < current() {
                rekey(record, &ids, &folders).with_context(|| format!("migrating {}", file.display()))?;
                count += 1;
            }
            let typed: Record =
                serde_json::from_value(record.clone()).with_context(|| format!("migrating {}: {record}", file.display()))?;
            text += &(serde_json::to_string(&typed)? + "\n");
        }
        let tmp = file.with_extension("jsonl.migrating");
        std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, &*file).with_context(|| format!("replacing {}", file.display()))?;
    }
    eprintln!(
        "{}: {count} records of {} cells migrated to provenance schema {} (the old files are in {})",
        dir.display(),
        ids.len(),
        Provenance::SCHEMA,
        backup.display()
    );
    Ok(())
}

/// The store's shard locks `shard_locks`, taken (a running `ablate` holds its own), and the
/// migration's own (blocking: another migration ends first).
fn lock_store(dir: &Path, shard_locks: &[PathBuf]) -> Result<Vec<std::fs::File>> {
    let own = std::fs::File::create(dir.join(".migrate.lock")).with_context(|| format!("locking store {}", dir.display()))?;
    own.lock().with_context(|| format!("locking store {}", dir.display()))?;
    let mut locks = vec![own];
    for path in shard_locks {
        let file = std::fs::OpenOptions::new().read(true).write(true).open(path).with_context(|| format!("opening {}", path.display()))?;
        if let Err(std::fs::TryLockError::WouldBlock) = file.try_lock() {
            let holder = std::fs::read_to_string(path).unwrap_or_default();
            bail!(
                "store {} was made by an earlier gradmatch and must be migrated to provenance schema {}, but a `gradmatch ablate` \
                 runs on it ({}): migrate it when that has ended (any `ablate` or `report` of it does)",
                dir.display(),
                Provenance::SCHEMA,
                holder.trim()
            )
        }
        locks.push(file);
    }
    Ok(locks)
}

/// Copies the store's record files, as they are before the migration from schema `from`, into its
/// backup folder (once: a migration run again keeps the first copies), and returns that folder.
fn keep_originals(dir: &Path, files: &[PathBuf], from: u64) -> Result<PathBuf> {
    let backup = dir.join(backup_folder(from));
    if backup.join(BACKUP_COMPLETE).exists() {
        return Ok(backup);
    }
    std::fs::create_dir_all(&backup).with_context(|| format!("creating {}", backup.display()))?;
    for file in files {
        let kept = backup.join(file.file_name().expect("a record file has a name"));
        let tmp = kept.with_extension("jsonl.copying");
        std::fs::copy(file, &tmp).with_context(|| format!("keeping {} in {}", file.display(), backup.display()))?;
        std::fs::rename(&tmp, &kept).with_context(|| format!("keeping {} in {}", file.display(), backup.display()))?;
    }
    let note = format!("the record files of this store before its migration to provenance schema {}\n", Provenance::SCHEMA);
    std::fs::write(backup.join(BACKUP_COMPLETE), note).with_context(|| format!("writing {}", backup.display()))?;
    Ok(backup)
}

/// Every complete record of every file, as JSON; a line that is not one is named.
fn read(files: &[PathBuf]) -> Result<Vec<(PathBuf, Vec<Value>)>> {
    let record = |file: &Path, i: usize, line: &str| -> Result<Value> {
        let value: Value = serde_json::from_str(line).unwrap_or(Value::Null);
        let fields = ["key", "cell", "experiment", "config", "kind"];
        anyhow::ensure!(
            fields.iter().all(|f| !value[f].is_null()),
            "{} line {}: not a gradmatch record (the file is corrupt; remove that line to go on)",
            file.display(),
            i + 1
        );
        Ok(value)
    };
    files
        .iter()
        .map(|file| {
            let text = std::fs::read_to_string(file).with_context(|| format!("reading store file {}", file.display()))?;
            let lines = complete_lines(&text).lines().enumerate().filter(|(_, l)| !l.trim().is_empty());
            Ok((file.clone(), lines.map(|(i, l)| record(file, i, l)).collect::<Result<_>>()?))
        })
        .collect()
}

fn schema(record: &Value) -> u64 {
    record["schema"].as_u64().unwrap_or(0)
}

fn current() -> u64 {
    Provenance::SCHEMA.into()
}

fn text<'r>(record: &'r Value, field: &str) -> Result<&'r str> {
    record[field].as_str().with_context(|| format!("a record without `{field}`: {record}"))
}

/// The recipe revision a record's figures were made under: its recipe's, 1 where none was recorded
/// (before recipes were); `None` for records that are not evaluations.
fn revision(record: &Value) -> Option<u32> {
    (record["kind"] == "evaluated").then(|| record["recipe"]["revision"].as_u64().map_or(1, |r| r as u32))
}

/// Each old cell id's new ids, by recipe revision (`None`: its records that are not evaluations,
/// placed under the earliest revision its evaluations were made under).
fn new_cell_ids(old: &[&Value]) -> Result<BTreeMap<String, HashMap<Option<u32>, String>>> {
    let mut earliest: HashMap<&str, u32> = HashMap::new();
    for record in old {
        let revision = revision(record).unwrap_or(Recipe::REVISION);
        let entry = earliest.entry(text(record, "cell")?).or_insert(revision);
        *entry = (*entry).min(revision);
    }
    let mut ids: BTreeMap<String, HashMap<Option<u32>, String>> = BTreeMap::new();
    for record in old {
        let cell = text(record, "cell")?;
        let experiment = base_experiment(record)?;
        let recipes = revision(record).unwrap_or(earliest[cell]);
        let provenance = match recipes {
            1 => Provenance::under_first_recipes(&experiment),
            _ => Provenance::of(&experiment),
        };
        let id = provenance.key();
        match ids.entry(cell.to_string()).or_default().insert(revision(record), id.clone()) {
            Some(other) if other != id => {
                bail!("the records of cell {cell} hold different experiments ({other} and {id}): not a store gradmatch wrote")
            }
            _ => {}
        }
    }
    Ok(ids)
}

/// The experiment of a record's cell: its `config`, with the base seed of the grid (experiment `k`
/// condenses with `base seed + k`).
fn base_experiment(record: &Value) -> Result<Experiment> {
    let mut experiment: Experiment =
        serde_json::from_value(record["config"].clone()).with_context(|| format!("the `config` of record {}", record["key"]))?;
    let k = record["experiment"].as_u64().with_context(|| format!("a record without `experiment`: {}", record["key"]))?;
    experiment.condense.seed = experiment.condense.seed.checked_sub(k).context("a seed below its experiment index")?;
    Ok(experiment)
}

/// The id a record gets.
fn new_id<'i>(record: &Value, ids: &'i BTreeMap<String, HashMap<Option<u32>, String>>) -> Result<&'i str> {
    let cell = text(record, "cell")?;
    let id = ids.get(cell).and_then(|by_revision| by_revision.get(&revision(record)));
    Ok(id.with_context(|| format!("internal: no new id for cell {cell}"))?)
}

/// Renames each cell folder that a condensed record names (`cells/<labels>-<id[..8]>`, or
/// `cells/<id>` for a grid without axes) after its cell's new id; returns old -> new folder for
/// those renamed (now or by an interrupted migration). A folder whose new name is taken keeps its
/// name, and its records their paths.
fn rename_folders(dir: &Path, old: &[&Value], ids: &BTreeMap<String, HashMap<Option<u32>, String>>) -> Result<BTreeMap<String, String>> {
    let mut folders = BTreeMap::new();
    for record in old.iter().filter(|r| r["kind"] == "condensed") {
        let (old_id, new_id) = (text(record, "cell")?, new_id(record, ids)?);
        let Some(folder) = text(record, "set")?.strip_prefix("cells/").and_then(|s| s.split('/').next()) else { continue };
        let renamed = match old_id.get(..8).and_then(|start| folder.strip_suffix(start)) {
            _ if folder == old_id => new_id.to_string(),
            Some(labels) if labels.ends_with('-') => format!("{labels}{}", &new_id[..8]),
            // A set shared from another cell's folder keeps that folder's name.
            _ => continue,
        };
        folders.insert(folder.to_string(), renamed);
    }
    let cells = dir.join("cells");
    folders.retain(|old, new| cells.join(old).exists() != cells.join(&*new).exists());
    for (old, new) in &folders {
        let (from, to) = (cells.join(old), cells.join(new));
        if from.exists() {
            std::fs::rename(&from, &to).with_context(|| format!("renaming {} to {}", from.display(), to.display()))?;
        }
    }
    Ok(folders)
}

/// An older record with its new cell id, key and folder paths.
fn rekey(record: &mut Value, ids: &BTreeMap<String, HashMap<Option<u32>, String>>, folders: &BTreeMap<String, String>) -> Result<()> {
    let id = new_id(record, ids)?.to_string();
    let key = text(record, "key")?;
    let key = format!("{id}{}", &key[key.find('/').unwrap_or(key.len())..]);
    for field in ["set", "grid_image"] {
        if let Some(path) = record[field].as_str() {
            let mut parts: Vec<String> = path.split('/').map(str::to_string).collect();
            if let Some(renamed) = parts.get(1).and_then(|folder| folders.get(folder)).filter(|_| parts[0] == "cells") {
                parts[1] = renamed.clone();
            }
            record[field] = Value::String(parts.join("/"));
        }
    }
    let object = record.as_object_mut().context("a record is a JSON object")?;
    object.insert("key".into(), key.into());
    object.insert("cell".into(), id.into());
    object.insert("schema".into(), Provenance::SCHEMA.into());
    Ok(())
}

/// Writes into an older checkpoint the key (and provenance) today's version gives the condensation
/// its metadata describes, so that the run it belongs to resumes it. Files that are not older
/// checkpoints of gradmatch's are left as they are (a run refuses them if they are not its own).
pub fn checkpoint(path: &Path) -> Result<()> {
    if !path.exists() {
        return Ok(());
    }
    let mut set = SyntheticSet::load(path, &Device::Cpu)?;
    let Some(provenance) = stale_condensation(&set.metadata).with_context(|| format!("migrating checkpoint {}", path.display()))? else {
        return Ok(());
    };
    let identity = provenance.identity();
    for stale in ["fingerprint", "method", "condense_config"] {
        set.metadata.remove(stale);
    }
    set.metadata.insert(RunIdentity::KEY.into(), identity.key);
    set.metadata.insert(RunIdentity::PROVENANCE.into(), identity.provenance);
    set.save(path)?;
    eprintln!("{}: checkpoint migrated to provenance schema {}", path.display(), Provenance::SCHEMA);
    Ok(())
}

/// Today's provenance of the condensation an older checkpoint's metadata describes; `None` for a
/// checkpoint of today's schema or a file without gradmatch's metadata.
fn stale_condensation(metadata: &HashMap<String, String>) -> Result<Option<Provenance>> {
    let Some(text) = metadata.get(RunIdentity::PROVENANCE) else { return schema_0_condensation(metadata) };
    let provenance: Provenance = serde_json::from_str(text).context("metadata `provenance`")?;
    // Schemas 1 and 2 read as today's (1's missing sampler as its default): only their keys differ.
    Ok((provenance.schema < Provenance::SCHEMA).then_some(Provenance { schema: Provenance::SCHEMA, ..provenance }))
}

/// The condensation a schema-0 checkpoint's metadata describes; `None` without that metadata.
fn schema_0_condensation(metadata: &HashMap<String, String>) -> Result<Option<Provenance>> {
    let field = |name: &str| metadata.get(name).map(String::as_str);
    let (Some(method), Some(config), Some(model), Some(dataset)) =
        (field("method"), field("condense_config"), field("model"), field("dataset"))
    else {
        return Ok(None);
    };
    // (level, distance, steps), and the augmentation where there was one.
    let mut method: Vec<PluginSpec> = serde_json::from_str(method).context("metadata `method`")?;
    if method.len() == 3 {
        method.push(PluginSpec::named("none"));
    }
    let [level, distance, steps, augment]: [PluginSpec; 4] =
        method.try_into().map_err(|m: Vec<PluginSpec>| anyhow::anyhow!("metadata `method` holds {} plug-ins, not 3 or 4", m.len()))?;
    Ok(Some(Provenance {
        schema: Provenance::SCHEMA,
        dataset: dataset.parse().map_err(|e| anyhow::anyhow!("metadata `dataset`: {e}"))?,
        model: model.parse().map_err(|e| anyhow::anyhow!("metadata `model`: {e}"))?,
        method: MethodSpec { level, distance, steps, augment, ..MethodSpec::default() },
        condense: serde_json::from_str(config).context("metadata `condense_config`")?,
        evaluation: None,
        baseline: None,
        coreset: None,
    }))
}

/// What a run in a store's folder takes over from an earlier version's store: the `file` whose key
/// is the run's, with its `companions`.
pub struct Unfinished {
    pub file: &'static str,
    pub companions: &'static [&'static str],
}

impl Unfinished {
    /// A condensation cut short: its checkpoint, with its log.
    pub const CONDENSATION: Unfinished = Unfinished { file: CHECKPOINT, companions: &["log.jsonl"] };
    /// The set a longer run saved on its way (a curve's point), not yet recorded.
    pub const PREFIX_SET: Unfinished = Unfinished { file: "synthetic.safetensors", companions: &[] };
}

/// Gives the run of `key` that is to save into the store's `folder` (`<store>/cells/<cell>/e<k>`)
/// what an earlier version's store left unfinished for it: the `what.file` of the same key in another
/// cell folder (named after the cell's old id), copied with its companions, so that the run resumes or
/// records it instead of starting again. Best effort: a folder that cannot be read is passed over,
/// and nothing but `folder` is written.
pub fn adopt_unfinished(folder: &Path, key: &str, what: &Unfinished) {
    let (Some(experiment), Some(cells)) = (folder.file_name(), folder.parent().and_then(Path::parent)) else { return };
    let Ok(entries) = std::fs::read_dir(cells) else { return };
    if folder.join(what.file).exists() {
        return;
    }
    for candidate in entries.filter_map(|e| e.ok()).map(|e| e.path().join(experiment)) {
        if candidate == folder || file_key(&candidate.join(what.file)).ok().flatten().as_deref() != Some(key) {
            continue;
        }
        let copied = std::fs::create_dir_all(folder).and_then(|_| {
            for file in std::iter::once(&what.file).chain(what.companions).filter(|f| candidate.join(f).exists()) {
                std::fs::copy(candidate.join(file), folder.join(file))?;
            }
            Ok(())
        });
        match copied {
            Ok(()) => eprintln!("{}: takes over {} of {}", folder.display(), what.file, candidate.display()),
            Err(e) => eprintln!("{}: could not take over {} of {}: {e}", folder.display(), what.file, candidate.display()),
        }
        return;
    }
}

/// The file name of a condensation's checkpoint in its folder.
pub const CHECKPOINT: &str = "checkpoint.safetensors";

/// The key of a checkpoint or set, read from its header alone (the file is mapped, its tensors not
/// read): its `key`, or for an older file the key today's version gives what its metadata describes.
fn file_key(path: &Path) -> Result<Option<String>> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    // SAFETY: the checkpoint is only read here; a writer replaces it by renaming a new file over
    // it, which leaves this mapping's pages intact.
    let bytes = unsafe { memmap2::Mmap::map(&file) }.with_context(|| format!("reading {}", path.display()))?;
    let (_, header) =
        safetensors::SafeTensors::read_metadata(&bytes).with_context(|| format!("{}: not a safetensors file", path.display()))?;
    let metadata = header.metadata().clone().unwrap_or_default();
    match stale_condensation(&metadata)? {
        Some(provenance) => Ok(Some(provenance.key())),
        None => Ok(metadata.get(RunIdentity::KEY).cloned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A schema-0 store: the fixture of tests/fixtures/v0 (at the top of the workspace).
    fn old_store(dir: &Path) -> PathBuf {
        let records = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/v0/store/records.jsonl");
        std::fs::copy(records, dir.join("records.jsonl")).unwrap();
        dir.join("records.jsonl")
    }

    #[test]
    fn a_store_in_use_is_not_migrated_and_says_why() {
        let dir = tempfile::tempdir().unwrap();
        let file = old_store(dir.path());
        let before = std::fs::read_to_string(&file).unwrap();
        let lock = std::fs::File::create(dir.path().join(".records.jsonl.lock")).unwrap();
        lock.try_lock().unwrap();
        std::fs::write(dir.path().join(".records.jsonl.lock"), "pid 7 on a host").unwrap();
        let err = format!("{:#}", crate::ablate::store::migrate(dir.path()).unwrap_err());
        assert!(err.contains("runs on it (pid 7 on a host)") && err.contains(&format!("schema {}", Provenance::SCHEMA)), "{err}");
        assert_eq!(std::fs::read_to_string(&file).unwrap(), before, "nothing changed");
        drop(lock);
        crate::ablate::store::migrate(dir.path()).unwrap();
        assert!(std::fs::read_to_string(&file).unwrap().contains(&format!("\"schema\":{}", Provenance::SCHEMA)));
    }

    #[test]
    fn an_unrecorded_set_of_an_older_store_is_taken_over_by_its_key_alone() {
        // A schema-2 set in a cell folder named after its cell's old id, as a curve's point is while
        // its longer run goes on: no record names it.
        let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/v2/store/cells/DC-5d6567cc/e0");
        let dir = tempfile::tempdir().unwrap();
        let (old, new, other) =
            (dir.path().join("cells/DC-5d6567cc/e0"), dir.path().join("cells/DC-0123abcd/e0"), dir.path().join("cells/X-1/e0"));
        std::fs::create_dir_all(&old).unwrap();
        for file in ["synthetic.safetensors", "checkpoint.safetensors", "log.jsonl"] {
            std::fs::copy(fixture.join(file), old.join(file)).unwrap();
        }
        let set = SyntheticSet::load(&old.join("synthetic.safetensors"), &Device::Cpu).unwrap();
        let then = Provenance::of_set(&set.metadata).unwrap().unwrap();
        assert_eq!(then.schema, 2);
        let today = Provenance { schema: Provenance::SCHEMA, ..then.clone() }.key();
        assert_ne!(today, set.metadata[RunIdentity::KEY], "the step changed its key");

        adopt_unfinished(&other, "not-its-key", &Unfinished::PREFIX_SET);
        assert!(!other.join("synthetic.safetensors").exists(), "another key takes nothing");
        adopt_unfinished(&new, &today, &Unfinished::PREFIX_SET);
        let bytes = |p: &Path| std::fs::read(p).unwrap();
        assert_eq!(bytes(&new.join("synthetic.safetensors")), bytes(&old.join("synthetic.safetensors")));
        assert!(!new.join("log.jsonl").exists(), "a prefix set comes alone");
        // Its checkpoint carries the same condensation's key (the run's, at its full length).
        let condensation = dir.path().join("cells/DC-4567cdef/e0");
        adopt_unfinished(&condensation, &today, &Unfinished::CONDENSATION);
        assert_eq!(bytes(&condensation.join("log.jsonl")), bytes(&old.join("log.jsonl")), "a checkpoint comes with its log");
        assert!(old.join("checkpoint.safetensors").exists(), "nothing of the old folder is moved");
    }

    #[test]
    fn a_line_that_is_no_record_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let file = old_store(dir.path());
        std::fs::write(&file, std::fs::read_to_string(&file).unwrap() + "{\"kind\": \"condensed\"}\n").unwrap();
        let err = format!("{:#}", store::<Value>(dir.path(), &[file], &[]).unwrap_err());
        assert!(err.contains("records.jsonl line 5: not a gradmatch record"), "{err}");
    }
}
