//! A saved network loads into a fresh one of the same spec as the same function; anything else is
//! refused with the file and the parameter named.
#![allow(clippy::disallowed_methods)] // reads values to check them

use candle_core::{DType, Device, Tensor};
use gradmatch_models::{Mode, ModelSpec, Network};

fn network(spec: &str, seed: u64) -> Network {
    Network::new(&spec.parse::<ModelSpec>().unwrap(), (1, 28, 28), 10, seed, DType::F32, &Device::Cpu).unwrap()
}

#[test]
fn a_saved_network_loads_as_the_same_function_and_a_misfit_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("net.safetensors");
    let (saved, fresh) = (network("ConvNetW4", 1), network("ConvNetW4", 2));
    saved.save(&path).unwrap();
    let x = Tensor::randn(0f32, 1.0, (3, 1, 28, 28), &Device::Cpu).unwrap();
    let out = |n: &Network| n.forward(&x, Mode::Eval).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert_ne!(out(&saved), out(&fresh));
    fresh.load_params(&path).unwrap();
    assert_eq!(out(&saved), out(&fresh), "the same parameters, the same outputs");

    let err = network("ConvNetW8", 0).load_params(&path).unwrap_err().to_string();
    assert!(err.contains("net.safetensors") && err.contains("shape"), "{err}");
    let err = network("ConvNetD2", 0).load_params(&path).unwrap_err().to_string();
    assert!(err.contains("net.safetensors") && err.contains("parameters"), "{err}");
    let err = network("ConvNetBN", 0).save(&dir.path().join("bn.safetensors")).unwrap_err().to_string();
    assert!(err.contains("batch norm"), "{err}");
}
