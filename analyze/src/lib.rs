//! shiftright's analysis: DataFusion over the ingest's Parquet, then statistics and a verdict.
//!
//! `register → plan → test → decide`: the tables are registered as listing tables (`tables`);
//! a DataFusion plan of `queries/` with the analysis' own aggregates (`read`) deduplicates the
//! events by `event_id`, gathers them per user and sums them per experiment, segment and variant
//! into [`summary::ExperimentSummary`]s, as large as the arms whatever the number of events; and
//! pure Rust turns those into per-variant metrics, comparisons with the baseline and a verdict
//! (`metrics`, `decision`, `stats`).

pub mod config;
pub mod decision;
pub mod engine;
pub mod error;
pub mod history;
pub mod interner;
pub mod metrics;
pub mod pages;
pub mod queries;
pub mod read;
pub mod render;
pub mod report;
pub mod segments;
pub mod side_traffic;
pub mod stats;
pub mod summary;
pub mod tables;
pub mod user_metrics;

use std::path::Path;

use arrow::record_batch::RecordBatch;

pub use config::{ExperimentSettings, ExperimentsFile};
pub use engine::Engine;
pub use error::{Error, Result};
pub use render::ReportFormat;
pub use report::{Report, Verdict};
pub use tables::ReadOptions;

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
            let report = decision::decide(&name, &users, &experiments.settings(&name));
            tracing::info!(
                experiment = %name, verdict = report.verdict.as_str(),
                elapsed_ms = started.elapsed().as_millis() as u64, "decided"
            );
            (report, users)
        })
        .collect())
}

/// The exit code for a set of reports: the most severe verdict's (ROLLBACK over INVALID over the rest).
pub fn exit_code(reports: &[Report]) -> i32 {
    reports
        .iter()
        .map(|r| r.verdict)
        .max()
        .map_or(0, Verdict::exit_code)
}

/// Renders reports in `format`.
pub fn render(reports: &[Report], format: ReportFormat) -> Result<String> {
    Ok(match format {
        ReportFormat::Table => render::to_table(reports),
        ReportFormat::Markdown => render::to_markdown(reports),
        ReportFormat::Json => serde_json::to_string_pretty(reports)? + "\n",
    })
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
    queries::check_params(sql, params)?;
    let mut frame = queries::plan_read_only(ctx, name, sql).await?;
    if !params.is_empty() {
        frame = frame
            .with_param_values(queries::param_values(params))
            .map_err(Error::query(name))?;
    }
    let schema = std::sync::Arc::new(frame.schema().as_arrow().clone());
    let batches = frame.collect().await.map_err(Error::query(name))?;
    Ok((schema, batches))
}

/// Writes query results to a Parquet file (`--format parquet`), through a temporary file renamed
/// into place.
pub fn write_parquet(
    schema: arrow::datatypes::SchemaRef,
    batches: &[RecordBatch],
    path: &Path,
) -> Result<()> {
    let io = |source| Error::Write {
        path: path.to_path_buf(),
        source,
    };
    let tmp = path.with_extension("parquet.tmp");
    let file = std::fs::File::create(&tmp).map_err(io)?;
    let mut writer = parquet::arrow::ArrowWriter::try_new(file, schema, None)?;
    for b in batches {
        writer.write(b)?;
    }
    writer.close()?;
    std::fs::rename(&tmp, path).map_err(io)
}

/// Output formats of `shiftright query`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryFormat {
    /// An aligned table.
    Table,
    /// CSV with a header.
    Csv,
    /// JSON lines, one object per row.
    Json,
}

/// Renders query results.
pub fn render_batches(batches: &[RecordBatch], format: QueryFormat) -> Result<String> {
    Ok(match format {
        QueryFormat::Table => {
            arrow::util::pretty::pretty_format_batches(batches)?.to_string() + "\n"
        }
        QueryFormat::Csv => {
            let mut buf = Vec::new();
            {
                let mut writer = arrow::csv::WriterBuilder::new()
                    .with_header(true)
                    .build(&mut buf);
                for b in batches {
                    writer.write(b)?;
                }
            }
            String::from_utf8_lossy(&buf).into_owned()
        }
        QueryFormat::Json => {
            let mut buf = Vec::new();
            {
                let mut writer = arrow::json::LineDelimitedWriter::new(&mut buf);
                for b in batches {
                    writer.write(b)?;
                }
                writer.finish()?;
            }
            String::from_utf8_lossy(&buf).into_owned()
        }
    })
}
