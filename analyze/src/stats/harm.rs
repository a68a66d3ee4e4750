//! Blast-radius statistics (section 7): limits that roll a canary back
//! without waiting for the minimum sample.
//!
//! The metric guardrails ask "is the canary worse?", which needs thousands
//! of users. The blast-radius rules ask "has the canary already done too
//! much damage?", which a small sample can answer. Both are framed so that
//! a large healthy experiment never trips them: the harm budget counts only
//! errors in excess of the baseline rate (an absolute count would grow with
//! traffic), and the traffic cap tests the observed share against the cap
//! instead of comparing the raw share (sampling noise alone crosses it half
//! the time).

use super::dist::{binomial_sf, normal_quantile, normal_sf};
use super::ratio::RatioStats;
use super::{valid_alpha, Estimate};

/// Excess errors of the treatment: e_t − R_c · n_t, with treatment totals.
///
/// The SE treats n_t as fixed and adds the two independent sources of
/// error, n_t² Var(R_t) + n_t² Var(R_c), each floored at its Poisson value
/// (e_t for the treatment count, max(e_c, 1)/n_c² for the baseline rate).
/// The floors matter because this rule runs on tiny samples: with two users
/// the between-user variance is noise, and a clean baseline would otherwise
/// claim to know its rate exactly.
///
/// `ci_low` is the one-sided lower confidence bound at level 1 − alpha —
/// the number compared with the harm budget — and `ci_high` the mirrored
/// upper bound, so `[ci_low, ci_high]` is a two-sided 1 − 2·alpha interval.
/// `p_value` is one-sided for H1: excess > 0.
///
/// Without baseline requests the excess cannot be estimated: the estimate
/// is then e_t with an infinite SE and interval and p = 1, so the rule can
/// never fire on missing data. An invalid alpha also gives the infinite
/// interval.
pub fn excess_errors(control: &RatioStats, treatment: &RatioStats, alpha: f64) -> Estimate {
    match excess_and_se(control, treatment) {
        Ok((excess, se)) => bounded(excess, se, alpha),
        Err(e_t) => unbounded(e_t),
    }
}

/// The excess of one comparison and its SE; `Err(e_t)` without baseline requests.
fn excess_and_se(control: &RatioStats, treatment: &RatioStats) -> Result<(f64, f64), f64> {
    let (e_t, n_t) = (treatment.sum_x.max(0.0), treatment.sum_y.max(0.0));
    let (e_c, n_c) = (control.sum_x.max(0.0), control.sum_y);
    let usable = n_c > 0.0 && n_c.is_finite() && e_t.is_finite() && n_t.is_finite();
    if !usable {
        return Err(e_t);
    }
    let excess = e_t - control.ratio() * n_t;
    let var_t = (n_t * n_t * treatment.variance()).max(e_t);
    let var_rc = control.variance().max(e_c.max(1.0) / (n_c * n_c));
    Ok((excess, (var_t + n_t * n_t * var_rc).sqrt()))
}

/// Excess errors of the treatment summed over strata (rollout stages): in each stratum its
/// errors less its requests at *that stratum's* baseline rate, so that a baseline rate that
/// changed over time is compared within its own time, and a canary that ramps into a worse hour
/// is not charged for the hour. The strata are disjoint sets of users, so their variances add.
/// A stratum whose baseline has no requests is measured against `pooled` (every stratum's
/// baseline together) rather than left unbounded: one stage just begun must not disable the
/// budget.
pub fn stratified_excess_errors(
    strata: &[(&RatioStats, &RatioStats)],
    pooled: &RatioStats,
    alpha: f64,
) -> Estimate {
    let (mut excess, mut variance) = (0.0, 0.0);
    for (control, treatment) in strata {
        let parts = excess_and_se(control, treatment).or_else(|_| excess_and_se(pooled, treatment));
        match parts {
            Ok((e, se)) => {
                excess += e;
                variance += se * se;
            }
            Err(e_t) => return unbounded(excess + e_t),
        }
    }
    bounded(excess, variance.sqrt(), alpha)
}

/// The estimate with its one-sided bound at 1 − alpha (and the mirrored upper bound).
fn bounded(excess: f64, se: f64, alpha: f64) -> Estimate {
    if !valid_alpha(alpha) {
        return Estimate {
            se,
            ..unbounded(excess)
        };
    }
    if se == 0.0 {
        // Only when n_t = 0: no treatment traffic, no excess, certainly.
        return Estimate {
            estimate: excess,
            se,
            ci_low: excess,
            ci_high: excess,
            p_value: if excess > 0.0 { 0.0 } else { 1.0 },
        };
    }
    let half = normal_quantile(1.0 - alpha) * se;
    Estimate {
        estimate: excess,
        se,
        ci_low: excess - half,
        ci_high: excess + half,
        p_value: normal_sf(excess / se),
    }
}

fn unbounded(estimate: f64) -> Estimate {
    Estimate {
        estimate,
        se: f64::INFINITY,
        ci_low: f64::NEG_INFINITY,
        ci_high: f64::INFINITY,
        p_value: 1.0,
    }
}

