//! Accuracies summarised with a 95 % confidence interval of their mean, and the difference of two
//! groups of them (paired, or Welch's unequal-variance interval). Quantiles come from `statrs`.

use serde::Serialize;
use statrs::distribution::{ContinuousCDF, StudentsT};

/// Two-sided level of every interval (and so the 5 % significance of every difference).
pub const LEVEL: f64 = 0.95;

/// Mean and population standard deviation (numpy's `std`, as the reference reports).
pub fn mean_std(values: &[f64]) -> (f64, f64) {
    if values.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
    (mean, var.sqrt())
}

/// Unbiased sample variance (n - 1); the caller guarantees two values or more.
fn sample_variance(values: &[f64]) -> f64 {
    let (_, std) = mean_std(values);
    let n = values.len() as f64;
    std * std * n / (n - 1.0)
}

/// The `LEVEL` quantile of Student's t with `df` degrees of freedom (two-sided).
pub fn t_quantile(df: f64) -> f64 {
    let t = StudentsT::new(0.0, 1.0, df).expect("degrees of freedom are positive");
    t.inverse_cdf(0.5 + LEVEL / 2.0)
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Interval {
    pub low: f64,
    pub high: f64,
}

impl Interval {
    /// `centre` +- t(df) x `se`; a single point when `se` is 0 (every value the same).
    fn student(centre: f64, se: f64, df: f64) -> Interval {
        let half = if se == 0.0 { 0.0 } else { t_quantile(df) * se };
        Interval { low: centre - half, high: centre + half }
    }

    pub fn contains(&self, x: f64) -> bool {
        self.low <= x && x <= self.high
    }

    fn scaled(self, k: f64) -> Interval {
        Interval { low: k * self.low, high: k * self.high }
    }
}

impl std::fmt::Display for Interval {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "[{:.2}, {:.2}]", self.low, self.high)
    }
}

/// What the values of an estimate come from: `networks` evaluation networks in all, trained on
/// `sets` image sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Over {
    pub sets: usize,
    pub networks: usize,
}

impl Over {
    /// `networks` networks all trained on one set.
    pub fn one_set(networks: usize) -> Over {
        Over { sets: 1, networks }
    }

    /// `sets` sets with one network each.
    pub fn one_network_each(sets: usize) -> Over {
        Over { sets, networks: sets }
    }

    /// Networks per set when every set has as many, else `None`.
    fn per_set(&self) -> Option<usize> {
        (self.sets > 0 && self.networks.is_multiple_of(self.sets)).then(|| self.networks / self.sets)
    }

    /// The count as a table cell says it: `n=2×5` (sets × networks per set), or `n=7 of 2 sets`.
    pub fn short(&self) -> String {
        match self.per_set() {
            Some(per_set) => format!("n={}×{per_set}", self.sets),
            None => format!("n={} of {} sets", self.networks, self.sets),
        }
    }
}

fn plural(n: usize, word: &str) -> String {
    format!("{n} {word}{}", if n == 1 { "" } else { "s" })
}

impl std::fmt::Display for Over {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.per_set() {
            Some(_) if self.sets == 1 => write!(f, "{} of 1 set", plural(self.networks, "network")),
            Some(per_set) => write!(f, "{} x {}", plural(self.sets, "set"), plural(per_set, "network")),
            None => write!(f, "{} of {}", plural(self.networks, "network"), plural(self.sets, "set")),
        }
    }
}

/// Count, mean, population std, and the 95 % Student t interval of the mean (`None` for one value:
/// one value gives no interval).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Estimate {
    pub count: usize,
    pub mean: f64,
    pub std: f64,
    pub ci95: Option<Interval>,
    pub over: Over,
}

impl Estimate {
    /// The estimate of `values` (at least one), which come from `over`.
    pub fn of(values: &[f64], over: Over) -> Estimate {
        let (mean, std) = mean_std(values);
        let n = values.len();
        let ci95 = (n >= 2).then(|| Interval::student(mean, (sample_variance(values) / n as f64).sqrt(), (n - 1) as f64));
        Estimate { count: n, mean, std, ci95, over }
    }

    /// The same estimate in other units (fractions to percent: 100).
    pub fn scaled(&self, k: f64) -> Estimate {
        Estimate { mean: k * self.mean, std: k * self.std, ci95: self.ci95.map(|i| i.scaled(k)), ..self.clone() }
    }

    /// The interval, or what stands in for it when there is none.
    pub fn interval_text(&self) -> String {
        match self.ci95 {
            Some(ci) => format!("95 % CI {ci}"),
            None => "no CI from 1 value".to_string(),
        }
    }

