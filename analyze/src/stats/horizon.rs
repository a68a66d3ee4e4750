//! Fixed-horizon or anytime-valid: the one switch between `--method fixed` and `--method sequential`.
//!
//! A canary gate analyses the same experiment every few minutes. A fixed-horizon test re-run at
//! every look rejects a true null far more often than α (the simulation in `simulate` measures
//! by how much), so the gate's default is the confidence sequence of section 6. Every margin test,
//! upper bound and interval the verdict reads goes through a [`Horizon`], so the two methods differ
//! in exactly one place:
//! - normal statistics use the confidence-sequence multiplier instead of z, and the always-valid
//!   p-value instead of the normal tail;
//! - sparse error counts, where the normal form fails, use a mixture e-value over the conditional
//!   binomial of the exact Poisson test (uniform prior on the treatment's share of errors): under
//!   H0 its reciprocal is an anytime-valid p-value by Ville's inequality, as errors accrue.

use super::dist::{normal_quantile, normal_sf};
use super::sequential::{cs_multiplier, sequential_p_value};
use super::valid_alpha;

/// How a test treats repeated looks.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Horizon {
    /// One look, classic tests.
    Fixed,
    /// Any number of looks: confidence sequences with `n` units (users, both arms) so far and the
    /// tuning `n_star` (the sample size at which the sequence is tightest).
    Sequential { n: f64, n_star: f64 },
}

impl Horizon {
    /// The multiplier of SE for a one-sided bound at level 1 − alpha. A one-sided sequential
    /// bound is the two-sided sequence at level 2α: its boundary is symmetric, so crossing the
    /// upper side has probability (P(either) + P(both))/2 ≤ α + P(both)/2, and a path that crosses
    /// both sides of a sequence this wide is negligible.
    pub fn one_sided_multiplier(&self, alpha: f64) -> f64 {
        match *self {
            Horizon::Fixed => normal_quantile(1.0 - alpha),
            Horizon::Sequential { n, n_star } => cs_multiplier(n, n_star, (2.0 * alpha).min(0.5)),
        }
    }

    /// One-sided p-value of H1: the statistic `d` (estimate − margin) is above zero.
    pub fn one_sided_p(&self, d: f64, se: f64, alpha: f64) -> f64 {
        if d.is_nan() || se.is_nan() {
            return 1.0;
        }
        match *self {
            Horizon::Fixed => {
                if se > 0.0 {
                    normal_sf(d / se)
                } else if d > 0.0 {
                    0.0
                } else {
                    1.0
                }
            }
            // Half the two-sided always-valid p at level 2α: below α exactly when the one-sided
            // bound of `one_sided_multiplier` excludes zero.
            Horizon::Sequential { n, n_star } => {
                if d <= 0.0 {
                    1.0
                } else {
                    0.5 * sequential_p_value(d, se, n, n_star, (2.0 * alpha).min(0.5))
                }
            }
        }
    }

    /// The method's name as the report spells it.
    pub fn name(&self) -> &'static str {
        match self {
            Horizon::Fixed => "fixed",
            Horizon::Sequential { .. } => "sequential",
        }
    }
}

/// ln B(a, b).
fn ln_beta(a: f64, b: f64) -> f64 {
    statrs::function::gamma::ln_gamma(a) + statrs::function::gamma::ln_gamma(b)
        - statrs::function::gamma::ln_gamma(a + b)
}

/// ln of the mixture e-value for "the treatment's share of errors is p0", from `e_t` of
/// `e_t + e_c` errors: ∫ p^e_t (1−p)^e_c dp / (p0^e_t (1−p0)^e_c) with a uniform prior.
fn ln_mixture_e(e_t: u64, e_c: u64, p0: f64) -> f64 {
    let (et, ec) = (e_t as f64, e_c as f64);
    let ln_null = if et > 0.0 { et * p0.ln() } else { 0.0 }
        + if ec > 0.0 { ec * (1.0 - p0).ln() } else { 0.0 };
    ln_beta(et + 1.0, ec + 1.0) - ln_null
}

/// The null share of `poisson`, for arms that both have exposure (the mixture needs 0 < p0 < 1).
fn null_share(n_t: f64, n_c: f64, k: f64) -> Option<f64> {
    super::poisson::null_share(n_t, n_c, k).filter(|_| n_t > 0.0 && n_c > 0.0)
}

/// Anytime-valid one-sided p-value of H0: rate_t ≤ k·rate_c for sparse error counts (`e_t` errors
/// in `n_t` treatment requests, `e_c` in `n_c` baseline requests): 1/e of the mixture, and 1 when
/// the treatment's share of errors is not above its share under H0. Invalid input gives 1.
pub fn sequential_poisson_margin_p(e_t: u64, n_t: f64, e_c: u64, n_c: f64, k: f64) -> f64 {
    let Some(p0) = null_share(n_t, n_c, k) else {
        return 1.0;
    };
    let total = e_t.saturating_add(e_c);
    if total == 0 || (e_t as f64) <= p0 * total as f64 {
        return 1.0;
    }
    (-ln_mixture_e(e_t, e_c, p0)).exp().min(1.0)
}

