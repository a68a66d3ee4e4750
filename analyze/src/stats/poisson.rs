//! Exact conditional test for two Poisson rates (section 2, sparse errors).
//!
//! A canary typically sees a handful of errors, often none in the baseline.
//! There the normal approximation of the margin test is wrong in both
//! directions, and GrowthBook and Kayenta simply give up on a zero baseline.
//! Conditioning on the total count E = e_t + e_c removes the unknown common
//! rate: under H0 (rate_t = k · rate_c) each error falls in the treatment
//! arm independently with probability p0 = k·n_t/(k·n_t + n_c), so e_t is
//! Binomial(E, p0) and the p-value is an exact binomial tail. This treats
//! requests as independent, which is the usual and accepted simplification
//! when errors are this rare.

use super::dist::{binomial_sf, clopper_pearson_upper};
use super::valid_alpha;

/// Probability that an error lands in treatment under H0: rate_t = k·rate_c. `None` for invalid
/// input; an arm without exposure is allowed (the share is then 0 or 1).
pub(super) fn null_share(n_t: f64, n_c: f64, k: f64) -> Option<f64> {
    let inputs_ok = n_t.is_finite() && n_c.is_finite() && k.is_finite();
    if !inputs_ok || n_t < 0.0 || n_c < 0.0 || k <= 0.0 || k * n_t + n_c <= 0.0 {
        return None;
    }
    Some(k * n_t / (k * n_t + n_c))
}

/// Exact one-sided p-value of H0: rate_t ≤ k·rate_c against
/// H1: rate_t > k·rate_c, given `e_t` errors in `n_t` treatment requests and
/// `e_c` in `n_c` control requests: P(X ≥ e_t), X ~ Binomial(E, p0).
///
/// Invalid input (negative or non-finite exposure, k ≤ 0, no exposure at
/// all) gives 1: no evidence of harm. No errors at all also gives 1, and a
/// control arm without requests gives p0 = 1 and therefore 1.
pub fn poisson_margin_p(e_t: u64, n_t: f64, e_c: u64, n_c: f64, k: f64) -> f64 {
    match null_share(n_t, n_c, k) {
        Some(p0) => binomial_sf(e_t, e_t.saturating_add(e_c), p0),
        None => 1.0,
    }
}

/// Exact one-sided upper confidence bound (level 1 − alpha) of the rate
/// ratio rate_t/rate_c, by inverting the conditional test: the Clopper–
/// Pearson upper bound p_U of e_t out of E, mapped through
/// k = p_U/(1 − p_U) · n_c/n_t.
///
/// `None` when the bound is infinite or undefined: no errors at all, no
/// control errors (p_U = 1), or no exposure in either arm.
pub fn poisson_ratio_upper_bound(
    e_t: u64,
    n_t: f64,
    e_c: u64,
    n_c: f64,
    alpha: f64,
) -> Option<f64> {
    let exposures_ok = n_t.is_finite() && n_c.is_finite() && n_t > 0.0 && n_c > 0.0;
    let total = e_t.saturating_add(e_c);
    if !exposures_ok || !valid_alpha(alpha) || total == 0 {
        return None;
    }
    let p_upper = clopper_pearson_upper(e_t, total, alpha);
    if p_upper >= 1.0 {
        return None;
    }
    Some(p_upper / (1.0 - p_upper) * n_c / n_t)
}

#[cfg(test)]
mod tests {
    use super::super::assert_fig;
    use super::super::dist::binomial_cdf;
    use super::*;

    #[test]
    fn equal_rates_is_a_fair_coin() {
        // k = 1, equal exposure: p0 = 1/2 and 8 of 10 errors in treatment.
        // P(X ≥ 8) = (C(10,8) + C(10,9) + C(10,10)) / 2^10 = 56/1024.
        let p = poisson_margin_p(8, 1000.0, 2, 1000.0, 1.0);
        assert_fig(p, "0.0546875", "p");
    }

    #[test]
    fn single_error_is_its_null_share() {
        // k = 1, one error in total: P(X ≥ 1) = p0 = n_t/(n_t + n_c).
        let p = poisson_margin_p(1, 300.0, 0, 900.0, 1.0);
        assert_fig(p, "0.25", "p");
        // The error in control instead: P(X ≥ 0) = 1.
        assert_eq!(poisson_margin_p(0, 300.0, 1, 900.0, 1.0), 1.0);
    }

    #[test]
    fn margin_two_matches_scipy_binomtest() {
        // scipy.stats.binomtest(8, 10, 2/3, alternative='greater').pvalue
        let p = poisson_margin_p(8, 1000.0, 2, 1000.0, 2.0);
        assert_fig(p, "0.2991413910", "p");
    }

    #[test]
    fn zero_baseline_errors() {
        // k = 2, equal exposure, control clean: P(X ≥ e) = (2/3)^e.
        assert_fig(
            poisson_margin_p(5, 1000.0, 0, 1000.0, 2.0),
            "0.1316872428",
            "5 vs 0",
        );
        let p = poisson_margin_p(8, 1000.0, 0, 1000.0, 2.0);
        assert_fig(p, "0.03901844231", "8 vs 0");
        assert!(p < 0.05);
        // A tiny canary: 3 errors in 50 requests against 0 in 10 000 is
        // strong evidence even though the baseline rate is zero.
        assert!(poisson_margin_p(3, 50.0, 0, 10_000.0, 2.0) < 1e-4);
    }

    #[test]
    fn degenerate_inputs_give_one() {
        assert_eq!(poisson_margin_p(0, 1000.0, 0, 1000.0, 2.0), 1.0);
        assert_eq!(poisson_margin_p(3, 0.0, 0, 0.0, 2.0), 1.0);
        assert_eq!(poisson_margin_p(3, 100.0, 1, 0.0, 2.0), 1.0);
        assert_eq!(poisson_margin_p(3, 100.0, 1, 100.0, 0.0), 1.0);
        assert_eq!(poisson_margin_p(3, f64::NAN, 1, 100.0, 2.0), 1.0);
        assert_eq!(poisson_margin_p(3, -1.0, 1, 100.0, 2.0), 1.0);
    }

    #[test]
    fn upper_bound_inverts_the_test() {
        let (e_t, n_t, e_c, n_c) = (3, 2000.0, 10, 1000.0);
        let k = poisson_ratio_upper_bound(e_t, n_t, e_c, n_c, 0.05).unwrap();
        // At the bound, seeing e_t or fewer errors has probability α.
        let p0 = k * n_t / (k * n_t + n_c);
        assert_fig(binomial_cdf(e_t, e_t + e_c, p0), "0.05000", "P(X ≤ e_t)");
        assert!(k > (3.0 / 2000.0) / (10.0 / 1000.0));
    }

    #[test]
    fn upper_bound_is_infinite_without_control_errors() {
        assert!(poisson_ratio_upper_bound(4, 100.0, 0, 100.0, 0.05).is_none());
        assert!(poisson_ratio_upper_bound(0, 100.0, 0, 100.0, 0.05).is_none());
        assert!(poisson_ratio_upper_bound(1, 0.0, 3, 100.0, 0.05).is_none());
        // No treatment errors still bounds the ratio: (1 − α^(1/E)) odds.
        let k = poisson_ratio_upper_bound(0, 100.0, 5, 100.0, 0.05).unwrap();
        let p = 1.0 - 0.05_f64.powf(0.2);
        assert_fig(k, &format!("{}", p / (1.0 - p)), "k");
    }
}
