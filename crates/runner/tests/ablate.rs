//! The ablation runner as a user runs it (the real binary on real MNIST): a run killed with SIGKILL
//! at several moments and resumed ends with exactly the records and table of an uninterrupted run;
//! shards split the grid and their stores merge into the same table.

mod common;

use common::gradmatch;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// Two methods x two experiments of a tiny condensation, two evaluation networks each: 4 jobs,
/// 12 units. Checkpoints every iteration so that kills land mid-condensation too.
const GRID: &str = r#"
name = "tiny"
experiments = 2
[base]
dataset = "mnist"
model = "ConvNetW4"
[base.condense]
ipc = 1
iterations = 6
batch_real = 8
checkpoint_every = 1
[base.evaluation]
epochs = 8
num_eval = 2
test_limit = 300
[[axis]]
name = "method"
variants = [
  { label = "DC", set = {} },
  { label = "MD", set = { level.name = "multi-level", distance.name = "combined" } },
]
[table]
rows = ["method"]
"#;
const UNITS: usize = 12;

fn ablate(grid: &Path, store: &Path, extra: &[&str]) {
    let out = gradmatch(&[&["ablate", grid.to_str().unwrap(), "--store", store.to_str().unwrap()], extra].concat()).output().unwrap();
    assert!(out.status.success(), "ablate failed: {}", String::from_utf8_lossy(&out.stderr));
}

fn records(store: &Path) -> Vec<serde_json::Value> {
    let mut all = Vec::new();
    for entry in std::fs::read_dir(store).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if name.starts_with("records") && name.ends_with(".jsonl") {
            let text = std::fs::read_to_string(&path).unwrap();
            all.extend(text.lines().map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap_or_else(|e| panic!("{name}: {e}: {l}"))));
        }
    }
    all
}

fn record_lines(store: &Path) -> usize {
    std::fs::read_to_string(store.join("records.jsonl")).map_or(0, |t| t.matches('\n').count())
}

/// Results that must not depend on interruptions: key -> (losses or accuracy).
fn results(store: &Path) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = records(store)
        .iter()
        .map(|r| {
            let key = r["key"].as_str().unwrap().to_string();
            let value = match r["kind"].as_str().unwrap() {
                "condensed" => r["losses"].to_string(),
                "evaluated" => r["accuracy"].to_string(),
                other => panic!("unexpected {other} record: {r}"),
            };
            (key, value)
        })
        .collect();
    out.sort();
    out
}

fn table(store: &Path) -> String {
    std::fs::read_to_string(store.join("table.md")).unwrap()
}

