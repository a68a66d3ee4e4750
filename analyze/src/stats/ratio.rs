//! Request-level ratio metrics over users (section 2): error rate Σe/Σn,
//! mean latency Σlatency/Σn, and F̂ inside the quantile intervals.
//!
//! Requests of one user are correlated (a broken client errors on every
//! call), so treating requests as independent understates the variance and
//! rolls back healthy canaries. The delta method over per-user sums keeps
//! the user as the unit of analysis. The margin test is the rollback rule
//! "canary error rate > k × baseline"; when errors are too sparse for the
//! normal approximation it hands over to the exact Poisson test.

use super::horizon::{sequential_poisson_margin_p, sequential_poisson_upper_bound, Horizon};
use super::poisson::{poisson_margin_p, poisson_ratio_upper_bound};
use super::{valid_alpha, Estimate};

/// Expected count below which the normal approximation is not trusted; the
/// same rule of thumb as for Pearson's χ².
const SPARSE_EXPECTED: f64 = 5.0;

/// Per-user sufficient statistics of a ratio metric: `x` is the numerator
/// (errors), `y` the denominator (requests) of one user.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RatioStats {
    pub n: f64,
    pub sum_x: f64,
    pub sum_y: f64,
    pub sum_xx: f64,
    pub sum_yy: f64,
    pub sum_xy: f64,
}

impl RatioStats {
    /// Adds one user. A pair with a non-finite member is skipped whole, so
    /// numerator and denominator always describe the same users.
    pub fn push(&mut self, x: f64, y: f64) {
        if !x.is_finite() || !y.is_finite() {
            return;
        }
        self.n += 1.0;
        self.sum_x += x;
        self.sum_y += y;
        self.sum_xx += x * x;
        self.sum_yy += y * y;
        self.sum_xy += x * y;
    }

    /// R = Σx/Σy; 0 when Σy = 0 (no requests means no observed errors).
    pub fn ratio(&self) -> f64 {
        if self.sum_y != 0.0 {
            self.sum_x / self.sum_y
        } else {
            0.0
        }
    }

    /// Delta-method Var(R) =
    /// (1/N)(σ_x²/μ_y² − 2μ_x σ_xy/μ_y³ + μ_x² σ_y²/μ_y⁴), with N−1
    /// denominators. 0 when N < 2 or Σy = 0, where it cannot be estimated;
    /// callers treat a zero variance as "no test possible".
    pub fn variance(&self) -> f64 {
        if self.n < 2.0 || self.sum_y == 0.0 {
            return 0.0;
        }
        let n = self.n;
        let (mx, my) = (self.sum_x / n, self.sum_y / n);
        let vx = (self.sum_xx - self.sum_x * mx) / (n - 1.0);
        let vy = (self.sum_yy - self.sum_y * my) / (n - 1.0);
        let cxy = (self.sum_xy - self.sum_x * my) / (n - 1.0);
        let v = vx / my.powi(2) - 2.0 * mx * cxy / my.powi(3) + mx * mx * vy / my.powi(4);
        // A quadratic form of a covariance matrix: negative only by rounding.
        (v / n).max(0.0)
    }

    /// Whether the delta method has something to work with.
    fn testable(&self) -> bool {
        self.n >= 2.0 && self.sum_y > 0.0
    }

    /// The numerator total as an event count for the exact tests.
    fn events(&self) -> u64 {
        self.sum_x.max(0.0).round() as u64
    }
}

/// Δ = R_t − R_c with SE = sqrt(Var_t + Var_c), normal two-sided test.
///
/// `None` when either arm has fewer than two users or no requests, or both
/// variances are zero.
pub fn ratio_diff(control: &RatioStats, treatment: &RatioStats, alpha: f64) -> Option<Estimate> {
    if !control.testable() || !treatment.testable() {
        return None;
    }
    let se = (control.variance() + treatment.variance()).sqrt();
    Estimate::normal(treatment.ratio() - control.ratio(), se, alpha)
}

/// R_t/R_c − 1 with Var ≈ Var_t/R_c² + R_t² Var_c/R_c⁴, normal two-sided.
///
/// `None` when R_c = 0 (a zero baseline has no relative change) and in the
/// cases where [`ratio_diff`] is `None`.
pub fn ratio_relative(
    control: &RatioStats,
    treatment: &RatioStats,
    alpha: f64,
) -> Option<Estimate> {
    if !control.testable() || !treatment.testable() {
        return None;
    }
    let (rc, rt) = (control.ratio(), treatment.ratio());
    if rc == 0.0 {
        return None;
    }
    let var = treatment.variance() / (rc * rc) + rt * rt * control.variance() / rc.powi(4);
    Estimate::normal(rt / rc - 1.0, var.sqrt(), alpha)
}

