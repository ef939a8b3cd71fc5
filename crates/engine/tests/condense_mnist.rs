//! End to end on real MNIST with a small ConvNet: condensation beats its initialisation, runs are
//! reproducible, resume continues exactly, and synthetic-set files round-trip.
#![allow(clippy::disallowed_methods)] // reads values to check them

use candle_core::{DType, Device, Tensor};
use gradmatch_augment::NoAugmentation;
use gradmatch_data::{Dataset, DatasetName};
use gradmatch_engine::{
    condense, evaluate, initial_set, matching_gradient, CondenseConfig, CondenseOutcome, DeviceData, EvalConfig, EvalTask, Init, MethodRef,
    Prefix, RunContext, RunIdentity, SyntheticSet,
};
use gradmatch_models::ModelSpec;
use std::path::Path;
use std::sync::OnceLock;

fn mnist() -> &'static Dataset {
    static DS: OnceLock<Dataset> = OnceLock::new();
    DS.get_or_init(|| {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data");
        gradmatch_data::load(DatasetName::Mnist, &dir).unwrap()
    })
}

const SMALL: ModelSpec = ModelSpec { width: 16, ..ModelSpec::CONVNET };

fn config(init: Init, iterations: usize, seed: u64) -> CondenseConfig {
    CondenseConfig { ipc: 1, iterations, init, batch_real: 64, seed, ..CondenseConfig::default() }
}

/// DC (intra, angle, fixed) with the small ConvNet on MNIST, on the CPU.
fn try_run(
    cfg: &CondenseConfig,
    checkpoint: Option<&Path>,
    on_iteration: &mut dyn FnMut(&gradmatch_engine::IterationLog),
) -> candle_core::Result<CondenseOutcome> {
    try_run_with(&Choice::default(), cfg, checkpoint, on_iteration)
}

/// DC with the augmentation and parameterisation named.
/// The plug-ins of a test run besides DC's level, distance and steps: names, and the sampler's options.
struct Choice<'a> {
    augment: &'static str,
    parameterisation: &'static str,
    sampler: &'static str,
    sampler_options: &'static str,
    prefixes: &'a [Prefix],
}

impl Default for Choice<'_> {
    fn default() -> Self {
        Choice { augment: "none", parameterisation: "pixels", sampler: "random", sampler_options: "", prefixes: &[] }
    }
}

/// The identity of a run of `cfg` with `choice`: the runner derives it from its provenance; here the
/// config and plug-ins stand for it.
fn identity(choice: &Choice, cfg: &CondenseConfig) -> RunIdentity {
    let Choice { augment, parameterisation, sampler, sampler_options, .. } = *choice;
    RunIdentity { key: format!("{cfg:?} {augment} {parameterisation} {sampler} {sampler_options}"), provenance: String::new() }
}

fn try_run_with(
    choice: &Choice,
    cfg: &CondenseConfig,
    checkpoint: Option<&Path>,
    on_iteration: &mut dyn FnMut(&gradmatch_engine::IterationLog),
) -> candle_core::Result<CondenseOutcome> {
    let Choice { augment, parameterisation, sampler, sampler_options, prefixes } = *choice;
    let identity = identity(choice, cfg);
    let run = RunContext { dataset: mnist(), model: &SMALL, device: &Device::Cpu, dtype: DType::F32, checkpoint, identity, prefixes };
    let (plugins, none) = (gradmatch_plugins::Plugins::builtin(), gradmatch_plugins::OptionTable::new());
    let level = plugins.method.level.build("intra", &none).expect("registered");
    let distance = plugins.method.distance.build("angle", &none).expect("registered");
    let steps = plugins.method.steps.build("fixed", &none).expect("registered");
    let augment = plugins.method.augment.build(augment, &none).expect("registered");
    let parameterisation = plugins.method.parameterisation.build(parameterisation, &none).expect("registered");
    let sampler = plugins.method.sampler.build(sampler, &sampler_options.parse().expect("a TOML table")).expect("registered");
    let method = MethodRef {
        level: level.as_ref(),
        distance: distance.as_ref(),
        steps: steps.as_ref(),
        augment: augment.as_ref(),
        parameterisation: parameterisation.as_ref(),
        sampler: sampler.as_ref(),
    };
    condense(&run, method, cfg, on_iteration)
}

/// Largest absolute difference of two image tensors.
fn diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap()
}

fn run(cfg: &CondenseConfig, checkpoint: Option<&Path>) -> CondenseOutcome {
    try_run(cfg, checkpoint, &mut |_| {}).unwrap()
}

