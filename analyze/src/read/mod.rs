//! Reading the store: the analysis as a DataFusion plan.
//!
//! Stage 1, `queries/analysis_users.sql`: one aggregate grouped by user over every live request,
//! exposure and business event (`user_experiments`, [`user_state`]) gives each user's rows.
//! Stage 2, `queries/analysis_arms.sql`: those rows summed per experiment, segment and variant,
//! with each arm's latency distribution (`latency_distribution`, [`distribution_udaf`]). Beside
//! them `queries/analysis_side_traffic.sql` sums the synthetic checks and shadow calls. [`load`]
//! turns the stage-2 rows into [`ExperimentSummary`](crate::read::summary::ExperimentSummary)s: what
//! the statistics read is as large as the arms, whatever the number of events. Every stage runs on
//! every core, within the session's memory pool (spilling past it), and on a Ballista cluster.

pub mod codec;
pub mod distribution_udaf;
pub mod engine;
pub mod fold;
pub mod freshness;
pub mod interner;
pub mod load;
pub mod metric_columns;
pub mod one_step;
pub mod quantile_udf;
pub mod queries;
pub mod scope;
pub mod summary;
pub mod tables;
pub mod udaf;
pub mod user_state;

#[cfg(test)]
mod fold_tests;
#[cfg(test)]
mod ramp_tests;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use datafusion::datasource::view::ViewTable;
use datafusion::logical_expr::{AggregateUDF, ScalarUDF};
use datafusion::prelude::SessionContext;

use crate::error::{Error, Result};

/// The analysis' aggregate functions.
pub fn functions() -> Vec<AggregateUDF> {
    let mut all: Vec<AggregateUDF> = user_state::Form::ALL
        .into_iter()
        .map(|form| AggregateUDF::from(user_state::UserExperimentsUdaf::of(form)))
        .collect();
    all.push(AggregateUDF::from(
        distribution_udaf::LatencyDistributionUdaf::default(),
    ));
    all
}

/// The analysis' scalar functions: `latency_quantile`, to read a distribution in SQL.
pub fn scalar_functions() -> Vec<ScalarUDF> {
    vec![ScalarUDF::from(quantile_udf::LatencyQuantileUdf::default())]
}

/// Registers the analysis' functions in `ctx`. A Ballista scheduler and its executors register
/// the same lists (`shiftright-cluster`), so plans naming them can be decoded there.
pub fn register_functions(ctx: &SessionContext) {
    for f in functions() {
        ctx.register_udaf(f);
    }
    for f in scalar_functions() {
        ctx.register_udf(f);
    }
}

/// The stages registered as views, queryable like tables, each after those it reads.
pub const VIEWS: [&str; 3] = ["analysis_users", "analysis_arms", "analysis_side_traffic"];

/// Registers the stages of [`VIEWS`] over the session's event tables.
pub(crate) async fn register_views(ctx: &SessionContext, users: tables::Users) -> Result<()> {
    for name in VIEWS {
        let mut sql = queries::named(name)
            .ok_or_else(|| Error::UnknownQuery(name.into()))?
            .sql
            .to_string();
        if let (tables::Users::States(schema, states), true) = (&users, name == fold::USERS) {
            fold::register_states(ctx, schema.clone(), states.clone())?;
            sql = fold::users_from_states_sql()?;
        }
        let plan = queries::plan_read_only(ctx, name, &sql)
            .await?
            .into_unoptimized_plan();
        let view = ViewTable::new(plan, Some(sql));
        ctx.register_table(name, Arc::new(view))
            .map_err(Error::query(name))?;
    }
    Ok(())
}
