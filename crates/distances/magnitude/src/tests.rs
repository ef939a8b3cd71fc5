use super::*;
use candle_core::{Device, Var};
use proptest::prelude::*;

fn rows(v: &[f64]) -> Vec<Tensor> {
    vec![Tensor::from_slice(v, (4, 3), &Device::Cpu).unwrap()]
}

fn d(a: &[f64], b: &[f64]) -> f64 {
    Magnitude.distance(&rows(a), &rows(b)).unwrap().to_scalar::<f64>().unwrap()
}

fn values() -> impl Strategy<Value = Vec<f64>> {
    prop::collection::vec(-5f64..5.0, 12)
}

#[test]
fn hand_computed() {
    let a = [1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 3.0, 0.0, 0.0, 0.0, 0.0, 0.0];
    let b = [0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 4.0, 0.0, 0.0, 0.0, 0.0];
    assert!((d(&a, &b) - (2f64.sqrt() + 5.0)).abs() < 1e-12);
}

proptest! {
    /// Per row a metric: zero iff equal, symmetric, triangle inequality (sums of row metrics too).
    #[test]
    fn is_a_metric(a in values(), b in values(), c in values()) {
        prop_assert_eq!(d(&a, &a), 0.0);
        if a != b {
            prop_assert!(d(&a, &b) > 0.0);
        }
        prop_assert!((d(&a, &b) - d(&b, &a)).abs() < 1e-12);
        prop_assert!(d(&a, &c) <= d(&a, &b) + d(&b, &c) + 1e-9);
    }

    /// Identical rows (dead units give zero rows on both sides) keep a finite gradient.
    #[test]
    fn finite_gradient_where_rows_coincide(a in values()) {
        let syn = Var::from_tensor(&rows(&a)[0]).unwrap();
        let value = Magnitude.distance(&rows(&a), &[syn.as_tensor().clone()]).unwrap();
        prop_assert_eq!(value.to_scalar::<f64>().unwrap(), 0.0);
        let g = value.backward().unwrap();
        let g = g.get(syn.as_tensor()).unwrap().flatten_all().unwrap().to_vec1::<f64>().unwrap();
        prop_assert!(g.iter().all(|x| x.is_finite()));
    }
}
