//! The laws of a distance as property tests on small f64 gradient sets shaped like a tiny network's.

use candle_core::{Device, Result, Tensor, Var};
use gradmatch_core::Distance;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseResult, TestRng, TestRunner};
use std::fmt;

/// The laws a distance claims beyond the universal ones (see [`DistanceLaws::UNIVERSAL`]); `check_distance` tests
/// exactly these, so a claim is a promise to plug-in users (e.g. a bound the runner may rely on).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DistanceLaws {
    /// D(a, b) = D(b, a).
    pub symmetric: bool,
    /// D(ka, b) = D(a, kb) = D(a, b) and D(a, ka) = 0 for every k > 0: only directions matter.
    pub scale_invariant: bool,
    /// An upper bound on the value (the lower one, 0, is universal).
    pub bound: Option<Bound>,
    /// D(a, c) <= D(a, b) + D(b, c).
    pub triangle: bool,
    /// 1-D tensors (biases, norm parameters) contribute nothing, as in the paper's per-row view.
    pub skips_vectors: bool,
}

/// Where a distance's value lies.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Bound {
    /// In [0, c * rows], rows of the per-row view (`gradmatch_core::as_rows`: a 4-D (out, in, h, w)
    /// tensor has `out` rows, a 2-D one its rows, a 1-D one none): for sums of per-row terms.
    PerRow(f64),
    /// In [0, c] whatever the number of tensors and rows.
    Total(f64),
}

impl Bound {
    /// The upper end on a gradient set of [`gradient_set`].
    fn cap(self) -> f64 {
        match self {
            Bound::PerRow(c) => c * ROWS,
            Bound::Total(c) => c,
        }
    }
}

/// Only the laws every distance obeys, always checked: the value is a finite non-negative scalar;
/// it is 0 (|D| < 1e-9), with a finite gradient, on identical inputs; value and gradient stay finite
/// when the synthetic side or the real side is all zeros (dead units give zero gradient rows).
impl DistanceLaws {
    pub const UNIVERSAL: DistanceLaws =
        DistanceLaws { symmetric: false, scale_invariant: false, bound: None, triangle: false, skips_vectors: false };
}

/// Values in one gradient set of [`gradient_set`].
const LEN: usize = 39;
/// Start of the 1-D bias in a gradient set.
const BIAS: usize = 36;
/// Rows of the per-row view of a gradient set: 3 conv rows and 3 linear rows.
const ROWS: f64 = 6.0;
/// Absolute tolerance, relative to 1 + |D| where values are compared.
const TOL: f64 = 1e-9;
/// Cases per law: enough to hit sign patterns and near-parallel pairs, fast on two cores.
const CASES: u32 = 64;

/// An f64 CPU tensor: the dtype the checks use, so that finite differences are meaningful.
pub fn tensor(values: &[f64], shape: &[usize]) -> Tensor {
    Tensor::from_slice(values, shape, &Device::Cpu).expect("as many values as the shape holds")
}

/// The gradients of a tiny network from 39 values: a conv weight (3, 2, 2, 2), a linear weight
/// (3, 4) and a bias (3), in that order.
pub fn gradient_set(values: &[f64]) -> Vec<Tensor> {
    vec![tensor(&values[..24], &[3, 2, 2, 2]), tensor(&values[24..BIAS], &[3, 4]), tensor(&values[BIAS..LEN], &[3])]
}

/// The 39 values of a [`gradient_set`], each in [-5, 5).
pub fn gradient_values() -> impl Strategy<Value = Vec<f64>> {
    prop::collection::vec(-5f64..5.0, LEN)
}

/// D(real, syn) as a number; panics with the error if the distance fails or returns no f64 scalar.
pub fn value(distance: &dyn Distance, real: &[Tensor], syn: &[Tensor]) -> f64 {
    match distance.distance(real, syn).and_then(|d| d.to_scalar::<f64>()) {
        Ok(v) => v,
        Err(e) => panic!("the distance must return an f64 scalar: {e}"),
    }
}

/// D(a, b) = sum of squared differences over every tensor: smooth, so the kit differentiates levels
/// with it, and a reference for level tests that compute by hand.
#[derive(Debug, Default, Clone, Copy)]
pub struct SquaredDiff;