/// Starts the grid and SIGKILLs it as soon as `moment` holds; returns whether it was killed.
fn kill_when(grid: &Path, store: &Path, moment: &dyn Fn() -> bool) -> bool {
    let mut child =
        gradmatch(&["ablate", grid.to_str().unwrap(), "--store", store.to_str().unwrap()]).stderr(Stdio::null()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        if moment() {
            child.kill().unwrap(); // SIGKILL on Unix
            child.wait().unwrap();
            return true;
        }
        assert!(Instant::now() < deadline, "the grid did not reach the kill moment");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Every condensed set of `b` has the bytes of `a`'s (a checksum confirms a reproduction), and every
/// `log.jsonl` holds each iteration once, resumed or not.
fn assert_same_sets_and_logs(a: &Path, b: &Path) {
    let mut sets = 0;
    for cell in std::fs::read_dir(a.join("cells")).unwrap() {
        for run in std::fs::read_dir(cell.unwrap().path()).unwrap() {
            let run = run.unwrap().path();
            let twin = b.join(run.strip_prefix(a).unwrap());
            let bytes = |dir: &Path| std::fs::read(dir.join("synthetic.safetensors")).unwrap();
            assert!(bytes(&run) == bytes(&twin), "{} differs from {}", twin.display(), run.display());
            let iterations: Vec<u64> = std::fs::read_to_string(twin.join("log.jsonl"))
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["iteration"].as_u64().unwrap())
                .collect();
            assert_eq!(iterations, (0..iterations.len() as u64).collect::<Vec<_>>(), "{}: one line per iteration", twin.display());
            sets += 1;
        }
    }
    assert!(sets >= 2, "the grid condensed its sets ({sets})");
}

#[test]
fn killed_and_resumed_equals_uninterrupted_and_shards_merge() {
    let dir = tempfile::tempdir().unwrap();
    let grid = dir.path().join("tiny.toml");
    std::fs::write(&grid, GRID).unwrap();

    let reference = dir.path().join("uninterrupted");
    ablate(&grid, &reference, &[]);
    let expected = results(&reference);
    assert_eq!(expected.len(), UNITS, "one record per unit");
    let reference_table = table(&reference);
    assert!(
        reference_table.contains("| DC |") && reference_table.contains("(n=2×2)") && reference_table.contains("95 % CI"),
        "{reference_table}"
    );
    let recipe = "| protocol dc: 8 epochs, augment crop_scale_rotate, lr 0.01 x0.1 from epoch 4 |";
    assert!(reference_table.contains(recipe), "every row names its recipe: {reference_table}");
    for r in records(&reference).iter().filter(|r| r["kind"] == "evaluated") {
        assert_eq!((r["recipe"]["protocol"].as_str(), r["recipe"]["epochs"].as_u64()), (Some("dc"), Some(8)), "{r}");
    }

    // Kill: mid-condensation of the first job (a checkpoint but no record), after the first record,
    // mid-condensation of a later job, and after most records. Then finish.
    let killed = dir.path().join("killed");
    let mid_condense = |job: &str| {
        let killed = killed.clone();
        let job = job.to_string();
        move || {
            std::fs::read_dir(killed.join("cells")).into_iter().flatten().flatten().any(|cell| {
                let e = cell.path().join(&job);
                e.join("checkpoint.safetensors").exists() && !e.join("synthetic.safetensors").exists()
            })
        }
    };
    let mut kills = 0;
    kills += kill_when(&grid, &killed, &mid_condense("e0")) as usize;
    kills += kill_when(&grid, &killed, &|| record_lines(&killed) >= 1) as usize;
    kills += kill_when(&grid, &killed, &mid_condense("e1")) as usize;
    kills += kill_when(&grid, &killed, &|| record_lines(&killed) >= UNITS - 2) as usize;
    assert!(kills >= 3, "the test must really interrupt the grid ({kills} kills)");
    ablate(&grid, &killed, &[]);
    assert_eq!(results(&killed), expected, "no lost, duplicated or different record after kill -9 and resume");
    assert_eq!(table(&killed), reference_table);
    assert_same_sets_and_logs(&reference, &killed);

    // Re-running a finished grid runs nothing and keeps the table.
    ablate(&grid, &killed, &[]);
    assert_eq!(records(&killed).len(), UNITS);

    // A second record of a unit that disagrees with the first (a store merged by hand, say) is listed.
    let mut duplicate = records(&killed).into_iter().find(|r| r["kind"] == "evaluated").unwrap();
    duplicate["accuracy"] = serde_json::json!(0.123456);
    duplicate["finished_unix"] = serde_json::json!(duplicate["finished_unix"].as_u64().unwrap() + 1);
    let path = killed.join("records-shard0of2.jsonl");
    std::fs::write(&path, duplicate.to_string() + "\n").unwrap();
    let out = gradmatch(&["report", killed.to_str().unwrap()]).output().unwrap();
    let (stderr, report) = (String::from_utf8_lossy(&out.stderr), std::fs::read_to_string(killed.join("report.md")).unwrap());
    assert!(out.status.success() && stderr.contains("1 unit(s)") && stderr.contains("disagree"), "{stderr}");
    assert!(report.contains("Disagreeing duplicates") && report.contains("12.3456 %"), "{report}");
    assert_eq!(table(&killed), reference_table, "the earliest record is the one used");
    std::fs::remove_file(path).unwrap();

    // Two shards into one folder, and two shards in separate folders merged by `report`.
    let shared = dir.path().join("shards");
    ablate(&grid, &shared, &["--shard", "0/2"]);
    let first_half = records(&shared).len();
    assert!(first_half > 0 && first_half < UNITS, "a shard runs part of the grid ({first_half} of {UNITS})");
    ablate(&grid, &shared, &["--shard", "1/2"]);
    assert_eq!(results(&shared), expected);
    assert_eq!(table(&shared), reference_table);

    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    ablate(&grid, &a, &["--shard", "0/2", "--jobs", "2"]);
    ablate(&grid, &b, &["--shard", "1/2"]);
    let out = gradmatch(&["report", a.to_str().unwrap(), "--merge", b.to_str().unwrap()]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(table(&a), reference_table);
    let report = std::fs::read_to_string(a.join("report.md")).unwrap();
    assert!(report.contains("plots/") && report.contains("synthetic.png"), "{report}");
    let plots: Vec<_> = std::fs::read_dir(a.join("plots")).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(plots.len(), 2, "one plot per cell: {plots:?}");
    for plot in plots {
        assert!(std::fs::read(&plot).unwrap().starts_with(b"\x89PNG"), "{} is a PNG", plot.display());
    }
}

#[test]
fn invalid_grid_is_refused_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let grid = dir.path().join("bad.toml");
    std::fs::write(&grid, GRID.replace("distance.name = \"combined\"", "distance.name = \"cosine\"")).unwrap();
    let store = dir.path().join("store");
    let out = gradmatch(&["ablate", grid.to_str().unwrap(), "--store", store.to_str().unwrap()]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("bad.toml") && err.contains("unknown distance `cosine`") && err.contains("flat-cosine"), "{err}");
    assert!(!store.exists(), "nothing was created");
}

#[test]
fn a_failing_cell_is_recorded_and_the_grid_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let grid = dir.path().join("nan.toml");
    // An image learning rate near f32's largest value overflows the images after the first step
    // (instance norm absorbs any finite scale, 1e30 included), so the next matching loss is NaN.
    let text = GRID.replace("experiments = 2", "experiments = 1").replace(
        "{ label = \"MD\", set = { level.name = \"multi-level\", distance.name = \"combined\" } }",
        "{ label = \"diverges\", set = { condense.lr_img = 1e38 } }",
    );
    std::fs::write(&grid, text).unwrap();
    let store = dir.path().join("store");
    let out = gradmatch(&["ablate", grid.to_str().unwrap(), "--store", store.to_str().unwrap()]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "failures make the exit status non-zero");
    assert!(err.contains("1 units failed") && err.contains("method=diverges"), "{err}");
    let all = records(&store);
    let failed: Vec<_> = all.iter().filter(|r| r["kind"] == "failed").collect();
    assert_eq!(failed.len(), 1, "{all:?}");
    assert!(failed[0]["error"].as_str().unwrap().contains("matching loss is"), "{}", failed[0]);
    assert_eq!(all.iter().filter(|r| r["kind"] == "evaluated").count(), 2, "the other cell ran to the end");
    let report = std::fs::read_to_string(store.join("report.md")).unwrap();
    assert!(report.contains("## Failures") && report.contains("matching loss is"), "{report}");
}

