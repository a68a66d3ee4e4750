//! How fresh each experiment's data is: its newest event time and its event count
//! (`queries/data_through.sql`). A live server judges a verdict stale when the newest event is
//! old, whatever the verdict says: a canary whose events stopped arriving is not shown healthy.

use std::collections::BTreeMap;

use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, Int64Type};
use datafusion::prelude::SessionContext;

use crate::error::Result;
use crate::read::queries;

/// One experiment's newest event and event count within the session's scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Freshness {
    /// The newest request or exposure time, ms since the epoch (UTC).
    pub data_through_ms: i64,
    /// Requests and exposures, as stored.
    pub events: u64,
}

/// Per experiment with requests or exposures in the session, how fresh its data is.
pub async fn data_through(ctx: &SessionContext) -> Result<BTreeMap<String, Freshness>> {
    const NAME: &str = "data_through";
    let mut out = BTreeMap::new();
    for batch in queries::run_named(ctx, NAME, &[]).await? {
        let experiment = queries::column(&batch, NAME, "experiment", &DataType::Utf8)?;
        let through = queries::column(&batch, NAME, "data_through", &DataType::Int64)?;
        let events = queries::column(&batch, NAME, "events", &DataType::Int64)?;
        let (experiment, through, events) = (
            experiment.as_string::<i32>(),
            through.as_primitive::<Int64Type>(),
            events.as_primitive::<Int64Type>(),
        );
        for i in 0..batch.num_rows() {
            if experiment.is_null(i) || through.is_null(i) {
                continue;
            }
            out.insert(
                experiment.value(i).to_string(),
                Freshness {
                    data_through_ms: through.value(i),
                    events: events.value(i).max(0) as u64,
                },
            );
        }
    }
    Ok(out)
}