/// Result of the one-sided margin test H0: R_t ≤ k·R_c vs H1: R_t > k·R_c.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MarginTest {
    pub p_value: f64,
    /// True when the exact conditional Poisson test was used.
    pub exact: bool,
    /// The z statistic of the normal form; `None` on the exact path.
    pub z: Option<f64>,
}

/// Margin test of "canary error rate > k × baseline".
///
/// Uses z = (R_t − k R_c)/sqrt(Var_t + k² Var_c) unless errors are sparse:
/// the exact conditional test takes over when, given the E = e_t + e_c
/// observed errors, the count expected under H0 in either arm
/// (E·p0 and E·(1 − p0), p0 = k n_t/(k n_t + n_c)) is below 5, when the
/// baseline has no errors, or when the delta-method variance is unavailable
/// (fewer than two users, zero variance). The exact path rounds Σx to an
/// integer count, so it is meant for error counts, not latency sums.
///
/// An invalid margin (k not finite and positive) gives p = 1.
pub fn ratio_margin_test(control: &RatioStats, treatment: &RatioStats, k: f64) -> MarginTest {
    ratio_margin_test_at(control, treatment, k, 0.05, Horizon::Fixed)
}

/// [`ratio_margin_test`] under a [`Horizon`]: with `Sequential`, the normal form uses the
/// always-valid p-value and the sparse form the mixture over the conditional binomial; `alpha` is
/// the level the sequence is tuned for (unused by `Fixed`).
pub fn ratio_margin_test_at(
    control: &RatioStats,
    treatment: &RatioStats,
    k: f64,
    alpha: f64,
    horizon: Horizon,
) -> MarginTest {
    if !(k.is_finite() && k > 0.0) {
        return MarginTest {
            p_value: 1.0,
            exact: false,
            z: None,
        };
    }
    let (e_t, e_c) = (treatment.events(), control.events());
    let exact = || MarginTest {
        p_value: match horizon {
            Horizon::Fixed => poisson_margin_p(e_t, treatment.sum_y, e_c, control.sum_y, k),
            Horizon::Sequential { .. } => {
                sequential_poisson_margin_p(e_t, treatment.sum_y, e_c, control.sum_y, k)
            }
        },
        exact: true,
        z: None,
    };

    let weight_t = k * treatment.sum_y;
    let weight_sum = weight_t + control.sum_y;
    let p0 = if weight_sum > 0.0 {
        weight_t / weight_sum
    } else {
        0.0
    };
    let total = (e_t + e_c) as f64;
    let sparse = total * p0 < SPARSE_EXPECTED
        || total * (1.0 - p0) < SPARSE_EXPECTED
        || control.sum_x <= 0.0;
    if sparse || !control.testable() || !treatment.testable() {
        return exact();
    }
    let denom = (treatment.variance() + k * k * control.variance()).sqrt();
    if !(denom > 0.0 && denom.is_finite()) {
        return exact();
    }
    let d = treatment.ratio() - k * control.ratio();
    let z = d / denom;
    MarginTest {
        p_value: horizon.one_sided_p(d, denom, alpha),
        exact: false,
        z: Some(z),
    }
}

/// One-sided upper confidence bound (level 1 − alpha) of R_t/R_c.
///
/// With at least 5 errors in each arm this is Fieller's bound, the exact
/// inversion of the z form of the margin test: at the returned k,
/// (R_t − k R_c)/sqrt(Var_t + k² Var_c) = −z_{1−α}. So "upper bound below
/// the threshold" (PROMOTE) and "margin test significant" (ROLLBACK) are
/// read off the same statistic and cannot contradict each other. With
/// fewer errors it inverts the exact conditional test instead.
///
/// `None` when the bound is infinite or unknown: R_c = 0, a baseline not
/// significantly above zero, or no requests in an arm.
pub fn ratio_upper_bound(control: &RatioStats, treatment: &RatioStats, alpha: f64) -> Option<f64> {
    ratio_upper_bound_at(control, treatment, alpha, Horizon::Fixed)
}