impl Distance for SquaredDiff {
    fn distance(&self, real: &[Tensor], syn: &[Tensor]) -> Result<Tensor> {
        let terms = real.iter().zip(syn).map(|(a, b)| (a - b)?.sqr()?.sum_all()).collect::<Result<Vec<_>>>()?;
        Tensor::stack(&terms, 0)?.sum_all()
    }
}

/// The universal laws and those `laws` claims, then the matching gradient through a network on real
/// MNIST images (`check_matching_gradient`): what `crates/plugins/tests/every_plugin.rs` runs on
/// every registered distance.
#[cfg(feature = "networks")]
pub fn check_distance(distance: &dyn Distance, laws: &DistanceLaws) {
    check_distance_laws(distance, laws);
    crate::check_matching_gradient(distance);
}

/// Runs the universal laws and those `laws` claims as property tests (64 cases each, fixed seed),
/// on gradient sets alone: no network, no data. Panics naming the first law that fails and a
/// minimal input.
pub fn check_distance_laws(distance: &dyn Distance, laws: &DistanceLaws) {
    let samples = (gradient_values(), gradient_values(), gradient_values(), 0.01f64..100.0).prop_map(|(a, b, c, k)| Sample { a, b, c, k });
    for (name, law) in claimed(laws) {
        // A fixed seed and no persistence file: the same cases on every run and every machine.
        let config = Config { cases: CASES, failure_persistence: None, ..Config::default() };
        let mut runner = TestRunner::new_with_rng(config, TestRng::deterministic_rng(RngAlgorithm::ChaCha));
        if let Err(e) = runner.run(&samples, |s| law(distance, &s, laws)) {
            panic!("check_distance: law `{name}` fails on gradient sets a, b, c (conv (3,2,2,2), linear (3,4), bias (3)) and k > 0: {e}");
        }
    }
}

/// One generated case: three gradient sets' values and a positive factor.
#[derive(Clone)]
struct Sample {
    a: Vec<f64>,
    b: Vec<f64>,
    c: Vec<f64>,
    k: f64,
}

/// One line per field: proptest's pretty form would print 117 lines of numbers.
impl fmt::Debug for Sample {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "\n  a = {:?}\n  b = {:?}\n  c = {:?}\n  k = {}", self.a, self.b, self.c, self.k)
    }
}

/// A law: Ok, or the failure proptest reports. `laws` carries the claimed bound.
type Law = fn(&dyn Distance, &Sample, &DistanceLaws) -> TestCaseResult;

