use super::*;
use gradmatch_testkit::{check_distance_laws, gradient_set, gradient_values, tensor, value, DistanceLaws};
use proptest::prelude::*;

#[test]
fn hand_computed() {
    let a = [1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 3.0, 0.0, 0.0, 0.0, 0.0, 0.0];
    let b = [0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 4.0, 0.0, 0.0, 0.0, 0.0];
    let d = value(&Magnitude, &[tensor(&a, &[4, 3])], &[tensor(&b, &[4, 3])]);
    assert!((d - (2f64.sqrt() + 5.0)).abs() < 1e-12);
}

#[test]
fn laws() {
    check_distance_laws(&Magnitude, &DistanceLaws { symmetric: true, triangle: true, skips_vectors: true, ..DistanceLaws::UNIVERSAL });
}

proptest! {
    /// A metric per row: positive on distinct rows (the kit checks zero on equal ones).
    #[test]
    fn positive_on_distinct_rows(a in gradient_values(), b in gradient_values()) {
        prop_assume!(a[..36] != b[..36], "the rows (all but the bias) differ");
        prop_assert!(value(&Magnitude, &gradient_set(&a), &gradient_set(&b)) > 0.0);
    }
}
