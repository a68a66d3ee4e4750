//! Per-segment guardrails: the error-rate and p99 tests within each endpoint and region.
//!
//! A canary that breaks one endpoint can look healthy overall when that endpoint is a small share
//! of traffic. So each segment with traffic in both arms gets its own guardrail tests, corrected
//! together (Holm or BH, as configured) so that many segments do not mean many false rollbacks,
//! and a segment may roll back only when both arms have its own minimum sample of users there.

use std::collections::BTreeMap;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Field, Float64Type, Int64Type};
use datafusion::prelude::SessionContext;
use serde::Serialize;

use crate::config::{Correction, ExperimentSettings};
use crate::error::Result;
use crate::metrics::{compare, variant_stats};
use crate::queries;
use crate::stats;
use crate::users::UserRow;

const QUERY: &str = "segment_users";

/// One segment's users by variant.
pub type SegmentUsers = BTreeMap<String, Vec<UserRow>>;

/// Segments of one experiment, keyed by (dimension, segment).
pub type ExperimentSegments = BTreeMap<(String, String), SegmentUsers>;

/// A guardrail test within a segment.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SegmentGuardrail {
    /// `endpoint` or `region`.
    pub dimension: String,
    /// The endpoint or region (`(none)` when events did not say).
    pub segment: String,
    /// `error_rate` or `latency_p99`.
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
    /// Threshold ratio.
    pub threshold: f64,
    /// Observed ratio.
    pub ratio: Option<f64>,
    /// One-sided upper confidence bound of the ratio.
    pub ratio_upper: Option<f64>,
    /// One-sided p-value of "ratio above the threshold".
    pub margin_p_value: Option<f64>,
    /// Corrected across every segment test of the experiment.
    pub margin_p_adjusted: Option<f64>,
    /// Significant after correction with both arms past `segment_min_users`: roll back.
    pub breached: bool,
}

/// Loads `segment_users`: by experiment, non-synthetic users seen in one variant of a segment.
/// Dimensions with a single segment are left out (they repeat the overall test).
pub async fn load(ctx: &SessionContext) -> Result<BTreeMap<String, ExperimentSegments>> {
    let batches = queries::run_named(ctx, QUERY).await?;
    let mut out: BTreeMap<String, ExperimentSegments> = BTreeMap::new();
    let list_type = DataType::List(std::sync::Arc::new(Field::new_list_field(
        DataType::Float64,
        true,
    )));
    for batch in &batches {
        read_batch(batch, &list_type, &mut out)?;
    }
    for segments in out.values_mut() {
        let mut per_dimension: BTreeMap<String, usize> = BTreeMap::new();
        for (dimension, _) in segments.keys() {
            *per_dimension.entry(dimension.clone()).or_default() += 1;
        }
        segments.retain(|(dimension, _), _| per_dimension[dimension] > 1);
    }
    Ok(out)
}

fn read_batch(
    batch: &RecordBatch,
    list_type: &DataType,
    out: &mut BTreeMap<String, ExperimentSegments>,
) -> Result<()> {
    let col = |name: &str, to: &DataType| queries::column(batch, QUERY, name, to);
    let (experiment, dimension, segment, variant) = (
        col("experiment", &DataType::Utf8)?,
        col("dimension", &DataType::Utf8)?,
        col("segment", &DataType::Utf8)?,
        col("variant", &DataType::Utf8)?,
    );
    let (variants, synthetic) = (
        col("variants", &DataType::Int64)?,
        col("synthetic", &DataType::Boolean)?,
    );
    let (requests, errors) = (
        col("requests", &DataType::Int64)?,
        col("errors", &DataType::Int64)?,
    );
    let latencies = col("latencies", list_type)?;
    let latencies = latencies.as_list::<i32>();
    let text = |a: &std::sync::Arc<dyn Array>, i: usize| a.as_string::<i32>().value(i).to_string();
    for i in 0..batch.num_rows() {
        if synthetic.as_boolean().value(i) || variants.as_primitive::<Int64Type>().value(i) > 1 {
            continue;
        }
        let lat = if latencies.is_null(i) {
            Vec::new()
        } else {
            latencies
                .value(i)
                .as_primitive::<Float64Type>()
                .iter()
                .flatten()
                .collect()
        };
        out.entry(text(&experiment, i))
            .or_default()
            .entry((text(&dimension, i), text(&segment, i)))
            .or_default()
            .entry(text(&variant, i))
            .or_default()
            .push(UserRow {
                requests: requests.as_primitive::<Int64Type>().value(i).max(0) as u64,
                errors: errors.as_primitive::<Int64Type>().value(i).max(0) as u64,
                latencies: lat,
                converted: false,
                revenue: 0.0,
            });
    }
    Ok(())
}

/// The guardrail tests of every segment against `baseline`, corrected together.
pub fn guardrails(
    segments: &ExperimentSegments,
    baseline: &str,
    settings: &ExperimentSettings,
) -> Vec<SegmentGuardrail> {
    let alpha = settings.alpha();
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
            for c in compare(base, variant, settings) {
                let Some(g) = c.guardrail else { continue };
                out.push(SegmentGuardrail {
                    dimension: dimension.clone(),
                    segment: segment.clone(),
                    metric: c.metric,
                    variant: name.clone(),
                    baseline_users: base.users,
                    variant_users: variant.users,
                    baseline_value: c.baseline_value,
                    variant_value: c.variant_value,
                    threshold: g.threshold,
                    ratio: g.ratio,
                    ratio_upper: g.ratio_upper,
                    margin_p_value: g.margin_p_value,
                    margin_p_adjusted: None,
                    breached: false,
                });
            }
        }
    }
    let tested: Vec<usize> = (0..out.len())
        .filter(|&i| out[i].margin_p_value.is_some())
        .collect();
    let raw: Vec<f64> = tested
        .iter()
        .map(|&i| out[i].margin_p_value.unwrap_or(1.0))
        .collect();
    let adjusted = match settings.correction {
        Correction::Holm => stats::holm(&raw),
        Correction::Bh => stats::benjamini_hochberg(&raw),
    };
    for (&i, p) in tested.iter().zip(adjusted) {
        let g = &mut out[i];
        g.margin_p_adjusted = Some(p);
        let enough = g.baseline_users >= settings.segment_min_users
            && g.variant_users >= settings.segment_min_users;
        g.breached = enough && p < alpha;
    }
    out
}
