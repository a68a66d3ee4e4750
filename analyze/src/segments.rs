//! Per-segment guardrails: the error-rate and p99 tests within each endpoint and region.
//!
//! A canary that breaks one endpoint can look healthy overall when that endpoint is a small share
//! of traffic. So each segment with traffic in both arms gets its own guardrail tests, corrected
//! together (Holm or BH, as configured) so that many segments do not mean many false rollbacks,
//! and a segment may roll back only when both arms have its own minimum sample of users there.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::config::ExperimentSettings;
use crate::metrics::{compare, variant_stats};
use crate::report::Guardrail;
use crate::summary::ArmSummary;

/// One segment's arms by variant (`analysis_arms` rows of dimension `endpoint` or `region`).
pub type SegmentUsers = BTreeMap<String, ArmSummary>;

/// Segments of one experiment, keyed by (dimension, segment).
pub type ExperimentSegments = BTreeMap<(String, String), SegmentUsers>;

/// A guardrail test within a segment.
#[derive(Debug, Clone, Serialize)]
pub struct SegmentGuardrail {
    /// `endpoint` or `region`.
    pub dimension: String,
    /// The endpoint or region (`(none)` when events did not say).
    pub segment: String,
    /// A request metric with a guardrail (`error_rate`, `latency_p99`, … as configured).
    pub metric: String,
    /// Compared variant.
    pub variant: String,
    /// Users of the baseline in this segment.
    pub baseline_users: u64,
    /// Users of the variant in this segment.
    pub variant_users: u64,
    /// Baseline's value in the segment.
    pub baseline_value: Option<f64>,
    /// Variant's value in the segment.
    pub variant_value: Option<f64>,
    /// The margin test, its p-value corrected across every segment test of the experiment;
    /// breached when significant after correction with both arms past `segment_min_users`.
    pub guardrail: Guardrail,
}

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
                    baseline_users: base.users,
                    variant_users: variant.users,
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