/// One-sided exact binomial p-value that the treatment share of users is
/// above `cap`: P(X ≥ treatment_users), X ~ Binomial(total_users, cap).
///
/// A cap of 1 or more can never be exceeded (p = 1); a cap of 0 is
/// exceeded by any treatment user (p = 0). A NaN cap (no cap configured)
/// and an impossible count (treatment above total) give 1.
pub fn share_above_cap_p(treatment_users: u64, total_users: u64, cap: f64) -> f64 {
    if cap.is_nan() || treatment_users > total_users {
        return 1.0;
    }
    binomial_sf(treatment_users, total_users, cap)
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

    #[test]
    fn excess_by_hand() {
        // Baseline 1% over 20 000 requests; canary 300 errors in 10 000.
        let c = arm(&[
            (50.0, 5000.0),
            (50.0, 5000.0),
            (50.0, 5000.0),
            (50.0, 5000.0),
        ]);
        let t = arm(&[(150.0, 5000.0), (150.0, 5000.0)]);
        let e = excess_errors(&c, &t, 0.05);
        assert_fig(e.estimate, "200.0", "excess");
        // Identical users: both ratio variances are 0, so the Poisson floors
        // apply: 300 + 10 000² · 200/20 000² = 350.
        assert_fig(e.se, &format!("{}", 350f64.sqrt()), "se");
        assert_fig(
            e.ci_low,
            &format!("{}", 200.0 - 1.644_853_6 * 350f64.sqrt()),
            "lcb",
        );
        assert_fig(
            e.p_value,
            &format!("{}", normal_sf(200.0 / 350f64.sqrt())),
            "p",
        );
        assert!(e.ci_low > 100.0);
    }

    #[test]
    fn clustered_errors_widen_the_bound() {
        let c = arm(&[(10.0, 1000.0), (10.0, 1000.0), (10.0, 1000.0)]);
        let even = arm(&[(20.0, 1000.0), (20.0, 1000.0), (20.0, 1000.0)]);
        let lumpy = arm(&[(58.0, 1000.0), (1.0, 1000.0), (1.0, 1000.0)]);
        let a = excess_errors(&c, &even, 0.05);
        let b = excess_errors(&c, &lumpy, 0.05);
        assert_eq!(a.estimate, b.estimate);
        assert!(b.se > a.se && b.ci_low < a.ci_low);
    }

    #[test]
    fn healthy_large_experiment_has_no_excess() {
        // A million requests at the baseline rate: tens of thousands of
        // errors, but the excess bound stays near zero.
        let users: Vec<(f64, f64)> = (0..1000).map(|i| (10.0 + (i % 3) as f64, 1000.0)).collect();
        let c = arm(&users);
        let t = arm(&users);
        let e = excess_errors(&c, &t, 0.05);
        assert!(e.estimate.abs() < 1e-6);
        assert!(e.ci_low < 100.0);
        assert!(e.p_value > 0.49);
    }

    #[test]
    fn degenerate_excess() {
        let t = arm(&[(5.0, 100.0)]);
        let e = excess_errors(&RatioStats::default(), &t, 0.05);
        assert_eq!(e.estimate, 5.0);
        assert_eq!(e.ci_low, f64::NEG_INFINITY);
        assert_eq!(e.p_value, 1.0);
        let c = arm(&[(1.0, 100.0)]);
        let none = excess_errors(&c, &RatioStats::default(), 0.05);
        assert_eq!((none.estimate, none.ci_low, none.p_value), (0.0, 0.0, 1.0));
        assert_eq!(excess_errors(&c, &t, 1.5).ci_low, f64::NEG_INFINITY);
        // Clean baseline: the floor of one error keeps the SE honest.
        let clean = arm(&[(0.0, 10.0)]);
        let e = excess_errors(&clean, &arm(&[(20.0, 1000.0)]), 0.05);
        assert_fig(e.se, &format!("{}", (20.0f64 + 1e6 / 100.0).sqrt()), "se");
        assert!(e.ci_low < 0.0);
    }

    #[test]
    fn traffic_cap() {
        // Binomial(20, 0.05): P(X ≥ 3) = 1 − P(X ≤ 2) = 0.0754837...
        assert_fig(share_above_cap_p(3, 20, 0.05), "0.07548367", "p");
        // 5.4% of 10 000 against a 5% cap is significant (scipy: 0.036145);
        // 5.1% is not (0.32944).
        assert_fig(share_above_cap_p(540, 10_000, 0.05), "0.03614506", "5.4%");
        assert!(share_above_cap_p(540, 10_000, 0.05) < 0.05);
        assert!(share_above_cap_p(510, 10_000, 0.05) > 0.05);
        // A 50/50 test with a cap of 1 never breaches.
        assert_eq!(share_above_cap_p(5000, 10_000, 1.0), 1.0);
        assert_eq!(share_above_cap_p(1, 10, 0.0), 0.0);
        assert_eq!(share_above_cap_p(0, 0, 0.05), 1.0);
        assert_eq!(share_above_cap_p(11, 10, 0.05), 1.0);
        assert_eq!(share_above_cap_p(3, 10, f64::NAN), 1.0);
    }
}
