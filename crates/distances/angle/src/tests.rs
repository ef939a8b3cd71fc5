use super::*;
use gradmatch_testkit::{check_distance_laws, gradient_set, tensor, value, Bound, DistanceLaws};

#[test]
fn hand_computed() {
    let d = |a: &[f64], b: &[f64]| value(&Angle, &[tensor(a, &[1, 2])], &[tensor(b, &[1, 2])]);
    assert!((d(&[1.0, 0.0], &[0.0, 1.0]) - 1.0).abs() < 1e-12);
    assert!((d(&[1.0, 0.0], &[-2.0, 0.0]) - 2.0).abs() < 1e-12);
}

#[test]
fn zero_rows_have_cosine_zero() {
    // torch's eps guard: 1 - 0 per row, for the 6 rows of a gradient set.
    let zeros = gradient_set(&[0.0; 39]);
    assert_eq!(value(&Angle, &zeros, &zeros), 6.0);
}

#[test]
fn laws() {
    let laws = DistanceLaws {
        symmetric: true,
        scale_invariant: true,
        bound: Some(Bound::PerRow(2.0)),
        skips_vectors: true,
        ..DistanceLaws::UNIVERSAL
    };
    check_distance_laws(&Angle, &laws);
}
