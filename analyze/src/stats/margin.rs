//! Threshold rules as one-sided margin tests, for any metric whose two arms have independent,
//! approximately normal estimates.
//!
//! A guardrail says how far a metric may move in its harmful direction: "error rate at most 2× the
//! baseline's" (a ratio), "conversion at least 0.95× the baseline's", "p99 at most 50 ms above the
//! baseline's" (an absolute difference). Each rule is tested as H0 "within the limit" against H1
//! "past it", and the same statistic read the other way gives the one-sided confidence bound that
//! shows non-inferiority. So a breach (ROLLBACK) and non-inferiority (PROMOTE) can never both hold.
//! The bound of a ratio is Fieller's, the exact inversion of the test.

use serde::{Deserialize, Serialize};

use super::horizon::Horizon;
use super::ratio::fieller_upper;
use super::{valid_alpha, valid_se};

/// The scale a threshold is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scale {
    /// variant / baseline (a margin ratio, e.g. 2.0 or 0.95).
    Ratio,
    /// variant − baseline, in the metric's unit (a non-negative amount, e.g. 0.01 or 50 ms).
    Absolute,
}

/// The direction in which a change of the metric is harmful.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Harm {
    /// Higher is worse (error rate, latency).
    Increase,
    /// Lower is worse (conversion, revenue).
    Decrease,
}

impl Scale {
    /// The name used in the experiments file, reports and the results history.
    pub fn name(self) -> &'static str {
        match self {
            Scale::Ratio => "ratio",
            Scale::Absolute => "absolute",
        }
    }
}

impl Harm {
    /// The name used in the experiments file, reports and the results history.
    pub fn name(self) -> &'static str {
        match self {
            Harm::Increase => "increase",
            Harm::Decrease => "decrease",
        }
    }
}

/// "The variant may not move past `threshold` in the harmful direction."
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ThresholdRule {
    pub scale: Scale,
    pub harm: Harm,
    /// A ratio (> 0), or an absolute amount (≥ 0) the metric may move in the harmful direction.
    pub threshold: f64,
}

impl ThresholdRule {
    /// The limit on the scale of `observed` and `bound`: the ratio, +amount or −amount.
    pub fn limit(&self) -> f64 {
        match (self.scale, self.harm) {
            (Scale::Ratio, _) | (Scale::Absolute, Harm::Increase) => self.threshold,
            (Scale::Absolute, Harm::Decrease) => -self.threshold,
        }
    }

    /// Whether a bound lies on the safe side of the limit.
    pub fn safe(&self, bound: f64) -> bool {
        match self.harm {
            Harm::Increase => bound < self.limit(),
            Harm::Decrease => bound > self.limit(),
        }
    }

    fn sign(&self) -> f64 {
        match self.harm {
            Harm::Increase => 1.0,
            Harm::Decrease => -1.0,
        }
    }
}

/// One arm's estimate of a metric and the variance of that estimate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ArmEstimate {
    pub value: f64,
    pub variance: f64,
}

/// A threshold rule tested on two arms.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct MarginResult {
    /// variant / baseline, or variant − baseline, per the rule's scale.
    pub observed: Option<f64>,
    /// One-sided (1 − α) confidence bound of `observed` on its harmful side: upper when increases
    /// harm, lower when decreases do. `None` when unbounded (a ratio over a baseline not
    /// significantly away from zero) or unknown.
    pub bound: Option<f64>,
    /// One-sided p-value of H1 "past the limit". `None` without sampling error to test with.
    pub p_harm: Option<f64>,
}

impl MarginResult {
    /// The bound is on the safe side of the limit: shown non-inferior.
    pub fn non_inferior(&self, rule: &ThresholdRule) -> bool {
        self.bound.is_some_and(|b| rule.safe(b))
    }
}

