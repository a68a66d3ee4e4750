//! Results history: every analysis appends its numbers to Parquet tables under `DATA/_results/`,
//! so that a verdict can be traced back and a metric followed across runs with SQL.
//!
//! - `results`: one row per run × experiment × compared variant × metric, with every number of the
//!   comparison and its guardrail test;
//! - `decisions`: one row per run × experiment: verdict, reasons (the first, the most important,
//!   also on its own in `reason`), method and the counts behind them.
//!
//! Each run writes one file per table (temporary name, then rename), so readers never see half a
//! file and concurrent runs never write the same one; `shiftright query` registers both tables.

use std::path::{Path, PathBuf};

use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use serde::Serialize;
use shiftright_schemas::HistoryTable;

use crate::decide::report::Report;
use crate::error::{Error, Result};

/// One run of `analyze` or `report`.
#[derive(Debug, Clone)]
pub struct Run {
    /// Unique per run: its time, process and sequence, e.g. `20261127T071502.123Z-4242-0`.
    pub id: String,
    /// When it ran, ms since the epoch.
    pub at_ms: i64,
    /// `analyze` or `report`.
    pub command: String,
}

impl Run {
    /// A run of `command` starting now.
    pub fn now(command: &str) -> Self {
        // Time, process and a per-process sequence: unique even for runs in the same millisecond.
        static SEQUENCE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let seq = SEQUENCE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let now = chrono::Utc::now();
        Run {
            id: format!(
                "{}-{}-{seq}",
                now.format("%Y%m%dT%H%M%S%.3fZ"),
                std::process::id()
            ),
            at_ms: now.timestamp_millis(),
            command: command.into(),
        }
    }
}

/// Appends `reports` to both tables under `data_dir`; returns the files written.
pub fn append(data_dir: &Path, run: &Run, reports: &[Report]) -> Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    for table in HistoryTable::ALL {
        let batch = match table {
            HistoryTable::Results => batch(table, &result_rows(run, reports)),
            HistoryTable::Decisions => batch(table, &decision_rows(run, reports)),
        }?;
        if batch.num_rows() == 0 {
            continue;
        }
        written.push(write_file(&table.dir(data_dir), &run.id, &batch)?);
    }
    Ok(written)
}

/// `rows` as a batch of `table`'s schema: serde matches the rows' fields to its columns by name.
/// serde_arrow ignores a field the schema lacks and fills a nullable column no field names with
/// nulls, so a test holds every column to a value (`every_history_column_is_filled`).
fn batch<T: Serialize>(table: HistoryTable, rows: &[T]) -> Result<RecordBatch> {
    Ok(serde_arrow::to_record_batch(
        table.schema().fields(),
        &rows,
    )?)
}

fn write_file(dir: &Path, run_id: &str, batch: &RecordBatch) -> Result<PathBuf> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source: std::io::Error| Error::Write { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let path = dir.join(format!("run-{run_id}.parquet"));
    let tmp = dir.join(format!(".run-{run_id}.parquet.tmp"));
    let file = std::fs::File::create(&tmp).map_err(io(&tmp))?;
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .build();
    let mut writer = ArrowWriter::try_new(file, batch.schema(), Some(props))?;
    writer.write(batch)?;
    let file = writer.into_inner()?;
    file.sync_all().map_err(io(&tmp))?;
    std::fs::rename(&tmp, &path).map_err(io(&path))?;
    Ok(path)
}

/// The columns both tables open with: the run and the experiment.
#[derive(Serialize)]
struct RunColumns<'a> {
    run_id: &'a str,
    /// ms since the epoch (the column is a UTC timestamp).
    run_at: i64,
    command: &'a str,
    experiment: &'a str,
    method: &'a str,
    baseline: Option<&'a str>,
}

impl<'a> RunColumns<'a> {
    fn of(run: &'a Run, r: &'a Report) -> Self {
        RunColumns {
            run_id: &run.id,
            run_at: run.at_ms,
            command: &run.command,
            experiment: &r.experiment,
            method: &r.method,
            baseline: r.baseline.as_deref(),
        }
    }
}