fn accuracy(set: &SyntheticSet, seeds: &[u64]) -> f64 {
    let ds = mnist();
    let test = DeviceData::new(&ds.test, ds.shape(), DType::F32, &Device::Cpu).unwrap();
    let cfg = EvalConfig { epochs: Some(100), augment: Some("none".into()), test_limit: Some(2000), ..EvalConfig::default() };
    let recipe = cfg.resolve(DatasetName::Mnist, &ModelSpec::CONVNET);
    let task = |seed| EvalTask {
        spec: &SMALL,
        images: &set.images,
        labels: &set.labels,
        test: &test,
        num_classes: 10,
        augment: &NoAugmentation,
        seed,
    };
    let total: f64 = seeds.iter().map(|&s| evaluate(&task(s), &cfg, &recipe).unwrap().accuracy).sum();
    total / seeds.len() as f64
}

#[test]
fn condensation_from_noise_beats_its_initialisation() {
    let initial = run(&config(Init::Noise, 0, 1), None).set;
    let condensed = run(&config(Init::Noise, 40, 1), None);
    let (before, after) = (accuracy(&initial, &[0, 1]), accuracy(&condensed.set, &[0, 1]));
    let first = condensed.log.first().unwrap().loss;
    let last = condensed.log.iter().rev().take(5).map(|l| l.loss).sum::<f64>() / 5.0;
    assert!(last < first, "matching loss should fall: first {first}, last five {last}");
    assert!(after > before + 0.1, "noise init: accuracy {before:.3} -> {after:.3}");
}

#[test]
fn same_seed_same_set_and_an_interrupted_run_resumes_exactly() {
    let cfg = CondenseConfig { checkpoint_every: 1, ..config(Init::Real, 4, 7) };
    let straight = run(&cfg, None);
    let again = run(&cfg, None);
    assert_eq!(diff(&straight.set.images, &again.set.images), 0.0, "same seed, same device -> same result");

    let dir = tempfile::tempdir().unwrap();
    let ckpt = dir.path().join("checkpoint.safetensors");
    // A crash in the second iteration, after the checkpoint of the first.
    let crashed =
        std::panic::catch_unwind(|| try_run(&cfg, Some(&ckpt), &mut |log| assert!(log.iteration < 1, "simulated crash")).unwrap());
    assert!(crashed.is_err());
    let resumed = run(&cfg, Some(&ckpt));
    assert_eq!(resumed.resumed_from, 1, "resumes after the last checkpoint");
    assert_eq!(resumed.log.len(), 3);
    assert_eq!(diff(&resumed.set.images, &straight.set.images), 0.0, "a resumed run ends exactly as an uninterrupted one");

    // A different configuration refuses the checkpoint instead of silently mixing runs.
    let other = CondenseConfig { lr_img: 0.2, ..cfg.clone() };
    let err = try_run(&other, Some(&ckpt), &mut |_| {}).err().unwrap().to_string();
    assert!(err.contains("different configuration"), "{err}");
}

#[test]
fn a_longer_run_saves_its_prefix_runs_sets_byte_for_byte_even_when_resumed() {
    let dir = tempfile::tempdir().unwrap();
    let short = config(Init::Noise, 2, 9);
    let long = CondenseConfig { checkpoint_every: 1, ..config(Init::Noise, 4, 9) };
    let alone = dir.path().join("alone.safetensors");
    run(&short, None).set.save(&alone).unwrap();
    let prefix = |name: &str| Prefix { iterations: 2, identity: identity(&Choice::default(), &short), path: dir.path().join(name) };

    let prefixes = [prefix("prefix.safetensors")];
    let longer = try_run_with(&Choice { prefixes: &prefixes, ..Choice::default() }, &long, None, &mut |_| {}).unwrap();
    let bytes = |p: &Path| std::fs::read(p).unwrap();
    assert_eq!(bytes(&prefixes[0].path), bytes(&alone), "the set after 2 of 4 iterations is the 2-iteration run's, file and all");
    assert!(diff(&longer.set.images, &run(&short, None).set.images) > 0.0, "and the longer run goes on past it");

    // Killed in its third iteration, after the prefix was saved; the resumed run still has it.
    let (ckpt, prefixes) = (dir.path().join("checkpoint.safetensors"), [prefix("resumed.safetensors")]);
    let choice = Choice { prefixes: &prefixes, ..Choice::default() };
    let crashed = std::panic::catch_unwind(|| {
        try_run_with(&choice, &long, Some(&ckpt), &mut |log| assert!(log.iteration < 2, "simulated crash")).unwrap()
    });
    assert!(crashed.is_err());
    let resumed = try_run_with(&choice, &long, Some(&ckpt), &mut |_| {}).unwrap();
    assert_eq!(resumed.resumed_from, 2);
    assert_eq!(bytes(&prefixes[0].path), bytes(&alone));
    assert_eq!(diff(&resumed.set.images, &longer.set.images), 0.0);
}