    /// `mean +- std<unit> (n=N over S sets x K networks, 95 % CI [low, high])`.
    fn describe(&self, unit: &str) -> String {
        format!("{:.2} +- {:.2}{unit} (n={} over {}, {})", self.mean, self.std, self.count, self.over, self.interval_text())
    }

    /// The estimate of fractions, said in percent.
    pub fn percent(&self) -> String {
        self.scaled(100.0).describe(" %")
    }
}

impl std::fmt::Display for Estimate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe(""))
    }
}

/// How two groups of accuracies were compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Pairing {
    /// Value i of one group and value i of the other share their evaluation seed: the interval is
    /// Student's over the n differences.
    Paired,
    /// Independent groups: Welch's unequal-variance interval (Welch-Satterthwaite degrees of freedom).
    Welch,
}

impl std::fmt::Display for Pairing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Pairing::Paired => "paired",
            Pairing::Welch => "Welch",
        })
    }
}

/// Mean of one group minus the other's, with its 95 % interval; `significant` (at 5 %, two-sided)
/// when the interval leaves out 0.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Difference {
    pub mean: f64,
    pub ci95: Interval,
    /// Degrees of freedom of the t quantile.
    pub df: f64,
    pub test: Pairing,
    pub significant: bool,
}

impl Difference {
    fn new(mean: f64, se: f64, df: f64, test: Pairing) -> Difference {
        let ci95 = Interval::student(mean, se, df);
        Difference { mean, ci95, df, test, significant: !ci95.contains(0.0) }
    }

    pub fn scaled(&self, k: f64) -> Difference {
        Difference { mean: k * self.mean, ci95: self.ci95.scaled(k), ..*self }
    }

    /// `a` minus `b` where value i of each shares its seed; `None` unless both have the same number
    /// of values, two or more.
    pub fn paired(a: &[f64], b: &[f64]) -> Option<Difference> {
        if a.len() != b.len() || a.len() < 2 {
            return None;
        }
        let d: Vec<f64> = a.iter().zip(b).map(|(x, y)| x - y).collect();
        let n = d.len() as f64;
        let (mean, _) = mean_std(&d);
        Some(Difference::new(mean, (sample_variance(&d) / n).sqrt(), n - 1.0, Pairing::Paired))
    }

    /// `a` minus `b`, independent groups (Welch); `None` unless each has two values or more.
    pub fn welch(a: &[f64], b: &[f64]) -> Option<Difference> {
        if a.len() < 2 || b.len() < 2 {
            return None;
        }
        let (na, nb) = (a.len() as f64, b.len() as f64);
        let (va, vb) = (sample_variance(a) / na, sample_variance(b) / nb);
        let se = (va + vb).sqrt();
        // Welch-Satterthwaite; when both groups are constant it is 0/0 and se is 0 (a point interval).
        let df = if se == 0.0 { na + nb - 2.0 } else { (va + vb).powi(2) / (va * va / (na - 1.0) + vb * vb / (nb - 1.0)) };
        Some(Difference::new(mean_std(a).0 - mean_std(b).0, se, df, Pairing::Welch))
    }
}