/// One condensation evaluated under two protocols: the cells differ only in `[evaluation]`.
const PROTOCOLS: &str = r#"
name = "protocols"
[base]
dataset = "mnist"
model = "ConvNetW4"
[base.condense]
ipc = 1
iterations = 2
batch_real = 8
[base.evaluation]
epochs = 2
num_eval = 1
test_limit = 100
[[axis]]
name = "protocol"
field = "evaluation.protocol"
values = ["dc", "dsa"]
"#;

#[test]
fn cells_that_differ_only_in_evaluation_condense_once() {
    let dir = tempfile::tempdir().unwrap();
    let grid = dir.path().join("protocols.toml");
    std::fs::write(&grid, PROTOCOLS).unwrap();
    let store = dir.path().join("store");
    ablate(&grid, &store, &[]);
    let all = records(&store);
    let condensed: Vec<&serde_json::Value> = all.iter().filter(|r| r["kind"] == "condensed").collect();
    assert_eq!(condensed.len(), 2, "a condense record per cell");
    assert_eq!(condensed[0]["set"], condensed[1]["set"], "one set for both cells");
    assert_eq!(std::fs::read_dir(store.join("cells")).unwrap().count(), 1, "one condensation folder");
    let mut recipes: Vec<String> = all
        .iter()
        .filter(|r| r["kind"] == "evaluated")
        .map(|r| format!("{}/{}", r["recipe"]["protocol"], r["recipe"]["augment"]))
        .collect();
    recipes.sort();
    assert_eq!(recipes, ["\"dc\"/\"crop_scale_rotate\"", "\"dsa\"/\"dsa\""], "MNIST's dc recipe augments");
}

