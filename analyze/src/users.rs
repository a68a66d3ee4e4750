//! Runs the `user_metrics` query and gathers its rows into per-experiment, per-variant user lists:
//! the input every statistic is computed from. Users seen in two variants and synthetic users are
//! set aside and counted here, so no decision ever sees them.

use std::collections::BTreeMap;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Field, Float64Type, Int64Type};
use datafusion::prelude::SessionContext;
use futures::StreamExt;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::queries;

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

/// Loads every experiment's users (or only `only`'s, when given).
pub async fn load(
    ctx: &SessionContext,
    only: &[String],
) -> Result<BTreeMap<String, ExperimentUsers>> {
    let mut sql = queries::named(QUERY)
        .ok_or_else(|| Error::UnknownQuery(QUERY.into()))?
        .sql
        .to_string();
    if !only.is_empty() {
        let list: Vec<String> = only
            .iter()
            .map(|e| format!("'{}'", e.replace('\'', "''")))
            .collect();
        sql = format!(
            "SELECT * FROM ({sql}) AS m WHERE m.experiment IN ({})",
            list.join(", ")
        );
    }
    let frame = ctx.sql(&sql).await.map_err(Error::query(QUERY))?;
    let mut stream = frame.execute_stream().await.map_err(Error::query(QUERY))?;
    let mut out: BTreeMap<String, ExperimentUsers> = BTreeMap::new();
    let list_type = DataType::List(Arc::new(Field::new_list_field(DataType::Float64, true)));
    while let Some(batch) = stream.next().await {
        let batch = batch.map_err(Error::query(QUERY))?;
        let experiment = column(&batch, "experiment", &DataType::Utf8)?;
        let variant = column(&batch, "variant", &DataType::Utf8)?;
        let variants = column(&batch, "variants", &DataType::Int64)?;
        let synthetic = column(&batch, "synthetic", &DataType::Boolean)?;
        let requests = column(&batch, "requests", &DataType::Int64)?;
        let errors = column(&batch, "errors", &DataType::Int64)?;
        let latencies = column(&batch, "latencies", &list_type)?;
        let converted = column(&batch, "converted", &DataType::Int64)?;
        let revenue = column(&batch, "revenue", &DataType::Float64)?;
        let (experiment, variant) = (experiment.as_string::<i32>(), variant.as_string::<i32>());
        let variants = variants.as_primitive::<Int64Type>();
        let synthetic = synthetic.as_boolean();
        let (requests, errors) = (
            requests.as_primitive::<Int64Type>(),
            errors.as_primitive::<Int64Type>(),
        );
        let latencies = latencies.as_list::<i32>();
        let converted = converted.as_primitive::<Int64Type>();
        let revenue = revenue.as_primitive::<Float64Type>();
        for i in 0..batch.num_rows() {
            let users = out.entry(experiment.value(i).to_string()).or_default();
            let name = variant.value(i);
            if synthetic.value(i) {
                *users.synthetic.entry(name.to_string()).or_default() += 1;
                continue;
            }
            if variants.value(i) > 1 {
                users.multiple_variants += 1;
                continue;
            }
            let lat = if latencies.is_null(i) {
                Vec::new()
            } else {
                let values = latencies.value(i);
                values
                    .as_primitive::<Float64Type>()
                    .iter()
                    .flatten()
                    .collect()
            };
            users
                .variants
                .entry(name.to_string())
                .or_default()
                .push(UserRow {
                    requests: requests.value(i).max(0) as u64,
                    errors: errors.value(i).max(0) as u64,
                    latencies: lat,
                    converted: converted.value(i) > 0,
                    revenue: revenue.value(i),
                });
        }
    }
    load_duplicates(ctx, &mut out).await?;
    Ok(out)
}

/// Counts, per experiment, the events the analysis dropped as resent duplicates.
async fn load_duplicates(
    ctx: &SessionContext,
    out: &mut BTreeMap<String, ExperimentUsers>,
) -> Result<()> {
    const NAME: &str = "duplicate_events";
    let batches = queries::run_named(ctx, NAME).await?;
    for batch in batches {
        let experiment = queries::column(&batch, NAME, "experiment", &DataType::Utf8)?;
        let duplicates = queries::column(&batch, NAME, "duplicates", &DataType::Int64)?;
        let (experiment, duplicates) = (
            experiment.as_string::<i32>(),
            duplicates.as_primitive::<Int64Type>(),
        );
        for i in 0..batch.num_rows() {
            if let Some(users) = out.get_mut(experiment.value(i)) {
                users.duplicates_dropped = duplicates.value(i).max(0) as u64;
            }
        }
    }
    Ok(())
}
