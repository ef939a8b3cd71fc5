//! Every input that would run but mean nothing, or write outside its store, given to the real binary
//! as a user gives it (issue 18): each case must exit with an error that names the field or file and
//! the fix, before any work starts (no `runs/` folder appears), and leave everything outside the
//! run's folder as it was: a folder beside it holds a grid store's files as bait.

mod common;

use common::gradmatch;
use std::collections::BTreeMap;
use std::fs::File;
use std::path::Path;

/// A small grid; `{name}` and `{variant}` are filled per case.
const GRID: &str = r#"
name = "{name}"
[base]
dataset = "mnist"
model = "ConvNetW8"
[base.condense]
iterations = 1
[base.evaluation]
num_eval = 1
epochs = 1
[[axis]]
name = "method"
variants = [{ label = "DC", set = {} }, { label = "M", set = { level.name = "{variant}" } }]
"#;

fn grid(name: &str, variant: &str) -> String {
    GRID.replace("{name}", name).replace("{variant}", variant)
}

struct Case {
    name: &'static str,
    args: &'static [&'static str],
    /// Files written into the run's folder first (path, contents).
    files: Vec<(&'static str, Vec<u8>)>,
    /// A store lock this test holds while the case runs (a second `ablate` on the store).
    lock: Option<&'static str>,
    /// What the error must say (each piece).
    says: &'static [&'static str],
    /// 1: refused by gradmatch; 2: refused by the argument parser.
    exit_code: i32,
}

