use super::*;
use candle_core::{Device, Tensor, Var};

fn parse(json: &str) -> EvalConfig {
    serde_json::from_str(json).unwrap()
}

fn spec(name: &str) -> ModelSpec {
    name.parse().unwrap()
}

#[test]
fn dc_resolves_per_dataset_and_model_as_get_daparam() {
    let dc = EvalConfig::default();
    let of = |d, m: &str| {
        let r = dc.resolve(d, &spec(m));
        (r.epochs, r.augment, r.schedule)
    };
    use DatasetName::*;
    assert_eq!(of(Mnist, "ConvNet"), (1000, "crop_scale_rotate".into(), Schedule::MultiStep));
    assert_eq!(of(Mnist, "MLP"), (1000, "crop_scale_rotate".into(), Schedule::MultiStep));
    assert_eq!(of(FashionMnist, "ConvNet"), (300, "none".into(), Schedule::MultiStep));
    assert_eq!(of(Cifar10, "ConvNetBN"), (1000, "crop_noise".into(), Schedule::MultiStep));
    assert_eq!(of(Mnist, "ConvNetBN"), (1000, "crop_noise".into(), Schedule::MultiStep), "the model's rule comes last and wins");
    let deeper_bn = ModelSpec { norm: NormKind::Batch, ..spec("ConvNetD4") };
    assert_eq!(dc.resolve(Svhn, &deeper_bn).augment, "none", "only ConvNetBN itself, as get_daparam");
    let dsa = Protocol::Dsa.recipe().resolve(FashionMnist, &ModelSpec::CONVNET);
    assert_eq!((dsa.epochs, dsa.augment.as_str(), dsa.schedule, dsa.revision), (1000, "dsa", Schedule::Restart, Recipe::REVISION));
}

