//! Evaluation networks trained as one ensemble equal the same evaluations run one after the other
//! with the same seeds, on real MNIST: each network's final training loss (f64, 1e-9) and test
//! accuracy, for every protocol (`dc` with and without its augmentation, `dsa`) and both
//! schedules; a network that diverges is reported and leaves the others untouched. An evaluation
//! reads the device at most once per epoch.

use candle_core::{DType, Device, Tensor};
use gradmatch_augment::NoAugmentation;
use gradmatch_augment::{CutMix, DcAugmentation};
use gradmatch_data::{Dataset, DatasetName};
use gradmatch_engine::{evaluate, evaluate_all, DeviceData, EvalConfig, EvalTask, Protocol, Schedule};
use gradmatch_models::ModelSpec;
use gradmatch_plugins::{OptionTable, Plugins};
use std::path::Path;

const SMALL: ModelSpec = ModelSpec { width: 8, depth: 2, ..ModelSpec::CONVNET };

fn mnist() -> Dataset {
    gradmatch_data::load(DatasetName::Mnist, &Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data")).unwrap()
}

/// `sets` sets of `per_class` real training images per class, a different draw each, in f64.
fn sets(ds: &Dataset, real: &DeviceData, per_class: usize, sets: usize) -> Vec<(Tensor, Vec<u32>)> {
    (0..sets)
        .map(|s| {
            let idx: Vec<usize> = (0..10).flat_map(|c| (0..per_class).map(move |i| ds.train.class_indices(c)[s * per_class + i])).collect();
            (real.select(&idx).unwrap(), ds.train.gather_labels(&idx))
        })
        .collect()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(1.0)
}

#[test]
fn an_ensemble_equals_its_networks_one_by_one() {
    let ds = mnist();
    let real = DeviceData::new(&ds.train, ds.shape(), DType::F64, &Device::Cpu).unwrap();
    let test = DeviceData::new(&ds.test, ds.shape(), DType::F64, &Device::Cpu).unwrap();
    let sets = sets(&ds, &real, 1, 3);
    let plugins = Plugins::builtin();
    let dsa = plugins.method.augment.build("dsa", &OptionTable::new()).unwrap();
    let crop = DcAugmentation::parse(DcAugmentation::MNIST).unwrap();
    let none = NoAugmentation;
    let dc = EvalConfig { epochs: Some(6), batch_size: 4, test_limit: Some(300), ..EvalConfig::default() };
    // IDC's recipe as it resolves for MNIST: its DiffAug without the flip, per image, then CutMix.
    let idc_cfg = EvalConfig { epochs: Some(6), batch_size: 4, test_limit: Some(300), ..dc.with_protocol(Protocol::Idc) };
    let idc = plugins.evaluation_augmentation(&idc_cfg.resolve(DatasetName::Mnist, &SMALL).augment).unwrap();
    let protocols = [
        ("dc, augmented", dc.clone(), &crop as &dyn gradmatch_core::Augmentation),
        ("dc, plain", EvalConfig { augment: Some("none".into()), ..dc.clone() }, &none),
        // IDC's CutMix after the augmentation, each network with its own draws.
        ("dc, plain, cutmix", EvalConfig { augment: Some("none".into()), cutmix: Some(CutMix { p: 0.5, beta: 1.0 }), ..dc.clone() }, &none),
        ("dc, augmented, cutmix", EvalConfig { cutmix: Some(CutMix { p: 1.0, beta: 1.0 }), ..dc.clone() }, &crop),
        ("dsa", EvalConfig { epochs: Some(6), batch_size: 4, test_limit: Some(300), ..dc.with_protocol(Protocol::Dsa) }, dsa.as_ref()),
        ("idc", idc_cfg, idc.as_ref()),
    ];
    let mut schedules = std::collections::HashSet::new();
    let mut first_losses = std::collections::HashMap::new();
    for (name, cfg, augment) in protocols {
        let recipe = cfg.resolve(DatasetName::Mnist, &SMALL);
        schedules.insert(format!("{:?}", recipe.schedule));
        let tasks: Vec<EvalTask> = sets
            .iter()
            .enumerate()
            .map(|(k, (images, labels))| EvalTask {
                spec: &SMALL,
                images,
                labels,
                test: &test,
                num_classes: 10,
                augment,
                seed: 40 + k as u64,
            })
            .collect();
        let together = evaluate_all(&tasks, &cfg, &recipe, tasks.len());
        for (k, (task, outcome)) in tasks.iter().zip(together).enumerate() {
            let (outcome, alone) = (outcome.unwrap(), evaluate(task, &cfg, &recipe).unwrap());
            assert!(
                close(outcome.final_train_loss, alone.final_train_loss),
                "{name}, network {k}: loss {} together, {} alone",
                outcome.final_train_loss,
                alone.final_train_loss
            );
            assert_eq!(outcome.accuracy, alone.accuracy, "{name}, network {k}");
            assert!(alone.final_train_loss > 0.0 && alone.accuracy > 0.1, "{name}: the networks learn something");
            if k == 0 {
                first_losses.insert(name, alone.final_train_loss);
            }
        }
    }
    assert_ne!(first_losses["dc, plain"], first_losses["dc, plain, cutmix"], "CutMix changes what the network trains on");
    for schedule in [Schedule::MultiStep, Schedule::Restart, Schedule::Idc] {
        assert!(schedules.contains(&format!("{schedule:?}")), "{schedule:?}");
    }
}

#[test]
fn a_refused_or_diverging_network_leaves_the_others_untouched() {
    let ds = mnist();
    let real = DeviceData::new(&ds.train, ds.shape(), DType::F64, &Device::Cpu).unwrap();
    let test = DeviceData::new(&ds.test, ds.shape(), DType::F64, &Device::Cpu).unwrap();
    let mut sets = sets(&ds, &real, 1, 4);
    // Images beyond f64's range are refused before training; with no norm to absorb the scale,
    // images of 1e150 make the first update so large that the next forward overflows.
    sets[1].0 = (&sets[1].0 * 1e308).unwrap();
    sets[2].0 = (&sets[2].0 * 1e150).unwrap();
    let spec = ModelSpec { norm: gradmatch_models::NormKind::None, ..SMALL };
    let none = NoAugmentation;
    let cfg = EvalConfig { epochs: Some(4), batch_size: 10, test_limit: Some(300), augment: Some("none".into()), ..EvalConfig::default() };
    let recipe = cfg.resolve(DatasetName::Mnist, &spec);
    let tasks: Vec<EvalTask> = sets
        .iter()
        .enumerate()
        .map(|(k, (images, labels))| EvalTask { spec: &spec, images, labels, test: &test, num_classes: 10, augment: &none, seed: k as u64 })
        .collect();
    let outcomes = evaluate_all(&tasks, &cfg, &recipe, tasks.len());
    let alone: Vec<_> = tasks.iter().map(|t| evaluate(t, &cfg, &recipe)).collect();
    for k in [1, 2] {
        let err = outcomes[k].as_ref().expect_err("refused or diverged").to_string();
        let first_line = |e: &str| e.lines().next().unwrap().to_string();
        assert_eq!(first_line(&err), first_line(&alone[k].as_ref().expect_err("alone too").to_string()), "network {k}");
    }
    for k in [0, 3] {
        let (together, alone) = (outcomes[k].as_ref().unwrap(), alone[k].as_ref().unwrap());
        assert!(close(together.final_train_loss, alone.final_train_loss) && together.accuracy == alone.accuracy, "network {k}");
    }
}

/// Counting forgetting events watches the training without changing it, and counts what the
/// predictions say: on 200 real images and 20 small batches, some images are learnt, then forgotten.
#[test]
fn counting_forgetting_leaves_the_training_as_it_is() {
    let ds = mnist();
    let real = DeviceData::new(&ds.train, ds.shape(), DType::F32, &Device::Cpu).unwrap();
    let test = DeviceData::new(&ds.test, ds.shape(), DType::F32, &Device::Cpu).unwrap();
    let (images, labels) = sets(&ds, &real, 20, 1).remove(0);
    let cfg = EvalConfig { epochs: Some(20), batch_size: 50, augment: Some("none".into()), test_limit: Some(300), ..EvalConfig::default() };
    let recipe = cfg.resolve(DatasetName::Mnist, &SMALL);
    let task = EvalTask { spec: &SMALL, images: &images, labels: &labels, test: &test, num_classes: 10, augment: &NoAugmentation, seed: 4 };
    let plain = gradmatch_engine::train(&task, &cfg, &recipe).unwrap();
    let (counted, events) = gradmatch_engine::train_counting_forgetting(&task, &cfg, &recipe).unwrap();
    assert_eq!(plain.final_train_loss, counted.final_train_loss, "the same training, bit for bit");
    let accuracy = |t: &gradmatch_engine::Trained| gradmatch_engine::test_accuracy(&t.net, &test, Some(300)).unwrap();
    assert_eq!(accuracy(&plain), accuracy(&counted));
    assert_eq!(events.len(), 200);
    assert!(events.iter().any(|&e| e > 0), "an image learnt and then forgotten in 20 epochs: {events:?}");
    assert!(events.iter().all(|&e| e <= 10), "at most one event every other visit: {events:?}");
}

/// On a GPU every read into host memory waits for the device: training reads at most once per epoch
/// (the divergence check), whatever the number of batches, alone or as an ensemble. Counted by
/// `gradmatch_core::host` on the CPU: 20 images in batches of 4 (5 steps per epoch), 3 epochs.
#[test]
fn an_evaluation_reads_the_device_at_most_once_per_epoch() {
    let ds = mnist();
    let real = DeviceData::new(&ds.train, ds.shape(), DType::F32, &Device::Cpu).unwrap();
    let test = DeviceData::new(&ds.test, ds.shape(), DType::F32, &Device::Cpu).unwrap();
    let sets = sets(&ds, &real, 2, 2);
    let dsa = Plugins::builtin().method.augment.build("dsa", &OptionTable::new()).unwrap();
    let plain = EvalConfig { epochs: Some(3), batch_size: 4, augment: Some("none".into()), test_limit: Some(300), ..EvalConfig::default() };
    let protocols = [
        (plain.clone(), &NoAugmentation as &dyn gradmatch_core::Augmentation),
        (EvalConfig { epochs: Some(3), ..plain.with_protocol(Protocol::Dsa) }, dsa.as_ref()),
    ];
    for (cfg, augment) in protocols {
        let recipe = cfg.resolve(DatasetName::Mnist, &SMALL);
        let tasks: Vec<EvalTask> = sets
            .iter()
            .enumerate()
            .map(|(k, (images, labels))| EvalTask { spec: &SMALL, images, labels, test: &test, num_classes: 10, augment, seed: k as u64 })
            .collect();
        let alone = gradmatch_engine::train(&tasks[0], &cfg, &recipe).unwrap().host_reads;
        // DSA's schedule trains one epoch more than it names.
        assert!(alone.rounds >= 3 && alone.most == 1, "{:?}: {alone}", cfg.protocol);
        let mut reads = gradmatch_core::host::ReadMeter::start();
        assert!(evaluate_all(&tasks, &cfg, &recipe, 2).iter().all(Result::is_ok));
        // Each set's check, at most one per epoch, the final losses and the test pass.
        assert!(reads.lap() <= 2 + alone.rounds + 1 + 1, "{:?}: an ensemble reads more than once per epoch", cfg.protocol);
    }
}