#[test]
fn dsa_condensation_is_reproducible_and_augments() {
    let cfg = CondenseConfig { outer_loop: Some(2), inner_epochs: Some(1), ..config(Init::Real, 1, 5) };
    let dsa = || try_run_with(&Choice { augment: "dsa", ..Choice::default() }, &cfg, None, &mut |_| {}).unwrap();
    let (first, again, dc) = (dsa(), dsa(), run(&cfg, None));
    assert_eq!(diff(&first.set.images, &again.set.images), 0.0, "same seed -> same augmentations -> same set");
    assert!(diff(&first.set.images, &dc.set.images) > 0.0, "DSA changes what is matched");
    assert!(first.log[0].loss.is_finite());
}

#[test]
fn synthetic_set_files_round_trip_with_metadata_and_grid() {
    let set = run(&config(Init::Real, 1, 3), None).set;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("set.safetensors");
    set.save(&path).unwrap();
    let back = SyntheticSet::load(&path, &Device::Cpu).unwrap();
    assert_eq!(back.labels, (0..10).collect::<Vec<u32>>());
    assert_eq!(back.images.dims(), [10, 1, 28, 28]);
    assert_eq!((&back.images - &set.images).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap(), 0.0);
    for key in ["key", "provenance", "dataset", "mean", "std", "ipc", "iterations", "seed", "version", "format"] {
        assert!(back.metadata.contains_key(key), "metadata lacks {key}");
    }
    assert_eq!(back.metadata["dataset"], "mnist");
    let png = dir.path().join("grid.png");
    set.save_grid(&png, mnist().mean(), mnist().std(), 10, 2).unwrap();
    let img = image::open(&png).unwrap();
    assert_eq!((img.width(), img.height()), (2 + 28 * 2 + 2, 10 * (28 * 2 + 2) + 2));
    // A corrupt file is refused with its name.
    std::fs::write(&path, b"not a safetensors file").unwrap();
    let err = SyntheticSet::load(&path, &Device::Cpu).unwrap_err().to_string();
    assert!(err.contains("set.safetensors"), "{err}");
}

/// The matching loss and gradient of the first step of `level` at `cfg`, in f64 on the CPU.
fn first_step(level: &str, cfg: &CondenseConfig) -> candle_core::Result<(f64, Tensor)> {
    let identity = RunIdentity { key: String::new(), provenance: String::new() };
    let run =
        RunContext { dataset: mnist(), model: &SMALL, device: &Device::Cpu, dtype: DType::F64, checkpoint: None, identity, prefixes: &[] };
    let (plugins, none) = (gradmatch_plugins::Plugins::builtin(), gradmatch_plugins::OptionTable::new());
    let level = plugins.method.level.build(level, &none).expect("registered");
    let distance = plugins.method.distance.build("combined", &none).expect("registered");
    let steps = plugins.method.steps.build("fixed", &none).expect("registered");
    let pixels = plugins.method.parameterisation.build("pixels", &none).expect("registered");
    let random = plugins.method.sampler.build("random", &none).expect("registered");
    let method = MethodRef {
        level: level.as_ref(),
        distance: distance.as_ref(),
        steps: steps.as_ref(),
        augment: &NoAugmentation,
        parameterisation: pixels.as_ref(),
        sampler: random.as_ref(),
    };
    let images = initial_set(&run, cfg, method)?;
    matching_gradient(&run, method, cfg, &images, 0)
}

/// A cap on the images per pass splits both sides into passes (real: 1 class of 8 images per pass,
/// synthetic: 4 classes of 2 images per pass) and changes nothing beyond float rounding.
#[test]
fn passes_split_under_a_cap_match_one_pass() {
    let one_pass = CondenseConfig { ipc: 2, batch_real: 8, classes_per_pass: Some(10), ..config(Init::Real, 1, 4) };
    let capped = CondenseConfig { max_images_per_pass: Some(8), ..one_pass.clone() };
    for level in ["intra", "multi-level"] {
        let (loss, grad) = first_step(level, &one_pass).unwrap();
        let (loss_capped, grad_capped) = first_step(level, &capped).unwrap();
        assert!((loss - loss_capped).abs() <= 1e-12 * loss.abs(), "{level}: {loss} vs {loss_capped}");
        let scale = grad.abs().unwrap().max_all().unwrap().to_scalar::<f64>().unwrap();
        let gap = (&grad - &grad_capped).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f64>().unwrap();
        assert!(scale > 0.0 && gap <= 1e-10 * scale, "{level}: largest difference {gap} (gradient scale {scale})");
    }
    // A mixed batch (the inter-class level's 1024 real images) is one group: refused by name.
    let err = first_step("inter", &capped).unwrap_err().to_string();
    assert!(err.contains("mixed real batch of 1024 images") && err.contains("max_images_per_pass"), "{err}");
}