/// [`ratio_upper_bound`] under a [`Horizon`] (anytime-valid with `Sequential`).
pub fn ratio_upper_bound_at(
    control: &RatioStats,
    treatment: &RatioStats,
    alpha: f64,
    horizon: Horizon,
) -> Option<f64> {
    if !valid_alpha(alpha) || control.ratio() <= 0.0 || treatment.sum_y <= 0.0 {
        return None;
    }
    let (e_t, e_c) = (treatment.events(), control.events());
    let exact = || match horizon {
        Horizon::Fixed => {
            poisson_ratio_upper_bound(e_t, treatment.sum_y, e_c, control.sum_y, alpha)
        }
        Horizon::Sequential { .. } => {
            sequential_poisson_upper_bound(e_t, treatment.sum_y, e_c, control.sum_y, alpha)
        }
    };
    let few = (e_t.min(e_c) as f64) < SPARSE_EXPECTED;
    if few || !control.testable() || !treatment.testable() {
        return exact();
    }
    let (vt, vc) = (treatment.variance(), control.variance());
    if vt <= 0.0 && vc <= 0.0 {
        return exact();
    }
    fieller_upper(
        treatment.ratio(),
        vt,
        control.ratio(),
        vc,
        horizon.one_sided_multiplier(alpha),
    )
}

/// Fieller's one-sided upper bound for the ratio a/b of two independent
/// normal estimates with variances `var_a`, `var_b`: the larger root of
/// (a − k b)² = z² (var_a + k² var_b).
///
/// `None` when b is not significantly different from zero at this z
/// (b² ≤ z² var_b): the confidence set is then unbounded.
pub fn fieller_upper(a: f64, var_a: f64, b: f64, var_b: f64, z: f64) -> Option<f64> {
    if ![a, var_a, b, var_b, z].iter().all(|v| v.is_finite()) || var_a < 0.0 || var_b < 0.0 {
        return None;
    }
    let z2 = z * z;
    let lead = b * b - z2 * var_b;
    if lead <= 0.0 {
        return None;
    }
    let disc = z2 * (a * a * var_b + b * b * var_a - z2 * var_a * var_b);
    Some((a * b + disc.max(0.0).sqrt()) / lead)
}

#[cfg(test)]
mod tests {
    use super::super::assert_fig;
    use super::*;

    fn arm(users: &[(f64, f64)]) -> RatioStats {
        let mut s = RatioStats::default();
        users.iter().for_each(|&(x, y)| s.push(x, y));
        s
    }

    // Reference values computed with numpy (ddof = 1) from these users.
    fn control() -> RatioStats {
        arm(&[
            (0.0, 10.0),
            (1.0, 12.0),
            (0.0, 8.0),
            (2.0, 20.0),
            (0.0, 5.0),
            (1.0, 9.0),
            (3.0, 30.0),
            (0.0, 7.0),
        ])
    }

    fn treatment() -> RatioStats {
        arm(&[
            (1.0, 11.0),
            (2.0, 9.0),
            (0.0, 10.0),
            (4.0, 25.0),
            (1.0, 6.0),
            (0.0, 12.0),
            (2.0, 14.0),
        ])
    }

    #[test]
    fn delta_method_variance_matches_numpy() {
        let (c, t) = (control(), treatment());
        assert_fig(c.ratio(), "0.06930693069", "R_c");
        assert_fig(c.variance(), "0.0002843183904", "Var R_c");
        assert_fig(t.ratio(), "0.1149425287", "R_t");
        assert_fig(t.variance(), "0.0008853181752", "Var R_t");
    }

    #[test]
    fn difference_and_relative() {
        let d = ratio_diff(&control(), &treatment(), 0.05).unwrap();
        assert_fig(d.estimate, "0.04563559804", "diff");
        assert_fig(d.se, "0.03419994979", "se");
        assert_fig(d.ci_low, "-0.02139507182", "ci low");
        assert_fig(d.p_value, "0.1820806055", "p");
        let r = ratio_relative(&control(), &treatment(), 0.05).unwrap();
        assert_fig(r.estimate, "0.6584564860", "lift");
        assert_fig(r.se, "0.5891611045", "se");
        assert_fig(r.p_value, "0.2637305906", "p");
    }

    #[test]
    fn margin_test_normal_form() {
        // 7 vs 10 errors, k = 1.2: expected counts under H0 ≈ 8.4 / 8.6.
        let m = ratio_margin_test(&control(), &treatment(), 1.2);
        assert!(!m.exact);
        assert_fig(m.z.unwrap(), "0.8830475003", "z");
        assert_fig(m.p_value, "0.1886053039", "p");
    }