/// The universal laws, then those `laws` claims, each with the name a failure reports.
fn claimed(laws: &DistanceLaws) -> impl Iterator<Item = (&'static str, Law)> {
    let table: [(bool, &'static str, Law); 8] = [
        (true, "finite non-negative scalar", non_negative),
        (true, "zero, with a finite gradient, on identical inputs", zero_on_identical),
        (true, "finite value and gradient when one side is all zeros", finite_with_zero_side),
        (laws.symmetric, "symmetric", symmetric),
        (laws.scale_invariant, "scale_invariant", scale_invariant),
        (laws.bound.is_some(), "bound", bounded),
        (laws.triangle, "triangle", triangle),
        (laws.skips_vectors, "skips_vectors", skips_vectors),
    ];
    table.into_iter().filter(|law| law.0).map(|(_, name, law)| (name, law))
}

/// `|x - y| <= 1e-9 (1 + max(|x|, |y|))`.
fn close(x: f64, y: f64) -> bool {
    (x - y).abs() <= TOL * (1.0 + x.abs().max(y.abs()))
}

fn scaled(v: &[f64], k: f64) -> Vec<Tensor> {
    gradient_set(&v.iter().map(|x| x * k).collect::<Vec<_>>())
}

/// D(real, syn) and whether its gradient with respect to `syn` is finite everywhere.
fn value_and_gradient(distance: &dyn Distance, real: &[Tensor], syn: &[Tensor]) -> (f64, bool) {
    let vars: Vec<Var> = syn.iter().map(|t| Var::from_tensor(t).expect("a copy")).collect();
    let syn: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
    let d = distance.distance(real, &syn).unwrap_or_else(|e| panic!("the distance failed: {e}"));
    let grads = d.backward().unwrap_or_else(|e| panic!("no backward pass through the distance: {e}"));
    let finite = |g: &Tensor| g.flatten_all().and_then(|g| g.to_vec1::<f64>()).is_ok_and(|g| g.iter().all(|x| x.is_finite()));
    (d.to_scalar::<f64>().unwrap_or(f64::NAN), vars.iter().filter_map(|v| grads.get(v)).all(finite))
}

fn non_negative(d: &dyn Distance, s: &Sample, _: &DistanceLaws) -> TestCaseResult {
    let v = value(d, &gradient_set(&s.a), &gradient_set(&s.b));
    prop_assert!(v.is_finite() && v >= -TOL, "D(a, b) = {v}");
    Ok(())
}

fn zero_on_identical(d: &dyn Distance, s: &Sample, _: &DistanceLaws) -> TestCaseResult {
    let (v, finite) = value_and_gradient(d, &gradient_set(&s.a), &gradient_set(&s.a));
    prop_assert!(v.abs() < TOL && finite, "D(a, a) = {v}, gradient finite: {finite}");
    Ok(())
}

fn finite_with_zero_side(d: &dyn Distance, s: &Sample, _: &DistanceLaws) -> TestCaseResult {
    let (zeros, a) = (gradient_set(&[0.0; LEN]), gradient_set(&s.a));
    for (real, syn, side) in [(&zeros, &a, "real"), (&a, &zeros, "synthetic")] {
        let (v, finite) = value_and_gradient(d, real, syn);
        prop_assert!(v.is_finite() && finite, "all-zero {side} side: D = {v}, gradient finite: {finite}");
    }
    Ok(())
}

fn symmetric(d: &dyn Distance, s: &Sample, _: &DistanceLaws) -> TestCaseResult {
    let (a, b) = (gradient_set(&s.a), gradient_set(&s.b));
    let (ab, ba) = (value(d, &a, &b), value(d, &b, &a));
    prop_assert!(close(ab, ba), "D(a, b) = {ab} but D(b, a) = {ba}");
    Ok(())
}

fn scale_invariant(d: &dyn Distance, s: &Sample, _: &DistanceLaws) -> TestCaseResult {
    let (a, b, ka, kb) = (gradient_set(&s.a), gradient_set(&s.b), scaled(&s.a, s.k), scaled(&s.b, s.k));
    let (ab, kab, akb, aka) = (value(d, &a, &b), value(d, &ka, &b), value(d, &a, &kb), value(d, &a, &ka));
    prop_assert!(close(ab, kab) && close(ab, akb), "D(a, b) = {ab}, D(ka, b) = {kab}, D(a, kb) = {akb}");
    prop_assert!(aka.abs() < TOL, "D(a, ka) = {aka}");
    Ok(())
}

fn triangle(d: &dyn Distance, s: &Sample, _: &DistanceLaws) -> TestCaseResult {
    let (a, b, c) = (gradient_set(&s.a), gradient_set(&s.b), gradient_set(&s.c));
    let (ac, ab, bc) = (value(d, &a, &c), value(d, &a, &b), value(d, &b, &c));
    prop_assert!(ac <= ab + bc + TOL * (1.0 + ac), "D(a, c) = {ac} > D(a, b) + D(b, c) = {ab} + {bc}");
    Ok(())
}

/// D(a, b) is unchanged when both biases are replaced by c's.
fn skips_vectors(d: &dyn Distance, s: &Sample, _: &DistanceLaws) -> TestCaseResult {
    let with_c_bias = |v: &[f64]| gradient_set(&[&v[..BIAS], &s.c[BIAS..]].concat());
    let (ab, swapped) = (value(d, &gradient_set(&s.a), &gradient_set(&s.b)), value(d, &with_c_bias(&s.a), &with_c_bias(&s.b)));
    prop_assert!(close(ab, swapped), "D(a, b) = {ab} but {swapped} once both biases are replaced by c's");
    Ok(())
}

fn bounded(d: &dyn Distance, s: &Sample, laws: &DistanceLaws) -> TestCaseResult {
    // Only run when a bound is claimed.
    let cap = laws.bound.map_or(f64::INFINITY, Bound::cap);
    let v = value(d, &gradient_set(&s.a), &gradient_set(&s.b));
    prop_assert!((-TOL..=cap + TOL * (1.0 + cap)).contains(&v), "D(a, b) = {v} outside [0, {cap}] ({ROWS} rows)");
    Ok(())
}
