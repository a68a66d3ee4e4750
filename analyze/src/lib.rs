//! shiftright's analysis: DataFusion over the ingest's Parquet, then statistics and a verdict.
//!
//! The folders follow the data, each reading only those before it:
//! - `config`: the experiments file (thresholds, guardrails, user-defined metrics);
//! - `read`: the store as DataFusion tables (`tables`, `engine`) and the analysis as a plan of
//!   `queries/` with its own aggregates, which deduplicates the events by `event_id`, gathers them
//!   per user and sums them per experiment, segment and variant into
//!   [`read::summary::ExperimentSummary`]s, as large as the arms whatever the number of events;
//! - `decide`: pure Rust from those summaries to per-variant metrics, comparisons with the
//!   baseline and a verdict ([`decide::report::Report`]), over `stats`, the statistics alone;
//! - `present`: the report for people and machines, query results, the nightly pages and the
//!   results history.
//!
//! This file joins them: [`analyze`] (read → decide) and [`query`] (SQL over the store).

pub mod config;
pub mod decide;
pub mod error;
pub mod present;
pub mod read;
pub mod stats;

use std::path::Path;

use arrow::record_batch::RecordBatch;

pub use config::{ExperimentSettings, ExperimentsFile};
pub use decide::report::{Report, Verdict};
pub use error::{Error, Result};
pub use present::output::{render_batches, write_parquet, QueryFormat};
pub use present::render::{render, ReportFormat};
pub use read::engine::Engine;
pub use read::tables::ReadOptions;

use read::{queries, summary, tables};

/// Analyses the experiments found under `data_dir` (all of them, or only those in `only`), with the
/// settings of `experiments`. Reports are sorted by experiment.
pub async fn analyze(
    data_dir: &Path,
    experiments: &ExperimentsFile,
    only: &[String],
) -> Result<Vec<Report>> {
    analyze_with(data_dir, ReadOptions::default(), experiments, only).await
}

/// [`analyze`], reading the store as `read` says. A failure on a damaged file names the file.
pub async fn analyze_with(
    data_dir: &Path,
    read: ReadOptions,
    experiments: &ExperimentsFile,
    only: &[String],
) -> Result<Vec<Report>> {
    let engine = read.engine.clone();
    let run = async {
        let ctx = tables::session_with(data_dir, read).await?;
        analyze_in(&ctx, data_dir, experiments, only).await
    };
    Ok(run
        .await
        .map_err(|e| tables::explain_failure(data_dir, &engine, e))?
        .into_iter()
        .map(|(report, _)| report)
        .collect())
}

