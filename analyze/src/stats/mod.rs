//! Pure statistics for canary and A/B analysis: no I/O, no configuration,
//! only numbers in and numbers out.
//!
//! The verdict code (ROLLBACK / CONTINUE / PROMOTE / INVALID) is only as good
//! as the tests underneath it, so they live apart from it, each reproduced
//! against the public reference figures of `statistics.md` in its own unit
//! tests. The randomisation unit is the user: request-level metrics are ratio
//! metrics over per-user sums (`ratio`), per-user values are plain means
//! (`means`), and latency quantiles carry a user-clustering correction
//! (`quantile`), read off a mergeable distribution (`distribution`).
//!
//! Degenerate input never panics. Functions that cannot produce a meaningful
//! answer (no users, zero variance, zero baseline) return `None`; functions
//! that always answer document the value they fall back to, chosen so that
//! it never triggers a decision (a p-value of 1, an infinite interval).

pub mod cuped;
pub mod dist;
pub mod distribution;
pub mod harm;
pub mod horizon;
pub mod mann_whitney;
pub mod margin;
pub mod means;
pub mod multiple;
pub mod poisson;
pub mod quantile;
pub mod ratio;
pub mod sequential;
pub mod srm;

pub use cuped::{cuped, CovariateSums, CupedAdjustment};
pub use distribution::{DistributionBuilder, LatencyDistribution};
pub use harm::{excess_errors, share_above_cap_p, stratified_excess_errors};
pub use horizon::{sequential_poisson_margin_p, sequential_poisson_upper_bound, Horizon};
pub use mann_whitney::{mann_whitney_runs, mann_whitney_u, MannWhitney};
pub use margin::{normal_margin, ArmEstimate, Harm, MarginResult, Scale, ThresholdRule};
pub use means::{
    relative_lift, relative_lift_moments, welch_diff, welch_diff_moments, MeanStats, SampleMoments,
};
pub use multiple::{benjamini_hochberg, holm};
pub use poisson::{poisson_margin_p, poisson_ratio_upper_bound};
/// The sorted sample the distribution is held to (tests only).
#[cfg(test)]
pub use quantile::ClusteredSample;
pub use quantile::{
    quantile_diff, quantile_margin_test, quantile_margin_test_at, quantile_ratio_upper_bound,
    quantile_ratio_upper_bound_at, quantile_relative, QuantileEstimate,
};
pub use ratio::{
    fieller_upper, ratio_diff, ratio_margin_test, ratio_margin_test_at, ratio_relative,
    ratio_upper_bound, ratio_upper_bound_at, MarginTest, RatioStats,
};
pub use sequential::{cs_multiplier, sequential_interval, sequential_p_value, DEFAULT_N_STAR};
pub use srm::{srm_test, SrmResult};

/// A comparison result of treatment against control.
///
/// `[ci_low, ci_high]` is a two-sided interval at the requested level unless
/// the producing function says otherwise (the one-sided harm bound in
/// [`harm::excess_errors`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    pub estimate: f64,
    pub se: f64,
    pub ci_low: f64,
    pub ci_high: f64,
    pub p_value: f64,
}

impl Estimate {
    /// Wald interval and two-sided p from the normal distribution.
    ///
    /// `None` unless `se` is finite and positive: with no sampling error
    /// there is nothing to test, and a zero SE would turn any difference
    /// into p = 0.
    pub fn normal(estimate: f64, se: f64, alpha: f64) -> Option<Self> {
        if !estimate.is_finite() || !valid_se(se) || !valid_alpha(alpha) {
            return None;
        }
        let half = dist::z_two_sided(alpha) * se;
        Some(Self {
            estimate,
            se,
            ci_low: estimate - half,
            ci_high: estimate + half,
            p_value: (2.0 * dist::normal_sf((estimate / se).abs())).min(1.0),
        })
    }

    /// Like [`Estimate::normal`] but with Student's t on `df` degrees of
    /// freedom, which is what Welch's test and GrowthBook use for means.
    pub fn student_t(estimate: f64, se: f64, df: f64, alpha: f64) -> Option<Self> {
        if !estimate.is_finite() || !valid_se(se) || !valid_alpha(alpha) || df.is_nan() || df <= 0.0
        {
            return None;
        }
        let half = dist::t_quantile(1.0 - alpha / 2.0, df) * se;
        Some(Self {
            estimate,
            se,
            ci_low: estimate - half,
            ci_high: estimate + half,
            p_value: (2.0 * dist::t_sf((estimate / se).abs(), df)).min(1.0),
        })
    }
}

pub(crate) fn valid_se(se: f64) -> bool {
    se.is_finite() && se > 0.0
}

pub(crate) fn valid_alpha(alpha: f64) -> bool {
    alpha > 0.0 && alpha < 1.0
}

/// Asserts that `actual` reproduces a published figure, given as written.
///
/// The tolerance is half a unit of the fourth significant digit, or half a
/// unit of the last printed digit when the source printed fewer digits (the
/// SRM check "p 0.0477" has only three): a figure cannot be matched more
/// closely than it was published.
#[cfg(test)]
pub(crate) fn assert_fig(actual: f64, published: &str, what: &str) {
    let expected: f64 = published.parse().expect("published figure");
    let magnitude = if expected == 0.0 {
        0.0
    } else {
        expected.abs().log10().floor()
    };
    let sig4 = 0.5 * 10f64.powf(magnitude - 3.0);
    let decimals = published
        .split_once('.')
        .map_or(0, |(_, frac)| frac.len() as i32);
    let printed = 0.5 * 10f64.powi(-decimals);
    let tolerance = sig4.max(printed) * (1.0 + 1e-9);
    assert!(
        (actual - expected).abs() <= tolerance,
        "{what}: got {actual}, published {published} (±{tolerance:e})"
    );
}

/// A deterministic uniform [0, 1) generator (64-bit LCG) for tests that simulate.
#[cfg(test)]
pub(crate) fn test_uniform(seed: u64) -> impl FnMut() -> f64 {
    let mut state = seed;
    move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_estimate_matches_hand_computation() {
        let e = Estimate::normal(1.0, 0.5, 0.05).unwrap();
        assert_fig(e.ci_low, "0.020018", "low");
        assert_fig(e.ci_high, "1.979982", "high");
        // z = 2 → two-sided p = 0.04550026.
        assert_fig(e.p_value, "0.04550026", "p");
    }

    #[test]
    fn degenerate_inputs_give_none() {
        assert!(Estimate::normal(1.0, 0.0, 0.05).is_none());
        assert!(Estimate::normal(f64::NAN, 1.0, 0.05).is_none());
        assert!(Estimate::normal(1.0, 1.0, 0.0).is_none());
        assert!(Estimate::student_t(1.0, 1.0, 0.0, 0.05).is_none());
        assert!(Estimate::student_t(1.0, f64::INFINITY, 5.0, 0.05).is_none());
    }

    #[test]
    fn published_figure_tolerance() {
        assert_fig(0.047_67, "0.0477", "three printed digits");
        assert_fig(0.503_89, "0.50386", "fourth significant digit");
        let r = std::panic::catch_unwind(|| assert_fig(0.0479, "0.0477", "x"));
        assert!(r.is_err());
        let r = std::panic::catch_unwind(|| assert_fig(0.5044, "0.50386", "x"));
        assert!(r.is_err());
    }
}