#[test]
fn idc_resolves_per_dataset_as_its_argument_py() {
    // 1000 epochs for any ipc outside ImageNet, batch 64, MultiStepLR x0.2 at 2E//3 and 5E//6, CutMix
    // p 0.5 beta 1 (so `remove_aug(.., 'cutout')`), no flip on MNIST and SVHN.
    let idc = Protocol::Idc.recipe();
    assert_eq!((idc.batch_size, idc.lr, idc.momentum, idc.weight_decay, idc.num_eval), (64, 0.01, 0.9, 5e-4, 3));
    use DatasetName::*;
    for (dataset, augment) in [
        (Mnist, "idc:color_crop_scale_rotate"),
        (Svhn, "idc:color_crop_scale_rotate"),
        (FashionMnist, "idc:color_crop_flip_scale_rotate"),
        (Cifar10, "idc:color_crop_flip_scale_rotate"),
        (Cifar100, "idc:color_crop_flip_scale_rotate"),
    ] {
        let r = idc.resolve(dataset, &ModelSpec::CONVNET);
        assert_eq!(
            (r.epochs, r.augment.as_str(), r.schedule, r.cutmix),
            (1000, augment, Schedule::Idc, Some(CutMix { p: 0.5, beta: 1.0 }))
        );
    }
    let line = idc.resolve(Mnist, &ModelSpec::CONVNET).to_string();
    assert_eq!(
        line,
        "protocol idc: 1000 epochs, augment idc:color_crop_scale_rotate, lr 0.01 x0.2 from epochs 666, 833, cutmix p 0.5 beta 1"
    );
    assert_eq!(parse(r#"{"protocol": "idc"}"#), idc);
    assert_eq!(idc.as_first_revision(), idc, "no record was made under a first revision of it");
}

#[test]
fn given_fields_override_the_resolution_and_augmentation_sets_dc_epochs() {
    let mnist = |json: &str| parse(json).resolve(DatasetName::Mnist, &ModelSpec::CONVNET);
    let r = mnist(r#"{"augment": "none"}"#);
    assert_eq!((r.epochs, r.augment.as_str()), (300, "none"), "DC: 300 epochs without augmentation");
    let r = mnist(r#"{"epochs": 20}"#);
    assert_eq!((r.epochs, r.augment.as_str()), (20, "crop_scale_rotate"));
    assert_eq!(mnist(r#"{"augment": true}"#).augment, "crop_scale_rotate", "`true` and `mnist` are MNIST's strategy");
    assert_eq!(mnist(r#"{"augment": "mnist"}"#).augment, "crop_scale_rotate");
    assert_eq!(mnist(r#"{"protocol": "dsa", "schedule": "multistep"}"#).schedule, Schedule::MultiStep);
    assert_eq!(mnist(r#"{"lr": 0.02}"#).lr, 0.02);
}

#[test]
fn configs_round_trip_and_unknown_fields_and_protocols_are_named() {
    for json in [
        "{}",
        r#"{"protocol": "dsa"}"#,
        r#"{"protocol": "dsa", "epochs": 500, "augment": "none"}"#,
        r#"{"augment": "crop_noise", "models": ["MLP"]}"#,
        r#"{"augment": "dsa", "cutmix": {"p": 0.5, "beta": 1.0}}"#,
    ] {
        let cfg = parse(json);
        assert_eq!(parse(&serde_json::to_string(&cfg).unwrap()), cfg, "{json}");
    }
    assert_eq!(parse("{}"), EvalConfig::default());
    assert_eq!(parse(r#"{"networks_at_once": 4}"#).networks_at_once, Some(4));
    // The ensemble's size changes no result beyond float rounding, so no identity either.
    let capped = EvalConfig { networks_at_once: Some(4), ..EvalConfig::default() };
    assert_eq!(serde_json::to_string(&capped).unwrap(), serde_json::to_string(&EvalConfig::default()).unwrap());
    assert_eq!(parse(r#"{"protocol": "dsa"}"#), Protocol::Dsa.recipe());
    // CutMix, when given, is part of the config and of every recipe line; absent, configs written
    // before it keep their ids.
    assert!(!serde_json::to_string(&EvalConfig::default()).unwrap().contains("cutmix"));
    let mixed = parse(r#"{"augment": "dsa", "cutmix": {"p": 0.5, "beta": 1.0}}"#).resolve(DatasetName::Mnist, &ModelSpec::CONVNET);
    assert_eq!(mixed.cutmix, Some(gradmatch_augment::CutMix { p: 0.5, beta: 1.0 }));
    assert!(mixed.to_string().ends_with(", cutmix p 0.5 beta 1"), "{mixed}");
    let idc = parse(r#"{"schedule": "idc", "epochs": 1000, "augment": "dsa"}"#).resolve(DatasetName::Mnist, &ModelSpec::CONVNET);
    assert!(idc.to_string().ends_with("lr 0.01 x0.2 from epochs 666, 833"), "{idc}");
    let err = serde_json::from_str::<EvalConfig>(r#"{"cutmix": {"p": 0.5, "alpha": 1.0}}"#).unwrap_err().to_string();
    assert!(err.contains("alpha") && err.contains("beta"), "{err}");
    let err = serde_json::from_str::<EvalConfig>(r#"{"epoch": 3}"#).unwrap_err().to_string();
    assert!(err.contains("epoch") && err.contains("epochs"), "{err}");
    let err = serde_json::from_str::<EvalConfig>(r#"{"protocol": "mtt"}"#).unwrap_err().to_string();
    assert!(err.contains("mtt") && err.contains("dsa"), "{err}");
    assert_eq!("DSA".parse::<Protocol>(), Ok(Protocol::Dsa));
    use strum::{VariantArray, VariantNames};
    for (protocol, name) in <Protocol as VariantArray>::VARIANTS.iter().zip(<Protocol as VariantNames>::VARIANTS) {
        assert_eq!((serde_json::to_value(protocol).unwrap(), protocol.to_string()), (serde_json::json!(name), name.to_string()));
    }
    for (schedule, name) in <Schedule as VariantArray>::VARIANTS.iter().zip(<Schedule as VariantNames>::VARIANTS) {
        assert_eq!((serde_json::to_value(schedule).unwrap(), schedule.to_string()), (serde_json::json!(name), name.to_string()));
        assert_eq!(name.to_uppercase().parse::<Schedule>(), Ok(*schedule));
    }
}

/// The JSON of `[evaluation]` configs before recipes were resolved per dataset, as records of stores
/// made then hold them.
const DC_BEFORE: &str = r#"{"epochs":300,"lr":0.01,"momentum":0.9,"weight_decay":0.0005,"batch_size":256,"augment":false,"test_limit":null,"num_eval":20,"models":[]}"#;
const DSA_BEFORE: &str = r#"{"protocol":"dsa","epochs":1000,"lr":0.01,"momentum":0.9,"weight_decay":0.0005,"batch_size":256,"augment":"dsa","test_limit":null,"num_eval":5,"models":[]}"#;

#[test]
fn the_new_recipes_differ_from_the_first_revision_which_reads_as_old_records_hold_it() {
    for (protocol, before) in [(Protocol::Dc, DC_BEFORE), (Protocol::Dsa, DSA_BEFORE)] {
        let cfg = protocol.recipe();
        assert_ne!(cfg, parse(before), "{protocol}: a new recipe must not reuse old results");
        assert_eq!(cfg.as_first_revision(), parse(before), "{protocol}: old stores must stay findable");
    }
    let mnist_before = DC_BEFORE.replace(r#""augment":false"#, r#""augment":true"#);
    let mnist = parse(r#"{"epochs": 300, "augment": "mnist"}"#);
    assert_eq!(mnist.as_first_revision(), parse(&mnist_before), "written `true` before");
    let explicit = parse(r#"{"epochs": 300, "augment": "none"}"#);
    assert_eq!(explicit.as_first_revision(), parse(DC_BEFORE), "the same recipe written out is the same config");
}

#[test]
fn records_made_before_recipes_were_resolved_say_so() {
    let old: Recipe = serde_json::from_str(r#"{"protocol": "dc", "epochs": 300, "augment": "none"}"#).unwrap();
    assert_eq!((old.revision, old.schedule, old.lr), (1, Schedule::MultiStep, 0.01));
    assert_eq!(old.to_string(), "protocol dc (gradmatch's recipe v1): 300 epochs, augment none, lr 0.01 x0.1 from epoch 150");
    let new = EvalConfig::default().resolve(DatasetName::Mnist, &ModelSpec::CONVNET);
    assert_eq!(new.to_string(), "protocol dc: 1000 epochs, augment crop_scale_rotate, lr 0.01 x0.1 from epoch 500");
    let dsa = Protocol::Dsa.recipe().resolve(DatasetName::Mnist, &ModelSpec::CONVNET);
    assert_eq!(dsa.to_string(), "protocol dsa: 1001 epochs, augment dsa, lr 0.01 x0.1 from epoch 502 with a fresh optimiser");
    assert_eq!(serde_json::from_str::<Recipe>(&serde_json::to_string(&dsa).unwrap()).unwrap(), dsa);
}

/// One schedule run of `tests/fixtures/recipes/make.py` (at the top of the workspace).
#[derive(serde::Deserialize)]
struct ScheduleRun {
    epochs: usize,
    schedule: Schedule,
    grads: Vec<f64>,
    lrs: Vec<f64>,
    params: Vec<f64>,
}

#[derive(serde::Deserialize)]
struct Fixture {
    schedules: Vec<ScheduleRun>,
}

#[test]
fn schedules_give_pytorchs_learning_rates_and_momentum() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/recipes/recipes.json");
    let fixture: Fixture = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert!(fixture.schedules.len() >= 10);
    for run in fixture.schedules {
        let phases = run.schedule.phases(run.epochs);
        assert_eq!(phases.total, run.lrs.len(), "{} epochs of {}", run.epochs, run.schedule);
        let p = Var::new(&[1.0f64], &Device::Cpu).unwrap();
        let mut sgd = Sgd::new(vec![p.clone()], 0.01, 0.9, 5e-4);
        for epoch in 0..phases.total {
            phases.before_epoch(epoch, &mut sgd);
            let what = format!("{} epochs of {}, epoch {epoch}", run.epochs, run.schedule);
            assert!((sgd.lr - run.lrs[epoch]).abs() < 1e-15, "{what}: lr {} but PyTorch's is {}", sgd.lr, run.lrs[epoch]);
            sgd.step(&[Some(Tensor::new(&[run.grads[epoch]], &Device::Cpu).unwrap())]).unwrap();
            let ours = p.as_tensor().to_vec1::<f64>().unwrap()[0];
            assert!((ours - run.params[epoch]).abs() < 1e-13, "{what}: parameter {ours} but PyTorch's is {}", run.params[epoch]);
        }
    }
}