/// [`analyze`] over the tables of `ctx`, returning each report with the summary it was computed
/// from (for charts). `data_dir` only names the data in errors.
pub async fn analyze_in(
    ctx: &datafusion::prelude::SessionContext,
    data_dir: &Path,
    experiments: &ExperimentsFile,
    only: &[String],
) -> Result<Vec<(Report, summary::ExperimentSummary)>> {
    let all = read::load::load(ctx, only, experiments).await?;
    if let Some(missing) = only.iter().find(|e| !all.contains_key(*e)) {
        return Err(Error::NoData {
            path: data_dir.to_path_buf(),
            message: format!(
                "experiment {missing:?} has no exposures or requests; experiments present: {}",
                all.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
        });
    }
    Ok(all
        .into_iter()
        .map(|(name, users)| {
            let started = std::time::Instant::now();
            let report = decide::decide(&name, &users, &experiments.settings(&name));
            tracing::info!(
                experiment = %name, verdict = report.verdict.as_str(),
                elapsed_ms = started.elapsed().as_millis() as u64, "decided"
            );
            (report, users)
        })
        .collect())
}

/// Which experiments have requests or exposures from `from_ms` on, and how fresh each one's data
/// is; reads only the dates from `from_ms` on. An empty store has none.
pub async fn active_since(
    data_dir: &Path,
    mut read: ReadOptions,
    from_ms: i64,
) -> Result<std::collections::BTreeMap<String, read::freshness::Freshness>> {
    read.scope = read::scope::Scope {
        from_ms: Some(from_ms),
        ..Default::default()
    };
    let engine = read.engine.clone();
    match tables::session_with(data_dir, read).await {
        Ok(ctx) => read::freshness::data_through(&ctx)
            .await
            .map_err(|e| tables::explain_failure(data_dir, &engine, e)),
        Err(Error::NoData { .. }) if data_dir.is_dir() => Ok(Default::default()),
        Err(e) => Err(e),
    }
}

/// One experiment analysed over its own events from `from_ms` on (only its partitions and those
/// dates are read), with how fresh its data is; `None` when it has no requests or exposures
/// there.
pub async fn analyze_live(
    data_dir: &Path,
    mut read: ReadOptions,
    experiments: &ExperimentsFile,
    experiment: &str,
    from_ms: Option<i64>,
) -> Result<Option<(Report, read::freshness::Freshness)>> {
    read.scope = read::scope::Scope::experiments_from([experiment.to_string()], from_ms);
    let engine = read.engine.clone();
    let run = async {
        let ctx = match tables::session_with(data_dir, read).await {
            Ok(ctx) => ctx,
            Err(Error::NoData { .. }) if data_dir.is_dir() => return Ok(None),
            Err(e) => return Err(e),
        };
        live_in(&ctx, data_dir, experiments, experiment).await
    };
    run.await
        .map_err(|e| tables::explain_failure(data_dir, &engine, e))
}

/// One experiment's report and freshness over the tables of `ctx`; `None` when it has no
/// requests or exposures there.
async fn live_in(
    ctx: &datafusion::prelude::SessionContext,
    data_dir: &Path,
    experiments: &ExperimentsFile,
    experiment: &str,
) -> Result<Option<(Report, read::freshness::Freshness)>> {
    let Some(freshness) = read::freshness::data_through(ctx).await?.remove(experiment) else {
        return Ok(None);
    };
    let mut analysed = analyze_in(ctx, data_dir, experiments, &[experiment.to_string()]).await?;
    Ok(analysed.pop().map(|(report, _)| (report, freshness)))
}

/// [`analyze_live`] for a server that evaluates again and again: the users' states of the files
/// read before are kept in `folded`, and only the files that are new since are read for them
/// (`read::fold` says what is still read whole, and when the fold starts again). The report is
/// the one [`analyze_live`] gives; the step says what was read. A cluster engine reads its window
/// whole each time (its plans cannot carry the kept states).
pub async fn analyze_live_folded(
    data_dir: &Path,
    mut read: ReadOptions,
    experiments: &ExperimentsFile,
    experiment: &str,
    from_ms: Option<i64>,
    folded: &mut read::fold::Folded,
) -> Result<Option<(Report, read::freshness::Freshness, read::fold::FoldStep)>> {
    if read.engine.cluster.is_some() {
        let outcome = analyze_live(data_dir, read, experiments, experiment, from_ms).await?;
        return Ok(outcome.map(|(report, fresh)| (report, fresh, Default::default())));
    }
    read.scope = read::scope::Scope::experiments_from([experiment.to_string()], from_ms);
    let engine = read.engine.clone();
    let run = async {
        let listed = match tables::list(data_dir, &read) {
            Ok(listed) => listed,
            Err(Error::NoData { .. }) if data_dir.is_dir() => return Ok(None),
            Err(e) => return Err(e),
        };
        let read_ref = &read;
        let step = folded
            .advance(from_ms, &listed, &engine, experiment, |new| async move {
                tables::session_over(data_dir, read_ref, &new, tables::Users::Events).await
            })
            .await;
        let step = match step {
            Ok(step) => step,
            Err(e) => {
                // Nothing half-merged is kept: the next evaluation starts the fold again.
                *folded = Default::default();
                return Err(e);
            }
        };
        let users = match folded.users_source() {
            Some((schema, states)) => tables::Users::States(schema, states),
            None => tables::Users::Events,
        };
        let ctx = tables::session_over(data_dir, &read, &listed, users).await?;
        let live = live_in(&ctx, data_dir, experiments, experiment).await?;
        Ok(live.map(|(report, freshness)| (report, freshness, step)))
    };
    run.await
        .map_err(|e| tables::explain_failure(data_dir, &engine, e))
}

/// The exit code for a set of reports: the most severe verdict's (ROLLBACK over INVALID over the rest).
pub fn exit_code(reports: &[Report]) -> i32 {
    reports
        .iter()
        .map(|r| r.verdict)
        .max()
        .map_or(0, Verdict::exit_code)
}

/// Runs SQL over the tables under `data_dir` and returns the result batches.
pub async fn query(data_dir: &Path, sql: &str) -> Result<Vec<RecordBatch>> {
    Ok(query_with(data_dir, sql, &[]).await?.1)
}

/// Runs SQL with named parameters (`$experiment` in the SQL, `("experiment", "checkout-v2")`
/// here, bound as strings) and returns the result's schema and batches. Every placeholder must
/// have a value and every value a placeholder.
pub async fn query_with(
    data_dir: &Path,
    sql: &str,
    params: &[(String, String)],
) -> Result<(arrow::datatypes::SchemaRef, Vec<RecordBatch>)> {
    query_with_options(data_dir, ReadOptions::default(), sql, params).await
}

/// [`query_with`], reading the store as `read` says. A failure on a damaged file names the file.
pub async fn query_with_options(
    data_dir: &Path,
    read: ReadOptions,
    sql: &str,
    params: &[(String, String)],
) -> Result<(arrow::datatypes::SchemaRef, Vec<RecordBatch>)> {
    let engine = read.engine.clone();
    let run = async {
        let ctx = tables::session_with(data_dir, read).await?;
        query_in(&ctx, "user query", sql, params).await
    };
    run.await
        .map_err(|e| tables::explain_failure(data_dir, &engine, e))
}

/// Runs SQL with named parameters in an existing session; `name` says which query failed.
pub async fn query_in(
    ctx: &datafusion::prelude::SessionContext,
    name: &str,
    sql: &str,
    params: &[(String, String)],
) -> Result<(arrow::datatypes::SchemaRef, Vec<RecordBatch>)> {
    queries::run(ctx, name, sql, params).await
}