/// Tests `rule` for `variant` against `base` at level `alpha` under `horizon`.
pub fn normal_margin(
    base: ArmEstimate,
    variant: ArmEstimate,
    rule: &ThresholdRule,
    alpha: f64,
    horizon: Horizon,
) -> MarginResult {
    let finite = [base.value, base.variance, variant.value, variant.variance]
        .iter()
        .all(|v| v.is_finite());
    let k = rule.threshold;
    let k_ok = match rule.scale {
        Scale::Ratio => k > 0.0,
        Scale::Absolute => k >= 0.0,
    };
    if !finite || !valid_alpha(alpha) || !k.is_finite() || !k_ok {
        return MarginResult::default();
    }
    let (b, v) = (base.value, variant.value);
    let (vb, vv) = (base.variance.max(0.0), variant.variance.max(0.0));
    let z = horizon.one_sided_multiplier(alpha);
    let s = rule.sign();
    let (observed, bound, d, se) = match rule.scale {
        Scale::Ratio => {
            let bound = match rule.harm {
                Harm::Increase => fieller_upper(v, vv, b, vb, z),
                Harm::Decrease => fieller_upper(-v, vv, b, vb, z).map(|u| -u),
            };
            let bound = bound.filter(|_| b > 0.0);
            let observed = (b != 0.0).then(|| v / b);
            (observed, bound, s * (v - k * b), (vv + k * k * vb).sqrt())
        }
        Scale::Absolute => {
            let se = (vv + vb).sqrt();
            let diff = v - b;
            let bound = valid_se(se).then(|| diff + s * z * se);
            (Some(diff), bound, s * diff - k, se)
        }
    };
    let p_harm = valid_se(se).then(|| horizon.one_sided_p(d, se, alpha));
    MarginResult {
        observed,
        bound,
        p_harm,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::quantile::{quantile_margin_test, quantile_ratio_upper_bound};
    use crate::stats::QuantileEstimate;

    fn arm(value: f64, se: f64) -> ArmEstimate {
        ArmEstimate {
            value,
            variance: se * se,
        }
    }

    #[test]
    fn names_are_the_serialized_names() {
        for scale in [Scale::Ratio, Scale::Absolute] {
            assert_eq!(serde_json::to_value(scale).unwrap(), scale.name());
        }
        for harm in [Harm::Increase, Harm::Decrease] {
            assert_eq!(serde_json::to_value(harm).unwrap(), harm.name());
        }
    }

    fn rule(scale: Scale, harm: Harm, threshold: f64) -> ThresholdRule {
        ThresholdRule {
            scale,
            harm,
            threshold,
        }
    }

    #[test]
    fn ratio_increase_is_the_quantile_margin_test() {
        let q = |estimate: f64, se: f64| QuantileEstimate {
            nu: 0.99,
            n: 1000,
            estimate,
            ci_low: None,
            ci_high: None,
            se: Some(se),
        };
        let (c, t) = (q(200.0, 8.0), q(330.0, 20.0));
        let r = normal_margin(
            arm(200.0, 8.0),
            arm(330.0, 20.0),
            &rule(Scale::Ratio, Harm::Increase, 1.5),
            0.05,
            Horizon::Fixed,
        );
        let p = quantile_margin_test(&c, &t, 1.5).unwrap();
        let upper = quantile_ratio_upper_bound(&c, &t, 0.05).unwrap();
        assert!((r.p_harm.unwrap() - p).abs() < 1e-12);
        assert!((r.bound.unwrap() - upper).abs() < 1e-12);
        assert_eq!(r.observed, Some(1.65));
    }

    #[test]
    fn a_drop_in_conversion_past_the_limit_is_harm_and_a_small_one_is_non_inferior() {
        // Conversion 10.0% ± 0.2% vs 8.0% ± 0.3%: ratio 0.8, clearly below 0.95.
        let harm = rule(Scale::Ratio, Harm::Decrease, 0.95);
        let r = normal_margin(
            arm(0.10, 0.002),
            arm(0.08, 0.003),
            &harm,
            0.05,
            Horizon::Fixed,
        );
        assert!(r.p_harm.unwrap() < 1e-4, "{r:?}");
        assert!(r.bound.unwrap() < 0.95 && !r.non_inferior(&harm));
        // 10.0% vs 10.1%: the lower bound is above 0.95.
        let r = normal_margin(
            arm(0.10, 0.001),
            arm(0.101, 0.001),
            &harm,
            0.05,
            Horizon::Fixed,
        );
        assert!(r.p_harm.unwrap() > 0.5 && r.non_inferior(&harm), "{r:?}");
        let lower = r.bound.unwrap();
        assert!(lower < 1.01 && lower > 0.95, "{lower}");
    }

    #[test]
    fn absolute_limits_test_the_difference_against_the_amount() {
        // p99 +30 ms (se 10): "at most +50 ms" is not breached, z = −2: non-inferior at 95%.
        let limit = rule(Scale::Absolute, Harm::Increase, 50.0);
        let r = normal_margin(
            arm(200.0, 6.0),
            arm(230.0, 8.0),
            &limit,
            0.05,
            Horizon::Fixed,
        );
        assert_eq!(r.observed, Some(30.0));
        assert!((r.p_harm.unwrap() - 0.977_25).abs() < 1e-4, "{r:?}");
        assert!((r.bound.unwrap() - (30.0 + 1.644_854 * 10.0)).abs() < 1e-4);
        assert!(r.non_inferior(&limit));
        // Revenue −2.0 (se 0.5) against "at most 1.0 lower": breached, z = 2.
        let drop = rule(Scale::Absolute, Harm::Decrease, 1.0);
        let r = normal_margin(arm(10.0, 0.3), arm(8.0, 0.4), &drop, 0.05, Horizon::Fixed);
        assert!((r.p_harm.unwrap() - 0.022_75).abs() < 1e-4, "{r:?}");
        assert!(!r.non_inferior(&drop));
    }

    #[test]
    fn sequential_is_more_cautious_both_ways() {
        let limit = rule(Scale::Ratio, Harm::Increase, 2.0);
        let (b, v) = (arm(0.01, 0.001), arm(0.026, 0.002));
        let fixed = normal_margin(b, v, &limit, 0.05, Horizon::Fixed);
        let seq = normal_margin(
            b,
            v,
            &limit,
            0.05,
            Horizon::Sequential {
                n: 2_000.0,
                n_star: 5_000.0,
            },
        );
        assert!(seq.p_harm.unwrap() > fixed.p_harm.unwrap());
        assert!(seq.bound.unwrap() > fixed.bound.unwrap());
    }

    #[test]
    fn no_sampling_error_means_no_test() {
        let r = normal_margin(
            arm(1.0, 0.0),
            arm(3.0, 0.0),
            &rule(Scale::Ratio, Harm::Increase, 2.0),
            0.05,
            Horizon::Fixed,
        );
        assert_eq!((r.p_harm, r.observed), (None, Some(3.0)));
    }
}
