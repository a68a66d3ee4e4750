//! Reading the store: the analysis as a DataFusion plan.
//!
//! Stage 1, `queries/analysis_users.sql`: one aggregate grouped by user over every live request,
//! exposure and business event (`user_experiments`, [`user_state`]) gives each user's rows.
//! Stage 2, `queries/analysis_arms.sql`: those rows summed per experiment, segment and variant,
//! with each arm's latency distribution (`latency_distribution`, [`distribution_udaf`]). Beside
//! them `queries/analysis_side_traffic.sql` sums the synthetic checks and shadow calls. [`load`]
//! turns the stage-2 rows into [`ExperimentSummary`](crate::summary::ExperimentSummary)s: what
//! the statistics read is as large as the arms, whatever the number of events. Every stage runs on
//! every core, within the session's memory pool (spilling past it), and on a Ballista cluster.

pub mod codec;
pub mod distribution_udaf;
pub mod load;
pub mod udaf;
pub mod user_state;

#[cfg(test)]
mod tests;

use std::sync::Arc;

use datafusion::datasource::view::ViewTable;
use datafusion::logical_expr::AggregateUDF;
use datafusion::prelude::SessionContext;

use crate::error::{Error, Result};
use crate::queries;

/// The analysis' aggregate functions.
pub fn functions() -> Vec<AggregateUDF> {
    vec![
        AggregateUDF::from(user_state::UserExperimentsUdaf::default()),
        AggregateUDF::from(distribution_udaf::LatencyDistributionUdaf::default()),
    ]
}

/// Registers the analysis' functions in `ctx`.
pub fn register_functions(ctx: &SessionContext) {
    for f in functions() {
        ctx.register_udaf(f);
    }
}

/// The view stage 2 reads: `analysis_users`, queryable like a table.
pub const USERS_VIEW: &str = "analysis_users";

/// Registers `analysis_users` over the session's event tables.
pub async fn register_views(ctx: &SessionContext) -> Result<()> {
    let sql = queries::named(USERS_VIEW)
        .ok_or_else(|| Error::UnknownQuery(USERS_VIEW.into()))?
        .sql;
    let plan = queries::plan_read_only(ctx, USERS_VIEW, sql)
        .await?
        .into_unoptimized_plan();
    ctx.register_table(
        USERS_VIEW,
        Arc::new(ViewTable::new(plan, Some(sql.to_string()))),
    )
    .map_err(Error::query(USERS_VIEW))?;
    Ok(())
}