fn case(name: &'static str, args: &'static [&'static str], says: &'static [&'static str]) -> Case {
    Case { name, args, files: Vec::new(), lock: None, says, exit_code: 1 }
}

impl Case {
    fn with(mut self, path: &'static str, contents: impl Into<Vec<u8>>) -> Case {
        self.files.push((path, contents.into()));
        self
    }
}

/// A plain safetensors set of `n` MNIST-shaped images of value `value`, labels cycling over the classes.
fn set_file(n: usize, value: f32) -> Vec<u8> {
    let images: Vec<u8> = std::iter::repeat_n(value, n * 784).flat_map(f32::to_le_bytes).collect();
    let labels: Vec<u8> = (0..n as i64).flat_map(|i| (i % 10).to_le_bytes()).collect();
    let views = [
        ("images", safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![n, 1, 28, 28], &images).unwrap()),
        ("labels", safetensors::tensor::TensorView::new(safetensors::Dtype::I64, vec![n], &labels).unwrap()),
    ];
    safetensors::serialize(views, None).unwrap()
}

fn experiment(condense: &str, evaluation: &str) -> String {
    format!("dataset = \"mnist\"\n[condense]\n{condense}\n[evaluation]\n{evaluation}\n")
}

fn cases() -> Vec<Case> {
    let set = || set_file(10, 0.5);
    let truncated = {
        let bytes = set_file(10, 0.5);
        bytes[..bytes.len() - 100].to_vec()
    };
    vec![
        // Paths: a grid's name is a folder name; a store keeps its grid.
        case("absolute grid name", &["ablate", "g.toml"], &["must be a plain name", "--store"])
            .with("g.toml", grid("/tmp/victim", "multi-level")),
        case("grid name with ..", &["ablate", "g.toml"], &["`name` = \"../../../outside\"", "must be a plain name"])
            .with("g.toml", grid("../../../outside", "multi-level")),
        case(
            "another grid into a store",
            &["ablate", "g.toml", "--store", "store"],
            &["holds the records of another grid", "--replace-grid", "+ "],
        )
        .with("g.toml", grid("g", "multi-level"))
        .with("store/grid.toml", grid("g", "interleaved")),
        // Figures that would mean nothing.
        case(
            "no networks",
            &["evaluate", "set.safetensors", "--dataset", "mnist", "--num-eval", "0"],
            &["[evaluation] `num_eval` = 0 (or --num-eval)"],
        )
        .with("set.safetensors", set()),
        case("no test images", &["evaluate", "set.safetensors", "--dataset", "mnist", "--test-limit", "0"], &["`test_limit` = 0"])
            .with("set.safetensors", set()),
        case(
            "no training",
            &["evaluate", "set.safetensors", "--dataset", "mnist", "--epochs", "0"],
            &["`epochs` = 0 (or --epochs)", "untrained"],
        )
        .with("set.safetensors", set()),
        case("a zero learning rate", &["evaluate", "set.safetensors", "--dataset", "mnist", "--lr", "0"], &["`lr` = 0"])
            .with("set.safetensors", set()),
        case("NaN images", &["evaluate", "set.safetensors", "--dataset", "mnist"], &["set.safetensors", "not finite"])
            .with("set.safetensors", set_file(10, f32::NAN)),
        case("no images", &["evaluate", "set.safetensors", "--dataset", "mnist"], &["set.safetensors", "no images"])
            .with("set.safetensors", set_file(0, 0.0)),
        case("a truncated set", &["evaluate", "set.safetensors", "--dataset", "mnist"], &["set.safetensors", "this file is truncated"])
            .with("set.safetensors", truncated),
        case("random subsets of 0 images", &["random-baseline", "--ipc", "0"], &["--ipc 0", "at least 1"]),
        case("random subsets larger than a class", &["random-baseline", "--ipc", "6000"], &["--ipc 6000", "class 5 of mnist has 5421"]),
        Case { exit_code: 2, ..case("an unknown init", &["condense", "--init", "mosaic"], &["--init", "possible values", "noise"]) },
        Case {
            exit_code: 2,
            ..case("an unknown protocol", &["evaluate", "s.safetensors", "--protocol", "mtt"], &["--protocol", "dc, dsa"])
        },
        case("condensing 0 iterations", &["condense", "--iterations", "0"], &["`iterations` = 0 (or --iterations)", "init = noise"]),
        case("training on the whole split without epochs", &["train-real"], &["--epochs"]),
        case("a coreset larger than a class", &["coreset", "--ipc", "6000"], &["6000 images of class 0", "5923", "ipc 5923 or less"]),
        case("an unknown selection", &["coreset", "--method", "herd"], &["--method", "herding"]),
        case("a baseline to condense", &["condense", "--config", "e.toml"], &["e.toml", "`baseline`", "random-baseline"])
            .with("e.toml", format!("baseline = \"random\"\n{}", experiment("", ""))),
        // Sizes.
        case("more real images than a class has", &["condense", "--ipc", "10000", "--init", "real"], &["`ipc` = 10000", "5421"]),
        case("an ipc outside the loops table", &["condense", "--ipc", "7"], &["`ipc` = 7", "outer_loop", "inner_epochs"]),
        case(
            "a real batch larger than a class",
            &["condense", "--config", "e.toml"],
            &["e.toml", "line 3", "`batch_real` = 100000", "5421"],
        )
        .with("e.toml", experiment("batch_real = 100000", "")),
        case("negative momentum", &["condense", "--config", "e.toml"], &["line 3", "`momentum_net` = -5", "[0, 1)"])
            .with("e.toml", experiment("momentum_net = -5.0", "")),
        case("negative weight decay", &["condense", "--config", "e.toml"], &["line 5", "`weight_decay` = -1"])
            .with("e.toml", experiment("", "weight_decay = -1.0")),
        case("a set too large for the device's memory", &["condense", "--config", "e.toml"], &["ipc = 500000", "lower ipc"])
            .with("e.toml", experiment("ipc = 500000\nouter_loop = 1\ninner_epochs = 1", "")),
        case("a typo whose fix a comment names", &["condense", "--config", "e.toml"], &["line 4, column 8", "did you mean `combined`"])
            .with("e.toml", "dataset = \"mnist\"\n# M's distance is combined\n[distance]\nname = \"combind\"\n"),
        case("no batch-norm images", &["condense", "--config", "e.toml"], &["`bn_images_per_class` = 0"])
            .with("e.toml", experiment("bn_images_per_class = 0", "")),
        case("no classes per pass", &["condense", "--config", "e.toml"], &["`classes_per_pass` = 0"])
            .with("e.toml", experiment("classes_per_pass = 0", "")),
        case("no matching steps", &["condense", "--config", "e.toml"], &["`outer_loop` = 0"])
            .with("e.toml", experiment("outer_loop = 0", "")),
        case("no networks in a file", &["condense", "--config", "e.toml"], &["line 5", "`num_eval` = 0"])
            .with("e.toml", experiment("", "num_eval = 0")),
        Case { exit_code: 2, ..case("no parallel jobs", &["ablate", "g.toml", "--jobs", "0"], &["--jobs", "0"]) }
            .with("g.toml", grid("g", "multi-level")),
        case(
            "a GPU on a build without CUDA",
            &["ablate", "g.toml", "--devices", "cuda:0"],
            &["--devices cuda:0", "built without CUDA", "--features cuda"],
        )
        .with("g.toml", grid("g", "multi-level")),
        case("image momentum of 1", &["condense", "--config", "e.toml"], &["`momentum_img` = 1", "[0, 1)"])
            .with("e.toml", experiment("momentum_img = 1.0", "")),
        case("negative evaluation momentum", &["condense", "--config", "e.toml"], &["[evaluation] `momentum` = -0.9"])
            .with("e.toml", experiment("", "momentum = -0.9")),
        // Grids, checked as `--check` checks them.
        case(
            "two axes on one field",
            &["ablate", "g.toml", "--check"],
            &["axis `method` variant `M` and axis `level`", "both set `level.name`"],
        )
        .with("g.toml", grid("g", "multi-level") + "[[axis]]\nname = \"level\"\nfield = \"level.name\"\nvalues = [\"intra\", \"inter\"]\n"),
        case(
            "a grid checked on a device it cannot open",
            &["ablate", "g.toml", "--check", "--devices", "cpu,cuda:0"],
            &["--devices cuda:0", "built without CUDA"],
        )
        .with("g.toml", grid("g", "multi-level")),
        case("an absurd width", &["ablate", "g.toml", "--check"], &["width 99999999", "1 to 4096"])
            .with("g.toml", grid("g", "multi-level").replace("ConvNetW8", "ConvNetW99999999")),
        case("an unknown key of the base", &["ablate", "g.toml", "--check"], &["[base]", "did you mean `num_eval`"])
            .with("g.toml", grid("g", "multi-level").replace("num_eval = 1", "num_evals = 1")),
        case(
            "an ipc outside the loops table in a grid",
            &["ablate", "g.toml", "--check"],
            &["line 17, column 14", "variant `7`", "`ipc` = 7"],
        )
        .with("g.toml", grid("g", "multi-level") + "[[axis]]\nname = \"ipc\"\nfield = \"condense.ipc\"\nvalues = [1, 7]\n"),
        case("a grid cell too large for the device", &["ablate", "g.toml", "--check"], &["cell `method=DC`", "ipc = 500000", "lower ipc"])
            .with(
                "g.toml",
                grid("g", "multi-level").replace("iterations = 1", "iterations = 1\nipc = 500000\nouter_loop = 1\ninner_epochs = 1"),
            ),
        // Stores.
        case("merging a missing folder", &["report", "store", "--merge", "missing"], &["--merge missing", "no such folder"])
            .with("store/grid.toml", grid("g", "multi-level")),
        case(
            "merging another grid's store",
            &["report", "store", "--merge", "other"],
            &["--merge other", "is not this store's", "interleaved"],
        )
        .with("store/grid.toml", grid("g", "multi-level"))
        .with("other/grid.toml", grid("g", "interleaved")),
        Case {
            lock: Some("store/.records.jsonl.lock"),
            ..case("a second ablate on a store", &["ablate", "g.toml", "--store", "store"], &["in use", "--shard"])
        }
        .with("g.toml", grid("g", "multi-level")),
        Case {
            lock: Some("store/.records-shard0of2.jsonl.lock"),
            ..case("another split of the grid running", &["ablate", "g.toml", "--store", "store"], &["as shard 0/2", "--shard i/2"])
        }
        .with("g.toml", grid("g", "multi-level")),
    ]
}

/// Every file under `dir` with its bytes.
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(snapshot(&path));
        } else {
            files.insert(path.display().to_string(), std::fs::read(&path).unwrap());
        }
    }
    files
}