/// One `results` row: a comparison of one variant on one metric, with its guardrail test.
#[derive(Serialize)]
struct ResultRow<'a> {
    #[serde(flatten)]
    run: RunColumns<'a>,
    variant: &'a str,
    metric: &'a str,
    direction: &'static str,
    baseline_users: Option<i64>,
    variant_users: Option<i64>,
    baseline_value: Option<f64>,
    variant_value: Option<f64>,
    absolute_diff: Option<f64>,
    relative_lift: Option<f64>,
    ci_low: Option<f64>,
    ci_high: Option<f64>,
    lift_ci_low: Option<f64>,
    lift_ci_high: Option<f64>,
    p_value: Option<f64>,
    significant: bool,
    guardrail_kind: Option<&'static str>,
    guardrail_direction: Option<&'static str>,
    guardrail_test: Option<&'a str>,
    guardrail_threshold: Option<f64>,
    guardrail_limit: Option<f64>,
    guardrail_observed: Option<f64>,
    guardrail_bound: Option<f64>,
    margin_p_value: Option<f64>,
    margin_p_adjusted: Option<f64>,
    breached: Option<bool>,
    non_inferior: Option<bool>,
    cuped_variance_reduction: Option<f64>,
}

fn result_rows<'a>(run: &'a Run, reports: &'a [Report]) -> Vec<ResultRow<'a>> {
    let mut rows = Vec::new();
    for r in reports {
        let users = |name: &str| {
            r.variants
                .iter()
                .find(|v| v.name == name)
                .map(|v| v.users as i64)
        };
        for c in &r.comparisons {
            let g = c.guardrail.as_ref();
            rows.push(ResultRow {
                run: RunColumns::of(run, r),
                variant: &c.variant,
                metric: c.metric.name(),
                direction: c.direction.name(),
                baseline_users: users(&c.baseline),
                variant_users: users(&c.variant),
                baseline_value: c.baseline_value,
                variant_value: c.variant_value,
                absolute_diff: c.absolute_diff,
                relative_lift: c.relative_lift,
                ci_low: c.ci_low,
                ci_high: c.ci_high,
                lift_ci_low: c.lift_ci_low,
                lift_ci_high: c.lift_ci_high,
                p_value: c.p_value,
                significant: c.significant,
                guardrail_kind: g.map(|g| g.kind.name()),
                guardrail_direction: g.map(|g| g.direction.name()),
                guardrail_test: g.map(|g| g.test.as_str()),
                guardrail_threshold: g.map(|g| g.threshold),
                guardrail_limit: g.map(|g| g.limit),
                guardrail_observed: g.and_then(|g| g.observed),
                guardrail_bound: g.and_then(|g| g.bound),
                margin_p_value: g.and_then(|g| g.margin_p_value),
                margin_p_adjusted: g.and_then(|g| g.margin_p_adjusted),
                breached: g.map(|g| g.breached),
                non_inferior: g.map(|g| g.non_inferior),
                cuped_variance_reduction: c.cuped.as_ref().map(|a| a.variance_reduction),
            });
        }
    }
    rows
}

/// One `decisions` row: an experiment's verdict in one run.
#[derive(Serialize)]
struct DecisionRow<'a> {
    #[serde(flatten)]
    run: RunColumns<'a>,
    verdict: &'static str,
    /// The first, most important, of `reasons`.
    reason: Option<&'a str>,
    reasons: &'a [String],
    confidence: f64,
    users: i64,
    srm_p_value: Option<f64>,
    multiple_variant_users: i64,
    duplicates_dropped: i64,
}

