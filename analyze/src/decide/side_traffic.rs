//! Traffic that is not a live user's request, reported beside the verdict and never mixed into it:
//! synthetic checks (probes from synthetic users: did they succeed, per variant) and shadow and
//! mirror calls (dark launches: how their errors, latency and result mismatches compare with the
//! same variant's live traffic). Its rows come from `queries/analysis_side_traffic.sql` (each
//! event_id once); `queries/traffic_modes.sql` gives the same groups as stored.

use crate::decide::report::{ShadowTraffic, SyntheticCheck, VariantMetrics};
use crate::read::summary::ModeRow;
use crate::stats::dist::normal_sf;

fn rate(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

/// Two-sided p-value of the pooled two-proportion z test; `None` when undefined.
fn two_proportions_p(x1: u64, n1: u64, x2: u64, n2: u64) -> Option<f64> {
    if n1 == 0 || n2 == 0 {
        return None;
    }
    let pooled = (x1 + x2) as f64 / (n1 + n2) as f64;
    let se = (pooled * (1.0 - pooled) * (1.0 / n1 as f64 + 1.0 / n2 as f64)).sqrt();
    if se <= 0.0 {
        return (x1 as f64 / n1 as f64 == x2 as f64 / n2 as f64).then_some(1.0);
    }
    let z = (x1 as f64 / n1 as f64 - x2 as f64 / n2 as f64) / se;
    Some((2.0 * normal_sf(z.abs())).min(1.0))
}

/// Synthetic checks per variant: the synthetic users' live requests.
pub fn synthetic_checks(rows: &[ModeRow]) -> Vec<SyntheticCheck> {
    rows.iter()
        .filter(|r| r.synthetic && r.mode == "live")
        .map(|r| SyntheticCheck {
            variant: r.variant.clone(),
            users: r.users,
            checks: r.requests,
            failures: r.failures,
            success_rate: rate(r.requests - r.failures.min(r.requests), r.requests),
        })
        .collect()
}

/// Shadow and mirror calls of real users, each against its variant's live metrics.
pub fn shadow_traffic(rows: &[ModeRow], live: &[VariantMetrics]) -> Vec<ShadowTraffic> {
    rows.iter()
        .filter(|r| !r.synthetic && r.mode != "live")
        .map(|r| {
            let live = live.iter().find(|v| v.name == r.variant);
            ShadowTraffic {
                variant: r.variant.clone(),
                mode: r.mode.clone(),
                requests: r.requests,
                errors: r.errors,
                error_rate: rate(r.errors, r.requests),
                live_error_rate: live.and_then(|v| v.error_rate),
                error_rate_p_value: live
                    .and_then(|v| two_proportions_p(r.errors, r.requests, v.errors, v.requests)),
                latency_p50: r.latency_p50,
                latency_p99: r.latency_p99,
                live_latency_p99: live.and_then(|v| v.latency_ms.p99),
                compared: r.compared,
                mismatches: r.mismatches,
                mismatch_rate: rate(r.mismatches, r.compared),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_proportions_matches_a_hand_computation() {
        // 30/1000 vs 20/1000: pooled 0.025, se = sqrt(0.025·0.975·0.002) = 0.0069821, z = 1.43222.
        let p = two_proportions_p(30, 1000, 20, 1000).unwrap();
        assert!((p - 0.152_08).abs() < 2e-4, "{p}");
        assert_eq!(two_proportions_p(0, 10, 0, 10), Some(1.0));
        assert_eq!(two_proportions_p(1, 0, 0, 10), None);
    }

    #[test]
    fn synthetic_and_shadow_rows_are_split_and_compared() {
        let rows = vec![
            ModeRow {
                variant: "v2".into(),
                mode: "live".into(),
                synthetic: true,
                users: 3,
                requests: 40,
                failures: 4,
                ..Default::default()
            },
            ModeRow {
                variant: "v2".into(),
                mode: "shadow".into(),
                requests: 500,
                errors: 25,
                compared: 400,
                mismatches: 8,
                ..Default::default()
            },
        ];
        let checks = synthetic_checks(&rows);
        assert_eq!(checks.len(), 1);
        assert_eq!(checks[0].success_rate, Some(0.9));
        let shadow = shadow_traffic(&rows, &[]);
        assert_eq!(shadow.len(), 1);
        assert_eq!(
            (shadow[0].error_rate, shadow[0].mismatch_rate),
            (Some(0.05), Some(0.02))
        );
        assert_eq!(
            shadow[0].error_rate_p_value, None,
            "no live traffic to compare with"
        );
    }
}
