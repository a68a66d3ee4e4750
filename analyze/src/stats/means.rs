//! Per-user means: conversion rate and revenue per user (section 1).
//!
//! Each user contributes one value (0/1 for conversion, revenue with zeros
//! for non-buyers), so users are independent and the plain Welch t-test
//! applies. The sufficient statistics (n, Σy, Σy²) are what the SQL layer
//! returns, which is why the tests work from them and not from raw values.
//!
//! Two variance conventions coexist on purpose. [`MeanStats`] uses the N−1
//! denominator, which makes [`welch_diff`] agree with
//! `scipy.stats.ttest_ind(equal_var=False)`. GrowthBook's published
//! proportion figures use the binomial p(1−p) instead; [`SampleMoments::proportion`]
//! exists so those figures can be reproduced exactly. At canary sizes the
//! two differ by a factor N/(N−1) on the variance.

use super::{valid_alpha, Estimate};

/// Running sufficient statistics of one variant's per-user values.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct MeanStats {
    pub n: f64,
    pub sum: f64,
    pub sum_sq: f64,
}

impl MeanStats {
    /// Adds one user's value. Non-finite values are skipped: a NaN revenue
    /// is a missing value, and one infinity would poison every sum.
    pub fn push(&mut self, y: f64) {
        if !y.is_finite() {
            return;
        }
        self.n += 1.0;
        self.sum += y;
        self.sum_sq += y * y;
    }

    /// ȳ over all users; 0 when there are none (so an empty arm reads as
    /// "nothing observed" rather than NaN).
    pub fn mean(&self) -> f64 {
        if self.n > 0.0 {
            self.sum / self.n
        } else {
            0.0
        }
    }

    /// Sample variance with the N−1 denominator; 0 when n < 2. Clamped at 0
    /// because Σy² − (Σy)²/n can round to a tiny negative number.
    pub fn variance(&self) -> f64 {
        if self.n < 2.0 {
            return 0.0;
        }
        ((self.sum_sq - self.sum * self.sum / self.n) / (self.n - 1.0)).max(0.0)
    }

    /// The (n, mean, variance) triple the tests below work from.
    pub fn moments(&self) -> SampleMoments {
        SampleMoments {
            n: self.n,
            mean: self.mean(),
            variance: self.variance(),
        }
    }
}

/// Sample size, mean and per-observation variance of one variant.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SampleMoments {
    pub n: f64,
    pub mean: f64,
    pub variance: f64,
}

impl SampleMoments {
    /// A proportion `successes / n` with the binomial variance p(1−p), as
    /// GrowthBook's `ProportionStatistic` computes it. `n = 0` gives an
    /// empty sample (mean and variance 0).
    pub fn proportion(successes: f64, n: f64) -> Self {
        if n <= 0.0 || !n.is_finite() || !successes.is_finite() {
            return Self::default();
        }
        let p = (successes / n).clamp(0.0, 1.0);
        Self {
            n,
            mean: p,
            variance: p * (1.0 - p),
        }
    }

    /// Squared standard error of the mean, var/n.
    fn var_of_mean(&self) -> f64 {
        self.variance / self.n
    }
}

/// Both arms need two users for a sample variance and a Welch df.
fn usable(c: &SampleMoments, t: &SampleMoments) -> bool {
    let ok = |m: &SampleMoments| {
        m.n >= 2.0 && m.mean.is_finite() && m.variance.is_finite() && m.variance >= 0.0
    };
    ok(c) && ok(t)
}

/// Welch–Satterthwaite degrees of freedom for the two arms.
fn welch_df(c: &SampleMoments, t: &SampleMoments) -> f64 {
    let (vc, vt) = (c.var_of_mean(), t.var_of_mean());
    let denom = vt * vt / (t.n - 1.0) + vc * vc / (c.n - 1.0);
    (vt + vc).powi(2) / denom
}

/// Welch's test of Δ = ȳ_t − ȳ_c with a two-sided p from Student's t.
///
/// `None` when either arm has fewer than two users or both arms have zero
/// variance (no sampling error to test against).
pub fn welch_diff(control: &MeanStats, treatment: &MeanStats, alpha: f64) -> Option<Estimate> {
    welch_diff_moments(&control.moments(), &treatment.moments(), alpha)
}

/// [`welch_diff`] from moments, e.g. proportions with the binomial variance.
pub fn welch_diff_moments(
    control: &SampleMoments,
    treatment: &SampleMoments,
    alpha: f64,
) -> Option<Estimate> {
    if !usable(control, treatment) || !valid_alpha(alpha) {
        return None;
    }
    let se = (treatment.var_of_mean() + control.var_of_mean()).sqrt();
    let df = welch_df(control, treatment);
    Estimate::student_t(treatment.mean - control.mean, se, df, alpha)
}

/// Relative lift L = ȳ_t/ȳ_c − 1 with the delta-method variance
/// s_t²/(N_t ȳ_c²) + s_c² ȳ_t²/(N_c ȳ_c⁴).
///
/// The interval and p-value use Student's t on the Welch–Satterthwaite df
/// of the difference, as GrowthBook does: its published figures need it
/// (with a plain normal the fourth digit of the CI is off), and at canary
/// sizes t and normal coincide anyway.
///
/// `None` when ȳ_c = 0 (the lift is undefined, never divided by zero), and
/// in the cases where [`welch_diff`] is `None`. A negative baseline is
/// accepted, but the sign of the lift then reads backwards; callers with
/// signed metrics should prefer the difference.
pub fn relative_lift(control: &MeanStats, treatment: &MeanStats, alpha: f64) -> Option<Estimate> {
    relative_lift_moments(&control.moments(), &treatment.moments(), alpha)
}

