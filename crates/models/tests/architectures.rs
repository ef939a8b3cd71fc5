#![allow(clippy::disallowed_methods)] // reads values to check them
use candle_core::{DType, Device, Tensor};
use gradmatch_models::{Mode, ModelSpec, Network, NormKind};

fn build(name: &str, input: (usize, usize, usize), classes: usize) -> Network {
    let spec: ModelSpec = name.parse().unwrap();
    Network::new(&spec, input, classes, 0, DType::F32, &Device::Cpu).unwrap()
}

#[test]
fn convnet3_parameter_counts_match_the_reference() {
    assert_eq!(build("ConvNet", (1, 28, 28), 10).num_params(), 317_706);
    assert_eq!(build("ConvNet", (3, 32, 32), 10).num_params(), 320_010);
}

#[test]
fn parameters_are_named_in_forward_order_output_first() {
    let net = build("ConvNet", (1, 28, 28), 10);
    let names: Vec<&str> = net.params().iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names[..4], ["features.0.conv.weight", "features.0.conv.bias", "features.0.norm.weight", "features.0.norm.bias"]);
    assert_eq!(*names.last().unwrap(), "classifier.bias");
    assert_eq!(net.params()[0].var.dims(), [128, 1, 3, 3]);
    assert_eq!(net.params()[names.len() - 2].var.dims(), [10, 2048]);
}

#[test]
fn pytorch_default_initialisation_bounds_and_seeding() {
    let net = build("ConvNet", (3, 32, 32), 10);
    let w = net.params()[0].var.as_tensor().flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let bound = 1.0 / (27f32).sqrt();
    assert!(w.iter().all(|v| v.abs() <= bound));
    // Spread like a uniform: the extreme values come close to the bound.
    assert!(w.iter().fold(0f32, |m, v| m.max(v.abs())) > 0.95 * bound);
    let same = build("ConvNet", (3, 32, 32), 10);
    let w2 = same.params()[0].var.as_tensor().flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert_eq!(w, w2, "same seed, same network");
    let other = Network::new(&ModelSpec::CONVNET, (3, 32, 32), 10, 1, DType::F32, &Device::Cpu).unwrap();
    assert_ne!(w, other.params()[0].var.as_tensor().flatten_all().unwrap().to_vec1::<f32>().unwrap());
}

#[test]
fn every_architecture_maps_images_to_logits() {
    let names = [
        "ConvNet",
        "ConvNetW32",
        "ConvNetD1",
        "ConvNetD4",
        "ConvNetAS",
        "ConvNetAL",
        "ConvNetNN",
        "ConvNetBN",
        "ConvNetLN",
        "ConvNetGN",
        "ConvNetNP",
        "ConvNetMP",
        "MLP",
        "LeNet",
        "AlexNet",
        "AlexNetBN",
        "VGG11",
        "VGG11BN",
        "ResNet18",
        "ResNet18BN",
        "ResNet18BN_AP",
    ];
    for name in names {
        for (input, classes) in [((1, 28, 28), 10), ((3, 32, 32), 100)] {
            let net = build(name, input, classes);
            let x = Tensor::randn(0f32, 1.0, (2, input.0, input.1, input.2), &Device::Cpu).unwrap();
            let y = net.forward(&x, Mode::Train).unwrap();
            assert_eq!(y.dims(), [2, classes], "{name} on {input:?}");
        }
    }
}

#[test]
fn names_round_trip_and_unknown_names_list_the_known_ones() {
    for name in ["ConvNet", "ConvNetW64", "ConvNetD4", "ConvNetBN", "ConvNetMP", "MLP", "VGG11BN", "ResNet18BN_AP"] {
        assert_eq!(name.parse::<ModelSpec>().unwrap().to_string(), name);
    }
    let err = "ConvNett".parse::<ModelSpec>().unwrap_err().to_string();
    assert!(err.contains("unknown model `ConvNett`") && err.contains("ResNet18BN_AP"), "{err}");
    let err = "ConvNetW99999999".parse::<ModelSpec>().unwrap_err().to_string();
    assert!(err.contains("width 99999999") && err.contains("1 to 4096"), "{err}");
    assert_eq!("ConvNetW4096".parse::<ModelSpec>().unwrap().width, 4096);
}

#[test]
fn batch_norm_updates_running_statistics_only_in_train_mode() {
    let net = build("ConvNetBN", (1, 28, 28), 10);
    assert!(net.has_batch_norm());
    assert_eq!(build("ConvNet", (1, 28, 28), 10).spec().norm, NormKind::Instance);
    let x = Tensor::randn(0f32, 1.0, (8, 1, 28, 28), &Device::Cpu).unwrap().affine(3.0, 2.0).unwrap();
    let before = net.forward(&x, Mode::Eval).unwrap();
    let again = net.forward(&x, Mode::Eval).unwrap();
    let diff = |a: &Tensor, b: &Tensor| (a - b).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
    assert_eq!(diff(&before, &again), 0.0, "eval mode must not change the statistics");
    net.forward(&x, Mode::Train).unwrap();
    let after = net.forward(&x, Mode::Eval).unwrap();
    assert!(diff(&before, &after) > 1e-4, "train mode must update the running statistics");
}

#[test]
fn every_architecture_embeds_into_what_its_classifier_takes() {
    for name in ["ConvNet", "ConvNetBN", "MLP", "LeNet", "AlexNet", "VGG11", "ResNet18"] {
        let net = build(name, (3, 32, 32), 10);
        let x = Tensor::randn(0f32, 1.0, (4, 3, 32, 32), &Device::Cpu).unwrap();
        let features = net.embed(&x, Mode::Eval).unwrap();
        let params = net.params();
        let (weight, bias) = (params[params.len() - 2].var.as_tensor(), params[params.len() - 1].var.as_tensor());
        assert_eq!(features.dims(), [4, weight.dim(1).unwrap()], "{name}");
        let logits = features.matmul(&weight.t().unwrap()).unwrap().broadcast_add(bias).unwrap();
        let diff = (logits - net.forward(&x, Mode::Eval).unwrap()).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(diff < 1e-4, "{name}: the classifier of the features is the network's output ({diff})");
    }
}