/// `+3.10 points, 95 % CI [+1.20, +5.00] (Welch), significant at 5 %`.
impl std::fmt::Display for Difference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let verdict = if self.significant { "significant at 5 %" } else { "not significant at 5 %" };
        write!(f, "{:+.2} points, 95 % CI [{:+.2}, {:+.2}] ({}), {verdict}", self.mean, self.ci95.low, self.ci95.high, self.test)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() < tol
    }

    #[test]
    fn population_std() {
        let (m, s) = mean_std(&[1.0, 2.0, 3.0, 4.0]);
        assert_eq!(m, 2.5);
        assert!((s - 1.25f64.sqrt()).abs() < 1e-12);
    }

    #[test]
    fn t_quantiles_match_the_printed_table() {
        // Two-sided 95 % column of a t table.
        for (df, t) in [(1.0, 12.706), (4.0, 2.776), (9.0, 2.262), (19.0, 2.093), (1000.0, 1.962)] {
            assert!(close(t_quantile(df), t, 5e-4), "t({df}) = {} instead of {t}", t_quantile(df));
        }
    }

    #[test]
    fn interval_of_five_values_by_hand() {
        // Mean 3, sample std sqrt(2.5), half width 2.776 * sqrt(2.5 / 5) = 1.963.
        let e = Estimate::of(&[1.0, 2.0, 3.0, 4.0, 5.0], Over::one_set(5));
        let ci = e.ci95.unwrap();
        assert_eq!((e.count, e.mean), (5, 3.0));
        assert!(close(e.std, 2f64.sqrt(), 1e-12), "std is numpy's (population)");
        assert!(close(ci.low, 3.0 - 1.963, 1e-3) && close(ci.high, 3.0 + 1.963, 1e-3), "{ci:?}");
        assert_eq!(e.to_string(), "3.00 +- 1.41 (n=5 over 5 networks of 1 set, 95 % CI [1.04, 4.96])");
        assert_eq!(e.scaled(10.0).ci95.unwrap().low, 10.0 * ci.low);
    }

    #[test]
    fn one_value_gives_no_interval_and_no_nan() {
        let e = Estimate::of(&[0.8], Over::one_set(1));
        assert_eq!(e.ci95, None);
        let text = e.percent();
        assert_eq!(text, "80.00 +- 0.00 % (n=1 over 1 network of 1 set, no CI from 1 value)");
        assert!(!text.contains("NaN"));
        assert!(serde_json::to_string(&e).unwrap().contains("\"ci95\":null"));
        assert_eq!(Difference::welch(&[0.8], &[0.7, 0.6]), None);
        assert_eq!(Difference::paired(&[0.8], &[0.7]), None);
    }

    #[test]
    fn over_says_sets_and_networks() {
        assert_eq!(Over { sets: 2, networks: 10 }.to_string(), "2 sets x 5 networks");
        assert_eq!(Over::one_set(10).to_string(), "10 networks of 1 set");
        assert_eq!(Over::one_network_each(5).to_string(), "5 sets x 1 network");
        assert_eq!(Over { sets: 2, networks: 7 }.to_string(), "7 networks of 2 sets");
        assert_eq!(
            (Over { sets: 2, networks: 10 }.short(), Over { sets: 2, networks: 7 }.short()),
            ("n=2×5".into(), "n=7 of 2 sets".into())
        );
    }

    /// Two groups whose networks share seeds: a large shared per-seed effect and a small constant
    /// gain. Pairing removes the shared effect; Welch cannot.
    #[test]
    fn paired_sees_a_gain_that_welch_drowns_in_seed_noise() {
        let seed_effect = [0.0, 4.0, -3.0, 6.0, -5.0, 2.0];
        let ours: Vec<f64> = seed_effect.iter().zip([1.1, 0.9, 1.0, 1.2, 0.8, 1.0]).map(|(s, g)| 80.0 + s + g).collect();
        let theirs: Vec<f64> = seed_effect.iter().map(|s| 80.0 + s).collect();
        let paired = Difference::paired(&ours, &theirs).unwrap();
        let welch = Difference::welch(&ours, &theirs).unwrap();
        assert_eq!((paired.test, welch.test), (Pairing::Paired, Pairing::Welch));
        assert!(close(paired.mean, 1.0, 1e-12) && close(welch.mean, 1.0, 1e-12));
        // Differences 1.1 .. 1.0: sample std 0.1414, half width 2.571 * 0.1414 / sqrt(6) = 0.1484.
        assert!(close(paired.ci95.high - paired.mean, 0.1484, 1e-3), "{paired:?}");
        assert_eq!(paired.df, 5.0);
        assert!(paired.significant && !welch.significant, "paired {paired}; welch {welch}");
    }

    #[test]
    fn welch_interval_by_hand() {
        // a: mean 2, variance 1 (n 3); b: mean 0, variance 4 (n 5). se^2 = 1/3 + 4/5 = 1.1333,
        // df = 1.1333^2 / ((1/3)^2/2 + (4/5)^2/4) = 5.959; t(5.959) = 2.451 (between the table's
        // t(5) = 2.571 and t(6) = 2.447, interpolated in 1/df); half width 2.451 x 1.0646 = 2.610.
        let w = Difference::welch(&[1.0, 2.0, 3.0], &[-2.0, -2.0, 0.0, 2.0, 2.0]).unwrap();
        assert!(close(w.df, 5.959, 1e-3), "{w:?}");
        assert!(close(w.ci95.low, 2.0 - 2.610, 3e-3) && close(w.ci95.high, 2.0 + 2.610, 3e-3), "{w:?}");
        assert!(!w.significant);
        assert_eq!(w.to_string(), "+2.00 points, 95 % CI [-0.61, +4.61] (Welch), not significant at 5 %");
    }

    #[test]
    fn constant_groups_give_a_point_interval() {
        let w = Difference::welch(&[0.9, 0.9], &[0.8, 0.8]).unwrap();
        assert_eq!(w.ci95, Interval { low: w.mean, high: w.mean });
        assert!(w.significant && w.df.is_finite());
        assert!(!Difference::paired(&[0.9, 0.8], &[0.9, 0.8]).unwrap().significant);
    }
}