/// Anytime-valid upper bound (level 1 − alpha) of rate_t/rate_c for sparse counts: the largest k
/// whose H0 "the ratio is at least k" the mixture does not reject. `None` when unbounded (no
/// baseline errors, no errors at all) or the input is invalid.
pub fn sequential_poisson_upper_bound(
    e_t: u64,
    n_t: f64,
    e_c: u64,
    n_c: f64,
    alpha: f64,
) -> Option<f64> {
    if !valid_alpha(alpha) || e_c == 0 || null_share(n_t, n_c, 1.0).is_none() {
        return None;
    }
    let threshold = (1.0 / alpha).ln();
    // Rejects "ratio ≥ k" when the observed share is below p0(k) and the e-value is large.
    let rejects = |k: f64| {
        let p0 = k * n_t / (k * n_t + n_c);
        let total = (e_t + e_c) as f64;
        (e_t as f64) < p0 * total && ln_mixture_e(e_t, e_c, p0) >= threshold
    };
    // The e-value grows without bound in k only if it exceeds 1/α at some finite k; search for
    // the crossing on a log scale.
    let (mut lo, mut hi) = (1e-6_f64.ln(), 1e6_f64.ln());
    if !rejects(hi.exp()) {
        return None;
    }
    if rejects(lo.exp()) {
        return Some(lo.exp());
    }
    for _ in 0..100 {
        let mid = 0.5 * (lo + hi);
        if rejects(mid.exp()) {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    Some(hi.exp())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::poisson::{poisson_margin_p, poisson_ratio_upper_bound};

    #[test]
    fn fixed_matches_the_normal_tail() {
        let p = Horizon::Fixed.one_sided_p(1.6448536, 1.0, 0.05);
        assert!((p - 0.05).abs() < 1e-6, "{p}");
        assert!((Horizon::Fixed.one_sided_multiplier(0.05) - 1.6448536).abs() < 1e-6);
    }

    #[test]
    fn sequential_is_wider_than_fixed_at_every_n() {
        for n in [10.0, 100.0, 1_000.0, 5_000.0, 100_000.0] {
            let h = Horizon::Sequential { n, n_star: 5000.0 };
            assert!(h.one_sided_multiplier(0.05) > Horizon::Fixed.one_sided_multiplier(0.05));
            assert!(h.one_sided_p(2.5, 1.0, 0.05) > Horizon::Fixed.one_sided_p(2.5, 1.0, 0.05));
            assert_eq!(h.one_sided_p(-1.0, 1.0, 0.05), 1.0);
        }
    }

    #[test]
    fn sparse_mixture_is_more_conservative_than_the_exact_test() {
        // 12 treatment errors in 5,000 requests against 3 in 95,000 baseline requests.
        let seq = sequential_poisson_margin_p(12, 5_000.0, 3, 95_000.0, 2.0);
        let exact = poisson_margin_p(12, 5_000.0, 3, 95_000.0, 2.0);
        assert!(seq > exact && seq < 0.001, "seq {seq}, exact {exact}");
        // Fewer errors than expected under H0: no evidence.
        assert_eq!(
            sequential_poisson_margin_p(0, 5_000.0, 30, 95_000.0, 2.0),
            1.0
        );
        assert_eq!(sequential_poisson_margin_p(1, 0.0, 3, 95_000.0, 2.0), 1.0);
    }

    #[test]
    fn sparse_upper_bound_is_above_the_fixed_one_and_brackets_the_estimate() {
        let seq = sequential_poisson_upper_bound(10, 5_000.0, 100, 95_000.0, 0.05).unwrap();
        let fixed = poisson_ratio_upper_bound(10, 5_000.0, 100, 95_000.0, 0.05).unwrap();
        let observed = (10.0 / 5_000.0) / (100.0 / 95_000.0);
        assert!(
            seq > fixed && fixed > observed,
            "seq {seq}, fixed {fixed}, observed {observed}"
        );
        assert!(sequential_poisson_upper_bound(3, 5_000.0, 0, 95_000.0, 0.05).is_none());
    }

    /// Under H0 at the boundary, a look after every error keeps the rejection rate under α.
    #[test]
    fn sparse_mixture_is_anytime_valid_under_the_null() {
        // Deterministic LCG: each error falls in treatment with probability p0 (k = 2, 5% traffic).
        let p0 = 2.0 * 0.05 / (2.0 * 0.05 + 0.95);
        let mut uniform = crate::stats::test_uniform(7);
        let runs = 2_000;
        let mut rejected = 0;
        for _ in 0..runs {
            let (mut e_t, mut e_c) = (0_u64, 0_u64);
            for _ in 0..300 {
                if uniform() < p0 {
                    e_t += 1;
                } else {
                    e_c += 1;
                }
                if sequential_poisson_margin_p(e_t, 5.0, e_c, 95.0, 2.0) < 0.05 {
                    rejected += 1;
                    break;
                }
            }
        }
        let rate = rejected as f64 / runs as f64;
        assert!(rate <= 0.05, "false rejection rate {rate} over 300 looks");
    }
}
