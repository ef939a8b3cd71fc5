//! Parameterisations: shapes, the order of decoded images, and the matching gradient through a real
//! network with respect to the stored images.

use crate::{MnistContext, SquaredDiff};
use candle_core::{DType, Device, IndexOp, Tensor};
use gradmatch_core::{Distance, MatchContext, Parameterisation};

/// Largest relative error tolerated against finite differences, as for distances and levels.
const TOLERANCE: f64 = 1e-5;

/// Checks that the parameterisation
/// * decodes `n` stored images of MNIST's and CIFAR's shapes into `images_per_stored * n` of the same
///   shape, image `j` of stored image `i` at row `j * n + i` (each stored image decoded alone gives
///   the same images), the same for the same input twice;
/// * encodes `images_per_stored * n` real images into `n` stored ones of their shape;
/// * is differentiable: d/d(stored images) of the intra-class matching loss (squared differences)
///   of the decoded images, through a small f64 ConvNet on real MNIST images, agrees with central
///   finite differences within 1e-5.
///
/// Panics naming the law that fails.
pub fn check_parameterisation(parameterisation: &dyn Parameterisation) {
    let k = parameterisation.images_per_stored();
    assert!(k >= 1, "check_parameterisation: images_per_stored must be at least 1");
    for (c, side) in [(1, 28), (3, 32)] {
        let n = 3;
        let stored = Tensor::randn(0f64, 1.0, (n, c, side, side), &Device::Cpu).expect("f64");
        let decode = |x: &Tensor| parameterisation.decode(x).unwrap_or_else(|e| panic!("check_parameterisation: decode failed: {e}"));
        let decoded = decode(&stored);
        assert_eq!(decoded.dims(), [k * n, c, side, side], "check_parameterisation: decode's shape ({c}x{side}x{side})");
        assert_eq!(difference(&decoded, &decode(&stored)), 0.0, "check_parameterisation: decode is not deterministic");
        for i in 0..n {
            let alone = decode(&stored.i(i..i + 1).expect("image"));
            for j in 0..k {
                let error = difference(&decoded.i(j * n + i).expect("row"), &alone.i(j).expect("row"));
                assert!(error < 1e-12, "check_parameterisation: row {} is not image {j} of stored image {i} ({error:e})", j * n + i);
            }
        }
        let real = Tensor::randn(0f64, 1.0, (k * n, c, side, side), &Device::Cpu).expect("f64");
        let encoded = parameterisation.encode(&real).unwrap_or_else(|e| panic!("check_parameterisation: encode failed: {e}"));
        assert_eq!(encoded.dims(), [n, c, side, side], "check_parameterisation: encode's shape ({c}x{side}x{side})");
        assert_eq!(encoded.dtype(), DType::F64, "check_parameterisation: encode keeps the dtype");
    }
    let mut ctx = MnistContext::new().expect("the MNIST context");
    let mismatch = ctx
        .finite_difference_mismatch(&mut |ctx| {
            let (real, syn) = (ctx.real_class_grads()?, ctx.decoded_class_grads(parameterisation)?);
            let terms = real.iter().zip(&syn).map(|(r, s)| SquaredDiff.distance(r, s)).collect::<candle_core::Result<Vec<_>>>()?;
            Tensor::stack(&terms, 0)?.sum_all()
        })
        .unwrap_or_else(|e| panic!("check_parameterisation: the matching loss failed: {e}"));
    assert!(
        mismatch.error < TOLERANCE,
        "check_parameterisation: d(matching loss)/d(stored images) disagrees with central finite differences: {mismatch}. \
         decode must reach the stored images through differentiable tensor operations only"
    );
}

fn difference(a: &Tensor, b: &Tensor) -> f64 {
    (a - b).and_then(|d| d.abs()?.flatten_all()?.max(0)?.to_scalar::<f64>()).expect("same shapes, f64")
}
