//! Per-segment guardrails: the error-rate and p99 tests within each endpoint and region.
//!
//! A canary that breaks one endpoint can look healthy overall when that endpoint is a small share
//! of traffic. So each segment with traffic in both arms gets its own guardrail tests, corrected
//! together (Holm or BH, as configured) so that many segments do not mean many false rollbacks,
//! and a segment may roll back only when both arms have its own minimum sample of users there.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use crate::config::{Correction, ExperimentSettings};
use crate::metrics::{compare, variant_stats};
use crate::report::Guardrail;
use crate::request_cells::{Cell, Tally, UserMap};
use crate::stats;
use crate::users::UserRow;

/// One segment's users by variant.
pub type SegmentUsers = BTreeMap<String, Vec<UserRow>>;

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

/// One user's live requests within one segment, before the user is known to be eligible.
#[derive(Default)]
struct SegmentUser<'a> {
    /// The first variant seen.
    variant: Option<&'a str>,
    /// Seen in more than one variant.
    mixed: bool,
    synthetic: bool,
    requests: Tally,
}

/// The segments of one experiment from its request cells: by endpoint and by region, the
/// non-synthetic users seen in one variant there, with their live requests. Dimensions with a
/// single segment are left out (they repeat the overall test).
pub fn from_cells(cells: &[Cell]) -> ExperimentSegments {
    // Hashed, not a BTreeMap: string comparisons and per-user key allocations dominated an
    // analysis here (profiled at 10⁶ events).
    type Key<'a> = (&'static str, &'a str, &'a str);
    let mut by_user: UserMap<'_, SegmentUser<'_>, Key<'_>> = HashMap::default();
    for cell in cells.iter().filter(|c| c.is_live()) {
        for (dimension, segment) in [("endpoint", &cell.endpoint), ("region", &cell.region)] {
            let user = by_user
                .entry((dimension, segment.as_str(), cell.user_id.as_str()))
                .or_default();
            match user.variant {
                None => user.variant = Some(&cell.variant),
                Some(v) => user.mixed |= v != cell.variant,
            }
            user.synthetic |= cell.synthetic;
            user.requests.add(cell);
        }
    }
    let mut by_variant: UserMap<'_, Vec<UserRow>, Key<'_>> = HashMap::default();
    for ((dimension, segment, _), user) in by_user {
        let Some(variant) = user.variant.filter(|_| !user.synthetic && !user.mixed) else {
            continue;
        };
        by_variant
            .entry((dimension, segment, variant))
            .or_default()
            .push(UserRow::from_requests(user.requests));
    }
    let mut out = ExperimentSegments::new();
    for ((dimension, segment, variant), users) in by_variant {
        out.entry((dimension.to_string(), segment.to_string()))
            .or_default()
            .insert(variant.to_string(), users);
    }
    let mut per_dimension: BTreeMap<String, usize> = BTreeMap::new();
    for (dimension, _) in out.keys() {
        *per_dimension.entry(dimension.clone()).or_default() += 1;
    }
    out.retain(|(dimension, _), _| per_dimension[dimension] > 1);
    out
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
    let mut out = Vec::new();
    for ((dimension, segment), users) in segments {
        let stats_by_variant = variant_stats(users, alpha, None);
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
    let adjusted = match settings.correction {
        Correction::Holm => stats::holm(&raw),
        Correction::Bh => stats::benjamini_hochberg(&raw),
    };
    for (&i, p) in tested.iter().zip(adjusted) {
        let g = &mut out[i];
        let enough = g.baseline_users >= settings.segment_min_users
            && g.variant_users >= settings.segment_min_users;
        g.guardrail.margin_p_adjusted = Some(p);
        g.guardrail.breached = enough && p < alpha;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(user: &str, variant: &str, endpoint: &str, region: &str, errors: u64) -> Cell {
        Cell {
            user_id: user.into(),
            variant: variant.into(),
            mode: "live".into(),
            endpoint: endpoint.into(),
            region: region.into(),
            requests: 2,
            errors,
            latencies: vec![10.0, 20.0],
            ..Default::default()
        }
    }

    #[test]
    fn cells_become_segment_users_and_single_segment_dimensions_are_dropped() {
        let mut synthetic = cell("probe", "v2", "/a", "eu", 0);
        synthetic.synthetic = true;
        let mut shadow = cell("u1", "v1", "/c", "eu", 2);
        shadow.mode = "shadow".into();
        let segments = from_cells(&[
            cell("u1", "v1", "/a", "eu", 1),
            cell("u1", "v1", "/b", "eu", 0),
            cell("u2", "v2", "/a", "eu", 2),
            cell("u3", "v1", "/a", "eu", 0),
            cell("u3", "v2", "/b", "eu", 0),
            synthetic,
            shadow,
        ]);
        assert!(
            segments.keys().all(|(d, _)| d == "endpoint"),
            "one region only: {:?}",
            segments.keys()
        );
        let a = &segments[&("endpoint".to_string(), "/a".to_string())];
        assert_eq!(a["v1"].len(), 2, "u1 and u3 (one variant within /a)");
        assert_eq!(a["v2"].len(), 1, "u2; the probe is left out");
        assert_eq!(a["v1"][0].errors + a["v1"][1].errors, 1);
        let b = &segments[&("endpoint".to_string(), "/b".to_string())];
        assert_eq!((b["v1"].len(), b["v2"].len()), (1, 1));
        assert!(!segments.contains_key(&("endpoint".to_string(), "/c".to_string())));
    }
}
