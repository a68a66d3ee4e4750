//! Per-segment guardrails: the error-rate and p99 tests within each endpoint and region.
//!
//! A canary that breaks one endpoint can look healthy overall when that endpoint is a small share
//! of traffic. So each segment with traffic in both arms gets its own guardrail tests, corrected
//! together (Holm or BH, as configured) so that many segments do not mean many false rollbacks,
//! and a segment may roll back only when both arms have its own minimum sample of users there.

use crate::config::ExperimentSettings;
use crate::decide::metrics::{compare, variant_stats};
use crate::decide::report::SegmentGuardrail;
use crate::read::summary::ExperimentSegments;

/// The guardrail tests of every segment against `baseline`, corrected together.
pub fn guardrails(
    segments: &ExperimentSegments,
    baseline: &str,
    settings: &ExperimentSettings,
) -> Vec<SegmentGuardrail> {
    let alpha = settings.alpha();
    // Segment users carry requests only: business guardrails are tested overall.
    let mut settings = settings.clone();
    settings.guardrails.retain(|g| g.metric.from_requests());
    settings.metrics.clear();
    let mut out = Vec::new();
    for ((dimension, segment), users) in segments {
        let stats_by_variant = variant_stats(users, alpha);
        let Some(base) = stats_by_variant.get(baseline) else {
            continue;
        };
        for (name, variant) in stats_by_variant
            .iter()
            .filter(|(n, _)| n.as_str() != baseline)
        {
            for c in compare(base, variant, &settings) {
                let Some(guardrail) = c.guardrail else {
                    continue;
                };
                out.push(SegmentGuardrail {
                    dimension: dimension.clone(),
                    segment: segment.clone(),
                    metric: c.metric,
                    variant: name.clone(),
                    baseline_users: base.arm.users,
                    variant_users: variant.arm.users,
                    baseline_value: c.baseline_value,
                    variant_value: c.variant_value,
                    guardrail,
                });
            }
        }
    }
    let tested: Vec<usize> = (0..out.len())
        .filter(|&i| out[i].guardrail.margin_p_value.is_some())
        .collect();
    let raw: Vec<f64> = tested
        .iter()
        .map(|&i| out[i].guardrail.margin_p_value.unwrap_or(1.0))
        .collect();
    let adjusted = settings.correction.adjust(&raw);
    for (&i, p) in tested.iter().zip(adjusted) {
        let g = &mut out[i];
        let enough = g.baseline_users >= settings.segment_min_users
            && g.variant_users >= settings.segment_min_users;
        g.guardrail.margin_p_adjusted = Some(p);
        g.guardrail.breached = enough && p < alpha;
    }
    out
}