fn decision_rows<'a>(run: &'a Run, reports: &'a [Report]) -> Vec<DecisionRow<'a>> {
    reports
        .iter()
        .map(|r| DecisionRow {
            run: RunColumns::of(run, r),
            verdict: r.verdict.as_str(),
            reason: r.reasons.first().map(String::as_str),
            reasons: &r.reasons,
            confidence: r.confidence,
            users: r.variants.iter().map(|v| v.users as i64).sum(),
            srm_p_value: r.srm.p_value,
            multiple_variant_users: r.data_quality.multiple_variant_users as i64,
            duplicates_dropped: r.data_quality.duplicates_dropped as i64,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every number of a comparison and of its guardrail has a column in `results`, so that the
    /// history keeps what the report shows.
    #[test]
    fn results_columns_cover_the_report_schema() {
        let schema: serde_json::Value =
            serde_json::from_str(include_str!("../../../schemas/report.schema.json")).unwrap();
        let columns: Vec<String> = HistoryTable::Results
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        let comparison = &schema["properties"]["comparisons"]["items"]["properties"];
        for key in comparison.as_object().unwrap().keys() {
            if key == "guardrail" || key == "cuped" || key == "baseline" {
                continue;
            }
            assert!(
                columns.contains(key),
                "comparison field {key} has no column"
            );
        }
        let guardrail = &schema["$defs"]["guardrail"]["properties"];
        for key in guardrail.as_object().unwrap().keys() {
            let candidates = [key.clone(), format!("guardrail_{key}")];
            assert!(
                candidates.iter().any(|c| columns.contains(c)),
                "guardrail field {key} has no column"
            );
        }
    }

    /// queries/README.md documents every column of both tables.
    #[test]
    fn the_query_readme_documents_every_history_column() {
        let readme = include_str!("../../../queries/README.md");
        for table in HistoryTable::ALL {
            for field in table.schema().fields() {
                assert!(
                    readme.contains(&format!("`{}`", field.name())),
                    "queries/README.md does not document {}.{}",
                    table.name(),
                    field.name()
                );
            }
        }
    }

    /// A run is written as one file per table and read back with its rows.
    #[tokio::test]
    async fn appended_runs_are_read_back_as_tables() {
        let dir = tempfile::tempdir().unwrap();
        let users = crate::read::summary::ExperimentSummary::from_user_rows(
            vec![("v1", rows(400, 1)), ("v2", rows(100, 3))],
            None,
        );
        let report = crate::decide::decide("checkout", &users, &Default::default());
        let comparisons = report.comparisons.len();
        assert!(comparisons > 0);
        for _ in 0..2 {
            let files = append(
                dir.path(),
                &Run::now("analyze"),
                std::slice::from_ref(&report),
            )
            .unwrap();
            assert_eq!(files.len(), 2);
        }
        // The event tables must exist for a session; one empty file each is enough.
        std::fs::create_dir_all(dir.path().join("requests")).unwrap();
        let schema = shiftright_schemas::Table::Requests.schema();
        use arrow::datatypes::DataType;
        let file = std::fs::File::create(dir.path().join("requests/empty.parquet")).unwrap();
        ArrowWriter::try_new(file, schema, None)
            .unwrap()
            .close()
            .unwrap();

        let count = |sql: &'static str| {
            let path = dir.path().to_path_buf();
            async move {
                let batches = crate::query(&path, sql).await.unwrap();
                let n = arrow::compute::cast(batches[0].column(0), &DataType::Int64).unwrap();
                arrow::array::AsArray::as_primitive::<arrow::datatypes::Int64Type>(&n).value(0)
            }
        };
        assert_eq!(count("SELECT COUNT(*) FROM decisions").await, 2);
        assert_eq!(
            count("SELECT COUNT(*) FROM results").await,
            2 * comparisons as i64
        );
        assert_eq!(
            count("SELECT COUNT(DISTINCT run_id) FROM results WHERE metric = 'error_rate' AND guardrail_limit = 2.0").await,
            2
        );
    }

    /// serde_arrow fills a column no row field names with nulls: every column of both tables
    /// must get values from a report that has them all (a guardrail, CUPED, an SRM test).
    #[test]
    fn every_history_column_is_filled() {
        use arrow::array::Array;
        let users = crate::read::summary::ExperimentSummary::from_user_rows(
            vec![("v1", rows(400, 1)), ("v2", rows(100, 3))],
            None,
        );
        let file = crate::ExperimentsFile::parse(
            "[experiments.checkout]\nweights = { v1 = 0.8, v2 = 0.2 }\n",
        )
        .unwrap();
        let report = crate::decide::decide("checkout", &users, &file.settings("checkout"));
        assert!(
            report.comparisons.iter().any(|c| c.cuped.is_some()),
            "CUPED was used"
        );
        let run = Run::now("analyze");
        let reports = std::slice::from_ref(&report);
        for (table, batch) in [
            (
                HistoryTable::Results,
                batch(HistoryTable::Results, &result_rows(&run, reports)).unwrap(),
            ),
            (
                HistoryTable::Decisions,
                batch(HistoryTable::Decisions, &decision_rows(&run, reports)).unwrap(),
            ),
        ] {
            assert!(batch.num_rows() > 0);
            for (field, column) in table.schema().fields().iter().zip(batch.columns()) {
                assert!(
                    column.null_count() < column.len(),
                    "{}.{} is never filled",
                    table.name(),
                    field.name()
                );
            }
        }
    }

    fn rows(n: usize, errors: u64) -> crate::read::summary::UserRows {
        crate::read::summary::UserRows::from_rows(
            (0..n)
                .map(|u| {
                    let row = crate::read::summary::UserRow {
                        requests: 10,
                        errors,
                        converted: u % 5 == 0,
                        revenue: if u % 5 == 0 { 20.0 } else { 0.0 },
                        // Spenders spent before too: CUPED has history to use.
                        pre_revenue: if u % 5 == 0 {
                            15.0 + (u % 3) as f64
                        } else {
                            0.0
                        },
                        ..Default::default()
                    };
                    (
                        row,
                        (0..10).map(|r| 50.0 + ((u * 7 + r) % 13) as f64).collect(),
                    )
                })
                .collect(),
        )
    }
}