/// Multi-formation stores ipc images per class and trains on four times as many; `mix` is `real`
/// for pixels, draw for draw.
#[test]
fn multi_formation_stores_the_budget_and_mix_is_real_for_pixels() {
    let mix = CondenseConfig { iterations: 1, ..config(Init::Mix, 1, 5) };
    let formed = try_run_with(&Choice { parameterisation: "multi-formation", ..Choice::default() }, &mix, None, &mut |_| {}).unwrap();
    assert_eq!(formed.set.images.dims(), [10, 1, 28, 28], "the stored set is the storage budget");
    assert!(formed.log[0].loss.is_finite());
    let (mixed, real) = (run(&CondenseConfig { iterations: 0, ..mix.clone() }, None), run(&config(Init::Real, 0, 5), None));
    assert_eq!(diff(&mixed.set.images, &real.set.images), 0.0);
    let mosaic = try_run_with(
        &Choice { parameterisation: "multi-formation", ..Choice::default() },
        &CondenseConfig { iterations: 0, ..mix },
        None,
        &mut |_| {},
    )
    .unwrap();
    assert_ne!(diff(&mosaic.set.images, &mixed.set.images), 0.0, "multi-formation's mix is a mosaic of four real images");
}

/// DREAM's batches and initial images are real images of their class, chosen alike for a seed;
/// `init = "sampler"` under `random` is `init = "real"`, draw for draw.
#[test]
fn dream_matches_against_real_images_and_random_sampler_init_is_real() {
    let dream = Choice { sampler: "dream", sampler_options: "images = 512", ..Choice::default() };
    let init = config(Init::Sampler, 0, 3);
    let chosen = try_run_with(&dream, &init, None, &mut |_| {}).unwrap().set;
    let train = &mnist().train;
    let image_len = train.image_len();
    let stored = chosen.images.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    for (i, image) in stored.chunks(image_len).enumerate() {
        let class = chosen.labels[i] as usize;
        let found = train.class_indices(class).iter().any(|&j| train.images[j * image_len..(j + 1) * image_len] == *image);
        assert!(found, "stored image {i} is an image of its class {class}");
    }
    let real = run(&config(Init::Real, 0, 3), None).set;
    let random = run(&init, None).set;
    assert_eq!(diff(&random.images, &real.images), 0.0);
    assert_ne!(diff(&chosen.images, &real.images), 0.0, "DREAM chose other images than the uniform draw");
    let matched =
        |seed| try_run_with(&dream, &CondenseConfig { iterations: 1, ..config(Init::Sampler, 0, seed) }, None, &mut |_| {}).unwrap();
    let (a, b) = (matched(3), matched(3));
    assert!(a.log[0].loss.is_finite());
    assert_eq!(diff(&a.set.images, &b.set.images), 0.0, "a seed gives the same run");
    assert_ne!(diff(&a.set.images, &matched(4).set.images), 0.0);
}

/// On a GPU every read into host memory waits for the device to finish its queue: an outer
/// iteration reads once (its matching losses, together), its matching steps and the training
/// between them never. Counted by `gradmatch_core::host` on the CPU: three matching steps with DSA
/// on both sides and two epochs of training between them, three iterations.
#[test]
fn an_outer_iteration_reads_the_device_once() {
    let cfg = CondenseConfig { outer_loop: Some(3), inner_epochs: Some(2), ..config(Init::Real, 3, 5) };
    let choice = Choice { augment: "dsa", ..Choice::default() };
    let mut reads = gradmatch_core::host::ReadMeter::start();
    let mut per_iteration = Vec::new();
    try_run_with(&choice, &cfg, None, &mut |_| per_iteration.push(reads.lap())).unwrap();
    // The first iteration's count also holds the run's set-up.
    assert_eq!(per_iteration[1..], [1, 1], "reads per outer iteration: {per_iteration:?}");
}
