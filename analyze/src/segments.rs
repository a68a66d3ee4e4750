//! Per-segment guardrails: the error-rate and p99 tests within each endpoint and region.
//!
//! A canary that breaks one endpoint can look healthy overall when that endpoint is a small share
//! of traffic. So each segment with traffic in both arms gets its own guardrail tests, corrected
//! together (Holm or BH, as configured) so that many segments do not mean many false rollbacks,
//! and a segment may roll back only when both arms have its own minimum sample of users there.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde::Serialize;

use crate::config::ExperimentSettings;
use crate::fold::ExperimentEvents;
use crate::metrics::{compare, variant_stats};
use crate::report::Guardrail;
use crate::stats::ClusteredSample;
use crate::users::{Assignment, UserRow, VariantUsers};

/// One segment's users by variant.
pub type SegmentUsers = BTreeMap<String, VariantUsers>;

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

/// Above this many index entries (segments × users decided on) a dimension's users are found
/// by hashing instead of by a dense index (4 bytes an entry, 256 MiB).
const DENSE_INDEX_LIMIT: usize = 1 << 26;

/// Each user's row within one segment, by the user's row in its variant: dense (fast) while
/// segments are few, hashed when a dense index would not fit the budget above.
enum RowOf {
    Dense(Vec<u32>),
    Hashed(HashMap<u32, u32, foldhash::fast::FixedState>),
}

impl RowOf {
    /// The segment row of variant row `row`, `next` if it has none yet.
    fn get_or_insert(&mut self, row: u32, next: u32) -> u32 {
        match self {
            RowOf::Dense(rows) => {
                let at = &mut rows[row as usize];
                if *at == u32::MAX {
                    *at = next;
                }
                *at
            }
            RowOf::Hashed(rows) => *rows.entry(row).or_insert(next),
        }
    }
}

/// The users of one variant within one segment, as they are gathered.
struct SegmentVariant {
    row_of: RowOf,
    rows: Vec<UserRow>,
    /// (latency, row) of each request.
    latencies: Vec<(f64, u32)>,
}

/// The segments of one experiment: by endpoint and by region, the users the decision is made on
/// (non-synthetic, in one variant: `assignment`) with their live requests there. A segment's
/// users are the experiment's, so a user left out of the verdict is left out of every segment.
/// Dimensions with a single segment are left out (they repeat the overall test).
pub fn from_requests(events: &ExperimentEvents, assignment: &Assignment) -> ExperimentSegments {
    let variants = assignment.variants.len();
    let mut out = ExperimentSegments::new();
    for (dimension, segment_of, names) in [
        ("endpoint", &events.live.endpoint, &events.endpoints),
        ("region", &events.live.region, &events.regions),
    ] {
        // One dimension at a time: its gathering holds about 16 bytes a request.
        let dense = names.len() * assignment.users() <= DENSE_INDEX_LIMIT;
        let mut cells: Vec<SegmentVariant> = (0..names.len() * variants)
            .map(|k| SegmentVariant {
                row_of: if dense {
                    RowOf::Dense(vec![u32::MAX; assignment.variants[k % variants].1.len()])
                } else {
                    RowOf::Hashed(HashMap::default())
                },
                rows: Vec::new(),
                latencies: Vec::new(),
            })
            .collect();
        for (i, to) in assignment.of_request(events).enumerate() {
            let Some((slot, row)) = to else {
                continue;
            };
            let cell = &mut cells[segment_of[i] as usize * variants + slot as usize];
            let next = cell.rows.len() as u32;
            let at = cell.row_of.get_or_insert(row, next);
            if at == next {
                cell.rows.push(UserRow::default());
            }
            let user = &mut cell.rows[at as usize];
            user.requests += 1;
            user.errors += u64::from(events.live.error[i]);
            cell.latencies.push((events.live.latency[i], at));
        }
        let mut segments: BTreeMap<(String, String), SegmentUsers> = BTreeMap::new();
        for (k, cell) in cells.into_iter().enumerate() {
            if cell.rows.is_empty() {
                continue;
            }
            let (segment, slot) = (k / variants, k % variants);
            let users = VariantUsers {
                users: cell.rows,
                latencies: Arc::new(ClusteredSample::from_pairs(cell.latencies)),
            };
            segments
                .entry((dimension.to_string(), names.get(segment as u32).to_string()))
                .or_default()
                .insert(assignment.variants[slot].0.clone(), users);
        }
        if segments.len() > 1 {
            out.extend(segments);
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fold::LiveRequests;

    /// An experiment whose live requests are (user, endpoint, region, error), 10 ms each.
    fn requests(live: &[(u32, &str, &str, bool)]) -> ExperimentEvents {
        let mut r = ExperimentEvents::default();
        let mut columns = LiveRequests::default();
        for &(user, endpoint, region, error) in live {
            columns.latency.push(10.0);
            columns.user.push(user);
            columns.endpoint.push(r.endpoints.intern(endpoint));
            columns.region.push(r.regions.intern(region));
            columns.error.push(error);
        }
        r.live = columns;
        r
    }

    #[test]
    fn dense_and_hashed_row_indexes_agree() {
        let mut dense = RowOf::Dense(vec![u32::MAX; 10]);
        let mut hashed = RowOf::Hashed(HashMap::default());
        for (row, next, expected) in [(3, 0, 0), (5, 1, 1), (3, 2, 0), (9, 2, 2), (5, 3, 1)] {
            assert_eq!(dense.get_or_insert(row, next), expected);
            assert_eq!(hashed.get_or_insert(row, next), expected);
        }
    }

    #[test]
    fn requests_become_segment_users_and_single_segment_dimensions_are_dropped() {
        // Users 0 and 2 are in v1, user 1 in v2; user 3 (synthetic, say) is not decided on.
        let r = requests(&[
            (0, "/a", "eu", true),
            (0, "/b", "eu", false),
            (0, "/a", "eu", false),
            (1, "/a", "eu", true),
            (2, "/b", "eu", false),
            (3, "/a", "eu", false),
        ]);
        let assignment = Assignment {
            variants: vec![
                ("v1".into(), vec![UserRow::default(); 2]),
                ("v2".into(), vec![UserRow::default()]),
            ],
            of_user: vec![Some((0, 0)), Some((1, 0)), Some((0, 1)), None],
        };
        let segments = from_requests(&r, &assignment);
        assert!(
            segments.keys().all(|(d, _)| d == "endpoint"),
            "one region only: {:?}",
            segments.keys()
        );
        let a = &segments[&("endpoint".to_string(), "/a".to_string())];
        assert_eq!(a["v1"].users.len(), 1, "user 0; user 3 is left out");
        assert_eq!((a["v1"].users[0].requests, a["v1"].users[0].errors), (2, 1));
        assert_eq!(a["v1"].latencies.len(), 2);
        assert_eq!(a["v2"].users.len(), 1);
        let b = &segments[&("endpoint".to_string(), "/b".to_string())];
        assert_eq!(b["v1"].users.len(), 2, "users 0 and 2");
        assert!(!b.contains_key("v2"));
    }
}