/// One cell whose `[evaluation]` gives `augment` when `augment` is set: with `augment = "none"`
/// its config is, byte for byte, the default config of gradmatch's first recipes.
fn one_cell(augment: &str) -> String {
    let text = PROTOCOLS.split("[[axis]]").next().unwrap().replace("name = \"protocols\"", "name = \"old\"");
    text + augment
}

#[test]
fn an_old_store_keeps_its_recipe_and_is_evaluated_again_under_the_new_one() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    // A store as gradmatch made it under its first dc recipe: no augmentation on MNIST, records
    // whose recipe has no schedule, learning rate or revision, made before the versioned provenance
    // (schema 0: no `schema`; their cell ids are read as names only, and migrated).
    let old_grid = dir.path().join("old.toml");
    std::fs::write(&old_grid, one_cell("augment = \"none\"\n")).unwrap();
    ablate(&old_grid, &store, &[]);
    let text = std::fs::read_to_string(store.join("records.jsonl")).unwrap();
    let mut old: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    for r in &mut old {
        r.as_object_mut().unwrap().remove("schema");
    }
    for r in old.iter_mut().filter(|r| r["kind"] == "evaluated") {
        let recipe = r["recipe"].as_object_mut().unwrap();
        recipe.retain(|k, _| ["protocol", "epochs", "augment"].contains(&k.as_str()));
    }
    let lines: Vec<String> = old.iter().map(|r| r.to_string() + "\n").collect();
    std::fs::write(store.join("records.jsonl"), lines.concat()).unwrap();
    let old_accuracy = old.iter().find(|r| r["kind"] == "evaluated").unwrap()["accuracy"].as_f64().unwrap();

    // Today's default resolves MNIST's dc recipe to crop_scale_rotate: a new cell id, whose report
    // shows the old figure under the old recipe until the new one exists.
    std::fs::write(store.join("grid.toml"), one_cell("")).unwrap();
    let out = gradmatch(&["report", store.to_str().unwrap()]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let before = table(&store);
    assert!(before.contains("recipe v1") && before.contains("augment none"), "the old recipe, named as such: {before}");
    assert!(before.contains(&format!("{:.2}", 100.0 * old_accuracy)), "the old figure: {before}");

    let new_grid = dir.path().join("new.toml");
    std::fs::write(&new_grid, one_cell("")).unwrap();
    ablate(&new_grid, &store, &[]);
    let all = records(&store);
    let condensed: Vec<&serde_json::Value> = all.iter().filter(|r| r["kind"] == "condensed").collect();
    assert_eq!(condensed.len(), 2, "the new cell records the old cell's set");
    assert_eq!(
        (condensed[0]["set"].clone(), condensed[1]["seconds"].as_f64()),
        (condensed[1]["set"].clone(), Some(0.0)),
        "not condensed again"
    );
    let evaluated: Vec<&serde_json::Value> = all.iter().filter(|r| r["kind"] == "evaluated").collect();
    assert_eq!(evaluated.len(), 2, "evaluated again under the new recipe");
    assert_eq!(
        (evaluated[1]["recipe"]["augment"].as_str(), evaluated[1]["recipe"]["revision"].as_u64()),
        (Some("crop_scale_rotate"), Some(2))
    );
    let after = table(&store);
    assert!(!after.contains("recipe v1") && after.contains("crop_scale_rotate"), "the new figures replace the old: {after}");
}

