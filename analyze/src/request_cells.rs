//! The analysis' one pass over `requests`.
//!
//! Deduplicating requests by `event_id` is the costliest step of an analysis, and per-user
//! metrics, per-segment guardrails, synthetic checks, shadow calls and the duplicate count each
//! need it. So `queries/request_cells.sql` deduplicates once and groups the events into cells
//! (experiment, user, variant, mode, synthetic, endpoint, region) with their sums and latencies;
//! everything else is folded from the cells here, in memory, without reading the table again.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Field, Float64Type, Int64Type};
use datafusion::prelude::SessionContext;
use futures::StreamExt;

use crate::error::{Error, Result};
use crate::queries;

const QUERY: &str = "request_cells";

/// A map keyed by user (or by user and segment) with a fast, fixed-seed hash: the analysis folds
/// one entry per user, so the hash is on its hot path (SipHash was 8% of an analysis profile).
pub type UserMap<'a, V, K = &'a str> = HashMap<K, V, foldhash::fast::FixedState>;

/// The deduplicated requests of one user with one variant, mode, synthetic flag, endpoint and region.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Cell {
    pub user_id: String,
    pub variant: String,
    /// `live`, `shadow` or `mirror`.
    pub mode: String,
    pub synthetic: bool,
    /// `(none)` when the events did not say.
    pub endpoint: String,
    /// `(none)` when the events did not say.
    pub region: String,
    /// Distinct events.
    pub requests: u64,
    /// Extra copies of resent events (dropped).
    pub duplicates: u64,
    /// Status ≥ 500.
    pub errors: u64,
    /// Status ≥ 400.
    pub failures: u64,
    /// Events that carried `shadow_match`.
    pub compared: u64,
    /// Of those, `shadow_match = false`.
    pub mismatches: u64,
    /// Latency of each event, ms.
    pub latencies: Vec<f64>,
}

impl Cell {
    /// Whether the cell holds live requests (the ones that assign users and are decided on).
    pub fn is_live(&self) -> bool {
        self.mode == "live"
    }
}

/// Requests, errors and latencies summed over cells.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Tally {
    pub requests: u64,
    pub errors: u64,
    pub latencies: Vec<f64>,
}

impl Tally {
    /// Adds a cell's requests, errors and latencies.
    pub fn add(&mut self, cell: &Cell) {
        self.requests += cell.requests;
        self.errors += cell.errors;
        self.latencies.extend_from_slice(&cell.latencies);
    }
}

/// Each user's live requests in one experiment, summed over endpoints and regions.
pub fn live_by_user(cells: &[Cell]) -> UserMap<'_, Tally> {
    let mut out: UserMap<'_, Tally> = HashMap::default();
    for cell in cells.iter().filter(|c| c.is_live()) {
        out.entry(cell.user_id.as_str()).or_default().add(cell);
    }
    out
}

/// Resent request events dropped in one experiment.
pub fn duplicates(cells: &[Cell]) -> u64 {
    cells.iter().map(|c| c.duplicates).sum()
}

/// Runs `request_cells` (restricted to the experiments in `only`, when given) and groups the cells
/// by experiment.
pub async fn load(ctx: &SessionContext, only: &[String]) -> Result<BTreeMap<String, Vec<Cell>>> {
    let sql = queries::restricted(QUERY, only)?;
    let frame = ctx.sql(&sql).await.map_err(Error::query(QUERY))?;
    let mut stream = frame.execute_stream().await.map_err(Error::query(QUERY))?;
    let mut out: BTreeMap<String, Vec<Cell>> = BTreeMap::new();
    while let Some(batch) = stream.next().await {
        read_batch(&batch.map_err(Error::query(QUERY))?, &mut out)?;
    }
    Ok(out)
}

fn read_batch(batch: &RecordBatch, out: &mut BTreeMap<String, Vec<Cell>>) -> Result<()> {
    let col = |name: &str, to: &DataType| queries::column(batch, QUERY, name, to);
    let text: Vec<Arc<dyn Array>> = [
        "experiment",
        "user_id",
        "variant",
        "mode",
        "endpoint",
        "region",
    ]
    .iter()
    .map(|n| col(n, &DataType::Utf8))
    .collect::<Result<_>>()?;
    let ints: Vec<Arc<dyn Array>> = [
        "requests",
        "duplicates",
        "errors",
        "failures",
        "compared",
        "mismatches",
    ]
    .iter()
    .map(|n| col(n, &DataType::Int64))
    .collect::<Result<_>>()?;
    let synthetic = col("synthetic", &DataType::Boolean)?;
    let list_type = DataType::List(Arc::new(Field::new_list_field(DataType::Float64, true)));
    let latencies = col("latencies", &list_type)?;
    let (synthetic, latencies) = (synthetic.as_boolean(), latencies.as_list::<i32>());
    let s = |k: usize, i: usize| text[k].as_string::<i32>().value(i).to_string();
    let n = |k: usize, i: usize| ints[k].as_primitive::<Int64Type>().value(i).max(0) as u64;
    for i in 0..batch.num_rows() {
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
        out.entry(s(0, i)).or_default().push(Cell {
            user_id: s(1, i),
            variant: s(2, i),
            mode: s(3, i),
            synthetic: synthetic.value(i),
            endpoint: s(4, i),
            region: s(5, i),
            requests: n(0, i),
            duplicates: n(1, i),
            errors: n(2, i),
            failures: n(3, i),
            compared: n(4, i),
            mismatches: n(5, i),
            latencies: lat,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(user: &str, mode: &str, requests: u64, errors: u64, latencies: &[f64]) -> Cell {
        Cell {
            user_id: user.into(),
            variant: "v1".into(),
            mode: mode.into(),
            requests,
            errors,
            duplicates: 1,
            latencies: latencies.to_vec(),
            ..Default::default()
        }
    }

    #[test]
    fn live_tallies_sum_a_users_cells_and_leave_out_shadow_calls() {
        let cells = vec![
            cell("u1", "live", 2, 1, &[10.0, 20.0]),
            cell("u1", "live", 1, 0, &[30.0]),
            cell("u1", "shadow", 5, 5, &[1.0; 5]),
            cell("u2", "live", 1, 1, &[40.0]),
        ];
        let by_user = live_by_user(&cells);
        assert_eq!(by_user.len(), 2);
        assert_eq!(
            by_user["u1"],
            Tally {
                requests: 3,
                errors: 1,
                latencies: vec![10.0, 20.0, 30.0]
            }
        );
        assert_eq!(by_user["u2"].errors, 1);
        assert_eq!(duplicates(&cells), 4, "copies count in every mode");
    }
}