/// [`relative_lift`] from moments, e.g. proportions with the binomial variance.
pub fn relative_lift_moments(
    control: &SampleMoments,
    treatment: &SampleMoments,
    alpha: f64,
) -> Option<Estimate> {
    if !usable(control, treatment) || !valid_alpha(alpha) || control.mean == 0.0 {
        return None;
    }
    let (mc, mt) = (control.mean, treatment.mean);
    let var = treatment.var_of_mean() / (mc * mc) + control.var_of_mean() * mt * mt / mc.powi(4);
    let df = welch_df(control, treatment);
    Estimate::student_t(mt / mc - 1.0, var.sqrt(), df, alpha)
}

#[cfg(test)]
mod tests {
    use super::super::assert_fig;
    use super::*;

    fn from_values(values: &[f64]) -> MeanStats {
        let mut s = MeanStats::default();
        values.iter().for_each(|&v| s.push(v));
        s
    }

    /// GrowthBook gbstats `tests/frequentist/test_tests.py`: sufficient
    /// statistics (sum, sum of squares, n).
    fn growthbook_arms() -> (MeanStats, MeanStats) {
        let a = MeanStats {
            n: 3407.0,
            sum: 1396.87,
            sum_sq: 52377.9767,
        };
        let b = MeanStats {
            n: 3461.0,
            sum: 2422.7,
            sum_sq: 134_698.29,
        };
        (a, b)
    }

    #[test]
    fn growthbook_absolute_difference() {
        let (a, b) = growthbook_arms();
        let e = welch_diff(&a, &b, 0.05).unwrap();
        assert_fig(e.estimate, "0.29", "delta");
        assert_fig(e.se, "0.12478", "se");
        assert_fig(e.ci_low, "0.04538", "ci low");
        assert_fig(e.ci_high, "0.53462", "ci high");
        assert_fig(e.p_value, "0.02016", "p");
    }

    #[test]
    fn growthbook_relative_lift() {
        let (a, b) = growthbook_arms();
        let e = relative_lift(&a, &b, 0.05).unwrap();
        assert_fig(e.estimate, "0.70732", "lift");
        assert_fig(e.se, "0.37879", "se");
        assert_fig(e.ci_low, "-0.03526", "ci low");
        assert_fig(e.ci_high, "1.44989", "ci high");
        assert_fig(e.p_value, "0.06191", "p");
    }

    #[test]
    fn growthbook_proportions_relative() {
        let c = SampleMoments::proportion(14.0, 28.0);
        let t = SampleMoments::proportion(16.0, 30.0);
        let e = relative_lift_moments(&c, &t, 0.05).unwrap();
        assert_fig(e.estimate, "0.06667", "lift");
        assert_fig(e.se, "0.2717", "se");
        assert_fig(e.ci_low, "-0.47767", "ci low");
        assert_fig(e.ci_high, "0.61101", "ci high");
        assert_fig(e.p_value, "0.80707", "p");
    }

    #[test]
    fn matches_scipy_welch_from_raw_values() {
        // scipy.stats.ttest_ind([2,4,6,8,10], [1,2,3,4,5], equal_var=False):
        // t 1.8973665961, df 5.8823529412, p 0.1075311949,
        // CI of the difference (-0.8877416437, 6.8877416437).
        let c = from_values(&[1.0, 2.0, 3.0, 4.0, 5.0]);
        let t = from_values(&[2.0, 4.0, 6.0, 8.0, 10.0]);
        let e = welch_diff(&c, &t, 0.05).unwrap();
        assert_fig(e.estimate, "3.0", "delta");
        assert_fig(e.estimate / e.se, "1.8973665961", "t");
        assert_fig(e.p_value, "0.1075311949", "p");
        assert_fig(e.ci_low, "-0.8877416437", "ci low");
        assert_fig(e.ci_high, "6.8877416437", "ci high");
        assert_fig(welch_df(&c.moments(), &t.moments()), "5.8823529412", "df");
    }

    #[test]
    fn running_moments() {
        let s = from_values(&[1.0, f64::NAN, 2.0, 3.0, f64::INFINITY]);
        assert_eq!(s.n, 3.0);
        assert_eq!(s.mean(), 2.0);
        assert_eq!(s.variance(), 1.0);
        assert_eq!(MeanStats::default().mean(), 0.0);
        assert_eq!(from_values(&[4.0]).variance(), 0.0);
    }

    #[test]
    fn degenerate_arms_give_none() {
        let empty = MeanStats::default();
        let one = from_values(&[1.0]);
        let flat = from_values(&[1.0, 1.0, 1.0]);
        let zeros = from_values(&[0.0, 0.0, 0.0]);
        let varied = from_values(&[1.0, 2.0, 3.0]);
        assert!(welch_diff(&empty, &varied, 0.05).is_none());
        assert!(welch_diff(&one, &varied, 0.05).is_none());
        assert!(welch_diff(&flat, &flat, 0.05).is_none());
        // One flat arm still leaves sampling error in the other.
        assert!(welch_diff(&flat, &varied, 0.05).is_some());
        // Zero baseline: the lift is undefined.
        assert!(relative_lift(&zeros, &varied, 0.05).is_none());
        assert!(relative_lift_moments(
            &SampleMoments::proportion(0.0, 100.0),
            &SampleMoments::proportion(3.0, 100.0),
            0.05
        )
        .is_none());
        assert_eq!(
            SampleMoments::proportion(3.0, 0.0),
            SampleMoments::default()
        );
    }
}
