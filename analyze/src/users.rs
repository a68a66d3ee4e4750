//! Runs the `user_metrics` query, joins its rows with each user's live requests (`request_cells`)
//! and gathers them into per-experiment, per-variant user lists: the input every statistic is
//! computed from. Users seen in two variants and synthetic users are
//! set aside and counted here, so no decision ever sees them.

use std::collections::BTreeMap;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Float64Type, Int64Type};
use datafusion::prelude::SessionContext;
use futures::StreamExt;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::queries;
use crate::request_cells::{self, Tally};
use crate::{segments, side_traffic};

/// One user of one experiment, as the decision population sees it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UserRow {
    /// Live requests.
    pub requests: u64,
    /// Of which status ≥ 500.
    pub errors: u64,
    /// Latencies of the live requests, ms.
    pub latencies: Vec<f64>,
    /// Whether the user converted at or after first exposure.
    pub converted: bool,
    /// Business value at or after first exposure.
    pub revenue: f64,
    /// Whether the user converted before first exposure (CUPED's covariate for conversion).
    pub pre_converted: bool,
    /// Business value before first exposure (CUPED's covariate for revenue).
    pub pre_revenue: f64,
}

impl UserRow {
    /// A user with these live requests and no business events.
    pub fn from_requests(requests: Tally) -> Self {
        UserRow {
            requests: requests.requests,
            errors: requests.errors,
            latencies: requests.latencies,
            ..Default::default()
        }
    }
}

/// One experiment's users by variant, with the ones set aside.
#[derive(Debug, Clone, Default)]
pub struct ExperimentUsers {
    /// Non-synthetic users seen in exactly one variant, by variant.
    pub variants: BTreeMap<String, Vec<UserRow>>,
    /// Synthetic users by variant (reported, never decided on).
    pub synthetic: BTreeMap<String, u64>,
    /// Non-synthetic users seen in more than one variant (excluded).
    pub multiple_variants: u64,
    /// Request and exposure events resent under an `event_id` already seen (counted once).
    pub duplicates_dropped: u64,
    /// Synthetic checks and shadow/mirror calls, by variant and mode (`side_traffic`).
    pub modes: Vec<crate::side_traffic::ModeRow>,
    /// Users by endpoint and by region (`segments`).
    pub segments: crate::segments::ExperimentSegments,
}

impl ExperimentUsers {
    /// Non-synthetic users, including those seen in two variants.
    pub fn real_users(&self) -> u64 {
        self.variants.values().map(|v| v.len() as u64).sum::<u64>() + self.multiple_variants
    }
}

const QUERY: &str = "user_metrics";

fn column(batch: &RecordBatch, name: &str, to: &DataType) -> Result<Arc<dyn Array>> {
    queries::column(batch, QUERY, name, to)
}

/// Loads every experiment's users (or only `only`'s, when given): their assignment and business
/// events from `user_metrics`, their live requests from the request cells, which also give each
/// experiment's segments, synthetic checks, shadow calls and resent duplicates.
pub async fn load(
    ctx: &SessionContext,
    only: &[String],
) -> Result<BTreeMap<String, ExperimentUsers>> {
    let started = std::time::Instant::now();
    let cells = request_cells::load(ctx, only).await?;
    tracing::info!(
        experiments = cells.len(),
        cells = cells.values().map(Vec::len).sum::<usize>(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "request cells read"
    );
    let mut live: BTreeMap<&str, request_cells::UserMap<'_, Tally>> = cells
        .iter()
        .map(|(experiment, cells)| (experiment.as_str(), request_cells::live_by_user(cells)))
        .collect();
    let sql = queries::restricted(QUERY, only)?;
    let frame = ctx.sql(&sql).await.map_err(Error::query(QUERY))?;
    let mut stream = frame.execute_stream().await.map_err(Error::query(QUERY))?;
    let mut out: BTreeMap<String, ExperimentUsers> = BTreeMap::new();
    while let Some(batch) = stream.next().await {
        let batch = batch.map_err(Error::query(QUERY))?;
        let experiment = column(&batch, "experiment", &DataType::Utf8)?;
        let variant = column(&batch, "variant", &DataType::Utf8)?;
        let user_id = column(&batch, "user_id", &DataType::Utf8)?;
        let multiple_variants = column(&batch, "multiple_variants", &DataType::Boolean)?;
        let synthetic = column(&batch, "synthetic", &DataType::Boolean)?;
        let exposure_duplicates = column(&batch, "exposure_duplicates", &DataType::Int64)?;
        let converted = column(&batch, "converted", &DataType::Int64)?;
        let revenue = column(&batch, "revenue", &DataType::Float64)?;
        let pre_converted = column(&batch, "pre_converted", &DataType::Int64)?;
        let pre_revenue = column(&batch, "pre_revenue", &DataType::Float64)?;
        let (experiment, variant) = (experiment.as_string::<i32>(), variant.as_string::<i32>());
        let user_id = user_id.as_string::<i32>();
        let multiple_variants = multiple_variants.as_boolean();
        let synthetic = synthetic.as_boolean();
        let exposure_duplicates = exposure_duplicates.as_primitive::<Int64Type>();
        let converted = converted.as_primitive::<Int64Type>();
        let revenue = revenue.as_primitive::<Float64Type>();
        let pre_converted = pre_converted.as_primitive::<Int64Type>();
        let pre_revenue = pre_revenue.as_primitive::<Float64Type>();
        for i in 0..batch.num_rows() {
            let name = experiment.value(i);
            let users = out.entry(name.to_string()).or_default();
            users.duplicates_dropped += exposure_duplicates.value(i).max(0) as u64;
            let variant = variant.value(i);
            if synthetic.value(i) {
                *users.synthetic.entry(variant.to_string()).or_default() += 1;
                continue;
            }
            if multiple_variants.value(i) {
                users.multiple_variants += 1;
                continue;
            }
            // Taken out of the map: each user's latencies are held once, not copied.
            let requests = live
                .get_mut(name)
                .and_then(|by_user| by_user.remove(user_id.value(i)))
                .unwrap_or_default();
            users
                .variants
                .entry(variant.to_string())
                .or_default()
                .push(UserRow {
                    requests: requests.requests,
                    errors: requests.errors,
                    latencies: requests.latencies,
                    converted: converted.value(i) > 0,
                    revenue: revenue.value(i),
                    pre_converted: pre_converted.value(i) > 0,
                    pre_revenue: pre_revenue.value(i),
                });
        }
    }
    drop(live);
    tracing::info!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        "user metrics read"
    );
    for (experiment, cells) in cells {
        if let Some(users) = out.get_mut(&experiment) {
            users.duplicates_dropped += request_cells::duplicates(&cells);
            users.segments = segments::from_cells(&cells);
            users.modes = side_traffic::mode_rows(&cells);
        }
    }
    tracing::info!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        "segments and side traffic folded"
    );
    Ok(out)
}