    #[test]
    fn margin_test_goes_exact_when_sparse() {
        // Expected errors under H0 in the control arm: 17·101/(2·87+101) ≈ 6.2,
        // in treatment ≈ 10.8; with k = 10 control's share drops below 5.
        let (c, t) = (control(), treatment());
        let m = ratio_margin_test(&c, &t, 10.0);
        assert!(m.exact && m.z.is_none());
        assert_eq!(m.p_value, poisson_margin_p(10, 87.0, 7, 101.0, 10.0));
        assert!(!ratio_margin_test(&c, &t, 2.0).exact);
    }

    #[test]
    fn margin_test_zero_baseline_is_exact() {
        let c = arm(&[(0.0, 100.0), (0.0, 100.0), (0.0, 100.0)]);
        let t = arm(&[(3.0, 100.0), (3.0, 100.0), (2.0, 100.0)]);
        let m = ratio_margin_test(&c, &t, 2.0);
        assert!(m.exact);
        // Given 8 errors, each lands in treatment with p0 = 2/3: (2/3)^8.
        assert_fig(m.p_value, "0.03901844231", "p");
        // No errors anywhere: nothing to reject.
        assert_eq!(ratio_margin_test(&c, &c, 2.0).p_value, 1.0);
    }

    #[test]
    fn margin_test_degenerate_inputs() {
        let empty = RatioStats::default();
        let m = ratio_margin_test(&empty, &empty, 2.0);
        assert_eq!(m.p_value, 1.0);
        assert_eq!(
            ratio_margin_test(&control(), &treatment(), 0.0).p_value,
            1.0
        );
        assert_eq!(
            ratio_margin_test(&control(), &treatment(), f64::NAN).p_value,
            1.0
        );
        assert!(ratio_diff(&empty, &treatment(), 0.05).is_none());
        let zero = arm(&[(0.0, 5.0), (0.0, 6.0)]);
        assert!(ratio_relative(&zero, &treatment(), 0.05).is_none());
        assert_eq!(empty.ratio(), 0.0);
        assert_eq!(empty.variance(), 0.0);
    }

    #[test]
    fn fieller_bound_inverts_the_margin_z() {
        // Enough errors in both arms for the normal form.
        let c = arm(&[(5.0, 100.0), (7.0, 120.0), (4.0, 90.0), (6.0, 110.0)]);
        let t = arm(&[(9.0, 100.0), (12.0, 105.0), (8.0, 95.0), (10.0, 90.0)]);
        let ub = ratio_upper_bound(&c, &t, 0.05).unwrap();
        let z = (t.ratio() - ub * c.ratio()) / (t.variance() + ub * ub * c.variance()).sqrt();
        assert_fig(z, "-1.644853627", "z at the bound");
        assert!(ub > t.ratio() / c.ratio());
        // Both orderings of the same statistic agree at the bound.
        let p = ratio_margin_test(&c, &t, ub).p_value;
        assert_fig(p, "0.9500", "margin p at the bound");
    }

    #[test]
    fn fieller_degenerate_cases() {
        assert!(fieller_upper(1.0, 0.1, 0.0, 0.1, 1.64).is_none());
        assert!(fieller_upper(1.0, 0.1, 0.1, 1.0, 1.64).is_none());
        assert!(fieller_upper(1.0, f64::NAN, 1.0, 0.1, 1.64).is_none());
        // No uncertainty at all: the bound is the ratio itself.
        assert_eq!(fieller_upper(3.0, 0.0, 2.0, 0.0, 1.64), Some(1.5));
    }

    #[test]
    fn upper_bound_sparse_and_zero_baseline() {
        let zero = arm(&[(0.0, 100.0), (0.0, 100.0)]);
        assert!(ratio_upper_bound(&zero, &treatment(), 0.05).is_none());
        // Few errors: falls back to the exact bound.
        let c = arm(&[(1.0, 500.0), (1.0, 500.0)]);
        let t = arm(&[(1.0, 500.0), (0.0, 500.0)]);
        let ub = ratio_upper_bound(&c, &t, 0.05).unwrap();
        assert_eq!(
            Some(ub),
            poisson_ratio_upper_bound(1, 1000.0, 2, 1000.0, 0.05)
        );
    }
}