/// Random beside MD and MDA at ipc 1, with a curve point after 2 of 4 iterations.
const CURVE: &str = r#"
name = "curve"
[base]
dataset = "mnist"
model = "ConvNetW4"
[base.condense]
ipc = 1
iterations = 4
batch_real = 8
[base.evaluation]
epochs = 8
num_eval = 2
test_limit = 300
[[axis]]
name = "method"
variants = [
  { label = "Random", set = { baseline = "random" } },
  { label = "MD", set = { level.name = "multi-level", distance.name = "combined" } },
  { label = "MDA", set = { level.name = "multi-level", distance.name = "combined", steps.name = "adaptive" } },
]
[table]
columns = "method"
[curve]
iterations = [2]
num_eval = 2
"#;

/// A record's `labels` as JSON text writes them: `[["method","MD"]]`.
fn labels(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap()
}

/// Accuracies of a store's evaluation records of the cell labelled `label` (JSON), in key order.
fn accuracies_of(store: &Path, label: &str) -> Vec<f64> {
    let (all, label) = (records(store), labels(label));
    let mut found: Vec<(String, f64)> = all
        .iter()
        .filter(|r| r["kind"] == "evaluated" && r["labels"] == label)
        .map(|r| (r["key"].as_str().unwrap().to_string(), r["accuracy"].as_f64().unwrap()))
        .collect();
    found.sort_by(|a, b| a.0.cmp(&b.0));
    found.into_iter().map(|(_, a)| a).collect()
}

