//! Anytime-valid confidence sequences (section 6).
//!
//! A canary is re-analysed every few minutes, and a fixed-horizon interval
//! re-checked that often crosses zero by chance far more often than α: it
//! rolls back healthy canaries. The asymptotic confidence sequence of
//! Waudby-Smith et al. (2023), as GrowthBook implements it, widens the
//! interval so that the error guarantee holds simultaneously over every
//! look. The tuning N* is the sample size at which the sequence is
//! tightest; at N = N* the 95% multiplier is 3.0352 instead of 1.96.

use super::{valid_alpha, Estimate};

/// GrowthBook's default tuning parameter N*.
pub const DEFAULT_N_STAR: f64 = 5000.0;

/// ρ² = (−2 ln α + ln(−2 ln α + 1)) / N*; `None` for invalid parameters.
fn rho_squared(n_star: f64, alpha: f64) -> Option<f64> {
    let usable = valid_alpha(alpha) && n_star.is_finite() && n_star > 0.0;
    if !usable {
        return None;
    }
    let l = -2.0 * alpha.ln();
    Some((l + (l + 1.0).ln()) / n_star)
}

/// The factor that replaces z_{1−α/2}: half-width = SE · multiplier.
///
/// Section 6 writes the half-width as
/// SE·√N·√(2(Nρ²+1)/(N²ρ²) · ln(√(Nρ²+1)/α)); the √N cancels one N of the
/// N², leaving √(2(Nρ²+1)/(Nρ²) · ln(√(Nρ²+1)/α)). `n` is the total number
/// of users, N_t + N_c.
///
/// Returns +∞ (an interval that decides nothing) when n ≤ 0 or the
/// parameters are invalid (α ∉ (0, 1), N* ≤ 0 or not finite).
pub fn cs_multiplier(n: f64, n_star: f64, alpha: f64) -> f64 {
    let Some(rho2) = rho_squared(n_star, alpha) else {
        return f64::INFINITY;
    };
    if n.is_nan() || n <= 0.0 {
        return f64::INFINITY;
    }
    let nr2 = n * rho2;
    let inner = 2.0 * (nr2 + 1.0) / nr2 * ((nr2 + 1.0).sqrt() / alpha).ln();
    inner.sqrt()
}

/// Always-valid p-value matching [`cs_multiplier`]: the reciprocal of the
/// e-value of Waudby-Smith et al. (eq. 155), capped at 1,
/// e = exp(ρ² S / (2(Nρ²+1))) / √(Nρ²+1) with S = N·(estimate/SE)².
///
/// It is dual to the interval: p ≤ α exactly when the sequential interval
/// at level α excludes zero. Computed in log space so that huge z-scores
/// give 0 rather than overflow. Invalid parameters give 1; a zero SE gives
/// 0 for a non-zero estimate and 1 otherwise.
pub fn sequential_p_value(estimate: f64, se: f64, n: f64, n_star: f64, alpha: f64) -> f64 {
    let Some(rho2) = rho_squared(n_star, alpha) else {
        return 1.0;
    };
    if n.is_nan() || n <= 0.0 || estimate.is_nan() || se.is_nan() || se < 0.0 {
        return 1.0;
    }
    if se == 0.0 || se.is_infinite() {
        return if se == 0.0 && estimate != 0.0 {
            0.0
        } else {
            1.0
        };
    }
    let s = n * (estimate / se).powi(2);
    let tr2p1 = n * rho2 + 1.0;
    let log_e = rho2 * s / (2.0 * tr2p1) - 0.5 * tr2p1.ln();
    (-log_e).exp().min(1.0)
}

/// The same estimate with its confidence-sequence interval at level
/// 1 − alpha, given `n` = N_t + N_c users and the tuning `n_star`.
///
/// The p-value is replaced by the always-valid [`sequential_p_value`], so
/// that "p < α" and "interval excludes 0" keep agreeing; the fixed-horizon
/// p-value would be invalid under peeking. With invalid parameters the
/// interval is infinite and p = 1.
pub fn sequential_interval(est: &Estimate, n: f64, n_star: f64, alpha: f64) -> Estimate {
    let mult = cs_multiplier(n, n_star, alpha);
    let half = if est.se == 0.0 { 0.0 } else { est.se * mult };
    Estimate {
        estimate: est.estimate,
        se: est.se,
        ci_low: est.estimate - half,
        ci_high: est.estimate + half,
        p_value: sequential_p_value(est.estimate, est.se, n, n_star, alpha),
    }
}

#[cfg(test)]
mod tests {
    use super::super::assert_fig;
    use super::super::dist::z_two_sided;
    use super::super::means::{relative_lift, relative_lift_moments, MeanStats, SampleMoments};
    use super::*;

