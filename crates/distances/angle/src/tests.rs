use super::*;
use candle_core::{Device, Var};
use proptest::prelude::*;

fn t(v: &[f64], shape: &[usize]) -> Tensor {
    Tensor::from_slice(v, shape, &Device::Cpu).unwrap()
}

fn d(a: &[Tensor], b: &[Tensor]) -> f64 {
    Angle.distance(a, b).unwrap().to_scalar::<f64>().unwrap()
}

/// A conv-like 4-D gradient (3, 2, 2, 2), a linear 2-D one (3, 4) and a 1-D bias (3).
fn grads(v: &[f64]) -> Vec<Tensor> {
    vec![t(&v[..24], &[3, 2, 2, 2]), t(&v[24..36], &[3, 4]), t(&v[36..39], &[3])]
}

fn values() -> impl Strategy<Value = Vec<f64>> {
    prop::collection::vec(-5f64..5.0, 39)
}

#[test]
fn hand_computed() {
    assert!((d(&[t(&[1.0, 0.0], &[1, 2])], &[t(&[0.0, 1.0], &[1, 2])]) - 1.0).abs() < 1e-12);
    assert!((d(&[t(&[1.0, 0.0], &[1, 2])], &[t(&[-2.0, 0.0], &[1, 2])]) - 2.0).abs() < 1e-12);
}

proptest! {
    #[test]
    fn zero_for_positive_multiples(a in values(), k in 0.01f64..100.0) {
        let b: Vec<f64> = a.iter().map(|x| x * k).collect();
        prop_assert!(d(&grads(&a), &grads(&b)).abs() < 1e-9);
    }

    #[test]
    fn bounded_symmetric_and_scale_invariant(a in values(), b in values(), k in 0.01f64..100.0) {
        let ab = d(&grads(&a), &grads(&b));
        // 6 rows (3 conv + 3 linear), each in [0, 2]; the bias contributes nothing.
        prop_assert!((-1e-12..=12.0 + 1e-12).contains(&ab));
        prop_assert!((ab - d(&grads(&b), &grads(&a))).abs() < 1e-9);
        let ka: Vec<f64> = a.iter().map(|x| x * k).collect();
        prop_assert!((ab - d(&grads(&ka), &grads(&b))).abs() < 1e-9);
    }

    #[test]
    fn one_dimensional_tensors_contribute_nothing(a in values(), b in values()) {
        let (mut ga, mut gb) = (grads(&a), grads(&b));
        let with = d(&ga, &gb);
        ga.pop();
        gb.pop();
        prop_assert!((with - d(&ga, &gb)).abs() < 1e-12);
    }

    #[test]
    fn finite_with_finite_gradient_for_zero_rows(a in values()) {
        let zeros = vec![0.0; 39];
        let syn: Vec<Var> = grads(&zeros).iter().map(|g| Var::from_tensor(g).unwrap()).collect();
        let syn_t: Vec<Tensor> = syn.iter().map(|v| v.as_tensor().clone()).collect();
        let value = Angle.distance(&grads(&a), &syn_t).unwrap();
        prop_assert!(value.to_scalar::<f64>().unwrap().is_finite());
        let g = value.backward().unwrap();
        for v in &syn {
            if let Some(g) = g.get(v.as_tensor()) {
                prop_assert!(g.flatten_all().unwrap().to_vec1::<f64>().unwrap().iter().all(|x| x.is_finite()));
            }
        }
        prop_assert_eq!(d(&grads(&zeros), &grads(&zeros)), 6.0, "zero rows have cos 0");
    }
}