#[test]
fn a_curve_is_taken_from_the_full_run_random_reproduces_its_command_and_mda_shares_mds_set_at_ipc_1() {
    let dir = tempfile::tempdir().unwrap();
    let (grid, store) = (dir.path().join("curve.toml"), dir.path().join("store"));
    std::fs::write(&grid, CURVE).unwrap();
    ablate(&grid, &store, &[]);

    // One condensation ran: MD's, which saved its set after 2 iterations for the curve; MDA shares both.
    let all = records(&store);
    let condensed: Vec<&serde_json::Value> = all.iter().filter(|r| r["kind"] == "condensed").collect();
    assert_eq!(condensed.len(), 4, "MD, MDA and their curve points");
    assert_eq!(std::fs::read_dir(store.join("cells")).unwrap().count(), 2, "two folders: MD's run and its set after 2 iterations");
    let set_of = |label: &str| condensed.iter().find(|r| r["labels"] == labels(label)).unwrap()["set"].clone();
    assert_eq!(set_of(r#"[["method","MDA"]]"#), set_of(r#"[["method","MD"]]"#));
    let early = set_of(r#"[["method","MD"],["iterations","2"]]"#);
    assert_eq!(set_of(r#"[["method","MDA"],["iterations","2"]]"#), early);

    // The set after 2 iterations is, byte for byte, what a 2-iteration run makes.
    let alone = dir.path().join("alone.toml");
    let two = CURVE.replace("iterations = 4", "iterations = 2").replace("name = \"curve\"", "name = \"alone\"");
    std::fs::write(
        &alone,
        two.split("[[axis]]").next().unwrap().to_string() + "[base.level]\nname = \"multi-level\"\n[base.distance]\nname = \"combined\"\n",
    )
    .unwrap();
    let alone_store = dir.path().join("alone");
    ablate(&alone, &alone_store, &[]);
    let alone_set = records(&alone_store).iter().find(|r| r["kind"] == "condensed").unwrap()["set"].as_str().unwrap().to_string();
    let bytes = |p: std::path::PathBuf| std::fs::read(p).unwrap();
    assert_eq!(bytes(store.join(early.as_str().unwrap())), bytes(alone_store.join(alone_set)));
    assert_eq!(accuracies_of(&store, r#"[["method","MD"],["iterations","2"]]"#), accuracies_of(&alone_store, "[]"));

    // MDA's networks train on MD's set from the same seeds: the same accuracies.
    assert_eq!(accuracies_of(&store, r#"[["method","MDA"]]"#), accuracies_of(&store, r#"[["method","MD"]]"#));

    // Random: each network its own subset, as `random-baseline` draws them.
    let json = dir.path().join("random.json");
    let args = ["random-baseline", "--ipc", "1", "--model", "ConvNetW4", "--num-eval", "2", "--epochs", "8", "--test-limit", "300"];
    let out = gradmatch(&[&args[..], &["--json", json.to_str().unwrap()]].concat()).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let summary: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let expected: Vec<f64> = summary["accuracies"].as_array().unwrap().iter().map(|a| a.as_f64().unwrap()).collect();
    assert_eq!(accuracies_of(&store, r#"[["method","Random"]]"#), expected);

    let report = std::fs::read_to_string(store.join("report.md")).unwrap();
    assert!(report.contains("method=MD − method=Random:"), "the gain over Random: {report}");
    assert!(report.contains("| method \\ iterations | 2 | 4 |"), "the curve table: {report}");
    assert!(all.iter().all(|r| r["machine"].as_str().is_some_and(|m| m.contains("cores"))), "every record names its machine");
    assert!(report.contains("## Machines") && report.contains("14 units finished, 1 condensations among them"), "{report}");
    assert!(store.join("plots/curve.png").exists());
}

/// DC's baseline block as grid cells: Random beside coresets of three selections.
const CORESETS: &str = r#"
name = "coresets"
[base]
dataset = "mnist"
model = "ConvNetW4"
[base.condense]
ipc = 1
[base.evaluation]
epochs = 8
num_eval = 2
test_limit = 300
[[axis]]
name = "method"
variants = [
  { label = "Random", set = { baseline = "random" } },
  { label = "random", set = { coreset = { name = "random", train_images = 1000 } } },
  { label = "Herding", set = { coreset = { name = "herding", feature_epochs = 3, train_images = 1000 } } },
  { label = "K-Center", set = { coreset = { name = "k-center", feature_epochs = 3, train_images = 1000 } } },
]
[table]
columns = "method"
"#;

#[test]
fn coreset_cells_choose_real_images_with_one_kept_feature_network_and_face_random() {
    let dir = tempfile::tempdir().unwrap();
    let (grid, store) = (dir.path().join("coresets.toml"), dir.path().join("store"));
    std::fs::write(&grid, CORESETS).unwrap();
    ablate(&grid, &store, &[]);
    let all = records(&store);
    let chosen: Vec<&serde_json::Value> = all.iter().filter(|r| r["kind"] == "condensed").collect();
    assert_eq!(chosen.len(), 3, "a set per coreset cell, none for Random");
    for record in chosen {
        let set = gradmatch_engine::SyntheticSet::load(&store.join(record["set"].as_str().unwrap()), &candle_core::Device::Cpu).unwrap();
        assert_eq!(set.labels, (0..10).collect::<Vec<u32>>(), "{}: one real image per class", record["labels"]);
        assert!(set.metadata.contains_key("indices") && set.metadata.contains_key("provenance"));
    }
    let networks: Vec<_> = std::fs::read_dir(store.join("networks")).unwrap().collect();
    assert_eq!(networks.len(), 1, "herding and k-center read one network; random reads none");
    let evaluated = all.iter().filter(|r| r["kind"] == "evaluated").count();
    assert_eq!(evaluated, 8);
    let report = std::fs::read_to_string(store.join("report.md")).unwrap();
    for method in ["random", "Herding", "K-Center"] {
        assert!(report.contains(&format!("- method={method} − method=Random:")), "{method}'s gain over Random: {report}");
    }
    let before = records(&store).len();
    ablate(&grid, &store, &[]);
    assert_eq!(records(&store).len(), before, "a second run finds everything done");
}