    #[test]
    fn multiplier_at_n_star() {
        assert_fig(cs_multiplier(5000.0, 5000.0, 0.05), "3.0352", "multiplier");
        // Depends on N only through N/N*.
        assert_fig(cs_multiplier(10.0, 10.0, 0.05), "3.0352", "multiplier");
        assert!(cs_multiplier(5000.0, 5000.0, 0.05) > z_two_sided(0.05));
    }

    #[test]
    fn gbstats_sequential_proportions() {
        // gbstats test_sequential_test_runs_prop: ProportionStatistic
        // (sum 1396, n 3000) vs (2422, 3461), default N* = 5000, relative.
        let c = SampleMoments::proportion(1396.0, 3000.0);
        let t = SampleMoments::proportion(2422.0, 3461.0);
        let fixed = relative_lift_moments(&c, &t, 0.05).unwrap();
        let seq = sequential_interval(&fixed, 3000.0 + 3461.0, DEFAULT_N_STAR, 0.05);
        assert_fig(seq.estimate, "0.50386", "lift");
        assert_fig(seq.se, "0.03386", "se");
        assert_fig(seq.ci_low, "0.40098", "ci low");
        assert_fig(seq.ci_high, "0.60675", "ci high");
        // Published as 0.0 after rounding to five decimals.
        assert_fig(seq.p_value, "0.00000", "p");
    }

    #[test]
    fn gbstats_sequential_means_small_tuning() {
        // gbstats test_sequential_test_runs: SampleMeanStatistic
        // (1396.87, 52377.9767, 3000) vs (2422.7, 134698.29, 3461), N* = 1000.
        let c = MeanStats {
            n: 3000.0,
            sum: 1396.87,
            sum_sq: 52377.9767,
        };
        let t = MeanStats {
            n: 3461.0,
            sum: 2422.7,
            sum_sq: 134_698.29,
        };
        let fixed = relative_lift(&c, &t, 0.05).unwrap();
        let seq = sequential_interval(&fixed, 6461.0, 1000.0, 0.05);
        assert_fig(seq.estimate, "0.50336", "lift");
        assert_fig(seq.se, "0.33341", "se");
        assert_fig(seq.ci_low, "-0.55844", "ci low");
        assert_fig(seq.ci_high, "1.56516", "ci high");
        assert_eq!(seq.p_value, 1.0);
    }

    #[test]
    fn p_value_is_dual_to_the_interval() {
        let n = 4000.0;
        let mult = cs_multiplier(n, DEFAULT_N_STAR, 0.05);
        // An estimate exactly on the boundary has p = α.
        let p = sequential_p_value(mult * 0.1, 0.1, n, DEFAULT_N_STAR, 0.05);
        assert_fig(p, "0.05000", "p on the boundary");
        assert!(sequential_p_value(1.1 * mult * 0.1, 0.1, n, DEFAULT_N_STAR, 0.05) < 0.05);
        assert!(sequential_p_value(0.9 * mult * 0.1, 0.1, n, DEFAULT_N_STAR, 0.05) > 0.05);
        // Huge z: no overflow.
        assert_eq!(sequential_p_value(1e6, 1e-6, n, DEFAULT_N_STAR, 0.05), 0.0);
    }

    #[test]
    fn degenerate_parameters() {
        assert_eq!(cs_multiplier(0.0, 5000.0, 0.05), f64::INFINITY);
        assert_eq!(cs_multiplier(100.0, 0.0, 0.05), f64::INFINITY);
        assert_eq!(cs_multiplier(100.0, 5000.0, 0.0), f64::INFINITY);
        assert_eq!(cs_multiplier(f64::NAN, 5000.0, 0.05), f64::INFINITY);
        assert_eq!(sequential_p_value(1.0, 0.1, 0.0, 5000.0, 0.05), 1.0);
        assert_eq!(sequential_p_value(1.0, 0.0, 100.0, 5000.0, 0.05), 0.0);
        assert_eq!(sequential_p_value(0.0, 0.0, 100.0, 5000.0, 0.05), 1.0);
        let est = Estimate {
            estimate: 0.1,
            se: 0.05,
            ci_low: 0.0,
            ci_high: 0.2,
            p_value: 0.05,
        };
        let wide = sequential_interval(&est, 0.0, 5000.0, 0.05);
        assert_eq!(
            (wide.ci_low, wide.ci_high),
            (f64::NEG_INFINITY, f64::INFINITY)
        );
        assert_eq!(wide.p_value, 1.0);
    }
}