/// Runs one case in `root/run`, with `root/outside` as bait; returns what went wrong, if anything.
fn run(case: &Case, root: &Path) -> Option<String> {
    let (run, outside) = (root.join("run"), root.join("outside"));
    for name in ["report.md", "table.md", "grid.toml"] {
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join(name), format!("the user's own {name}")).unwrap();
    }
    for (path, contents) in &case.files {
        let path = run.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, contents).unwrap();
    }
    std::fs::create_dir_all(&run).unwrap();
    let _held = case.lock.map(|path| {
        let path = run.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let file = File::create(path).unwrap();
        file.try_lock().unwrap();
        file
    });
    let before = snapshot(&outside);
    let out = gradmatch(case.args).current_dir(&run).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let mut wrong = Vec::new();
    if out.status.code() != Some(case.exit_code) {
        wrong.push(format!("exit code {:?}, expected {}", out.status.code(), case.exit_code));
    }
    wrong.extend(case.says.iter().filter(|piece| !stderr.contains(*piece)).map(|piece| format!("the error does not say {piece:?}")));
    if snapshot(&outside) != before {
        wrong.push("files outside the run's folder changed".into());
    }
    let entries: Vec<_> = std::fs::read_dir(root).unwrap().map(|e| e.unwrap().file_name()).collect();
    if entries.len() != 2 {
        wrong.push(format!("something was written beside the run's folder: {entries:?}"));
    }
    if run.join("runs").exists() {
        wrong.push("work started (runs/ was created)".into());
    }
    (!wrong.is_empty()).then(|| format!("{}: {}\n  stderr: {}", case.name, wrong.join("; "), stderr.trim()))
}

#[test]
fn meaningless_inputs_are_refused_before_work_and_nothing_outside_the_run_changes() {
    let cases = cases();
    let failures: Vec<String> = cases.iter().filter_map(|case| run(case, tempfile::tempdir().unwrap().path())).collect();
    assert!(failures.is_empty(), "{} of {} cases went wrong:\n{}", failures.len(), cases.len(), failures.join("\n"));
}
