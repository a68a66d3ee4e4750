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
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanBuilder, Float64Builder, Int64Builder, ListBuilder, RecordBatch,
    StringBuilder, TimestampMillisecondBuilder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

use crate::error::{Error, Result};
use crate::report::Report;

/// The directory under the data root that holds the history tables.
pub const RESULTS_DIR: &str = "_results";

/// The history tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HistoryTable {
    Results,
    Decisions,
}

impl HistoryTable {
    /// Both tables.
    pub const ALL: [HistoryTable; 2] = [HistoryTable::Results, HistoryTable::Decisions];

    /// The table's SQL name (and directory under `_results/`).
    pub fn name(self) -> &'static str {
        match self {
            HistoryTable::Results => "results",
            HistoryTable::Decisions => "decisions",
        }
    }

    /// The table's directory under `data_dir`.
    pub fn dir(self, data_dir: &Path) -> PathBuf {
        data_dir.join(RESULTS_DIR).join(self.name())
    }

    /// The table's Arrow schema.
    pub fn schema(self) -> SchemaRef {
        let run = [
            Field::new("run_id", DataType::Utf8, false),
            Field::new("run_at", timestamp(), false),
            Field::new("command", DataType::Utf8, false),
            Field::new("experiment", DataType::Utf8, false),
            Field::new("method", DataType::Utf8, false),
            Field::new("baseline", DataType::Utf8, true),
        ];
        let num = |name: &str| Field::new(name, DataType::Float64, true);
        let rest: Vec<Field> = match self {
            HistoryTable::Results => vec![
                Field::new("variant", DataType::Utf8, false),
                Field::new("metric", DataType::Utf8, false),
                Field::new("baseline_users", DataType::Int64, true),
                Field::new("variant_users", DataType::Int64, true),
                num("baseline_value"),
                num("variant_value"),
                num("absolute_diff"),
                num("relative_lift"),
                num("ci_low"),
                num("ci_high"),
                num("lift_ci_low"),
                num("lift_ci_high"),
                num("p_value"),
                Field::new("significant", DataType::Boolean, false),
                Field::new("guardrail_kind", DataType::Utf8, true),
                Field::new("guardrail_direction", DataType::Utf8, true),
                Field::new("guardrail_test", DataType::Utf8, true),
                num("guardrail_threshold"),
                num("guardrail_limit"),
                num("guardrail_observed"),
                num("guardrail_bound"),
                num("margin_p_value"),
                num("margin_p_adjusted"),
                Field::new("breached", DataType::Boolean, true),
                Field::new("non_inferior", DataType::Boolean, true),
                num("cuped_variance_reduction"),
            ],
            HistoryTable::Decisions => vec![
                Field::new("verdict", DataType::Utf8, false),
                Field::new("reason", DataType::Utf8, true),
                Field::new(
                    "reasons",
                    DataType::List(Arc::new(Field::new_list_field(DataType::Utf8, true))),
                    false,
                ),
                Field::new("confidence", DataType::Float64, false),
                Field::new("users", DataType::Int64, false),
                num("srm_p_value"),
                Field::new("multiple_variant_users", DataType::Int64, false),
                Field::new("duplicates_dropped", DataType::Int64, false),
            ],
        };
        Arc::new(Schema::new(run.into_iter().chain(rest).collect::<Vec<_>>()))
    }
}

fn timestamp() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
}

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
            HistoryTable::Results => results_batch(run, reports),
            HistoryTable::Decisions => decisions_batch(run, reports),
        }?;
        if batch.num_rows() == 0 {
            continue;
        }
        written.push(write_file(&table.dir(data_dir), &run.id, &batch)?);
    }
    Ok(written)
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

/// Builders shared by both tables' run columns.
struct RunColumns {
    run_id: StringBuilder,
    run_at: TimestampMillisecondBuilder,
    command: StringBuilder,
    experiment: StringBuilder,
    method: StringBuilder,
    baseline: StringBuilder,
}

impl RunColumns {
    fn new() -> Self {
        RunColumns {
            run_id: StringBuilder::new(),
            run_at: TimestampMillisecondBuilder::new().with_timezone("UTC"),
            command: StringBuilder::new(),
            experiment: StringBuilder::new(),
            method: StringBuilder::new(),
            baseline: StringBuilder::new(),
        }
    }

    fn push(&mut self, run: &Run, r: &Report) {
        self.run_id.append_value(&run.id);
        self.run_at.append_value(run.at_ms);
        self.command.append_value(&run.command);
        self.experiment.append_value(&r.experiment);
        self.method.append_value(&r.method);
        self.baseline.append_option(r.baseline.as_deref());
    }

    fn finish(mut self) -> Vec<ArrayRef> {
        vec![
            Arc::new(self.run_id.finish()),
            Arc::new(self.run_at.finish()),
            Arc::new(self.command.finish()),
            Arc::new(self.experiment.finish()),
            Arc::new(self.method.finish()),
            Arc::new(self.baseline.finish()),
        ]
    }
}

fn results_batch(run: &Run, reports: &[Report]) -> Result<RecordBatch> {
    let mut runs = RunColumns::new();
    let (mut variant, mut metric) = (StringBuilder::new(), StringBuilder::new());
    let (mut base_users, mut var_users) = (Int64Builder::new(), Int64Builder::new());
    // baseline_value … p_value, then the guardrail's numbers and CUPED's.
    let mut nums: Vec<Float64Builder> = (0..9).map(|_| Float64Builder::new()).collect();
    let mut guard_nums: Vec<Float64Builder> = (0..6).map(|_| Float64Builder::new()).collect();
    let mut cuped = Float64Builder::new();
    let mut significant = BooleanBuilder::new();
    let (mut kind, mut direction) = (StringBuilder::new(), StringBuilder::new());
    let mut test = StringBuilder::new();
    let (mut breached, mut non_inferior) = (BooleanBuilder::new(), BooleanBuilder::new());
    for r in reports {
        let users = |name: &str| {
            r.variants
                .iter()
                .find(|v| v.name == name)
                .map(|v| v.users as i64)
        };
        for c in &r.comparisons {
            runs.push(run, r);
            variant.append_value(&c.variant);
            metric.append_value(&c.metric);
            base_users.append_option(users(&c.baseline));
            var_users.append_option(users(&c.variant));
            let values = [
                c.baseline_value,
                c.variant_value,
                c.absolute_diff,
                c.relative_lift,
                c.ci_low,
                c.ci_high,
                c.lift_ci_low,
                c.lift_ci_high,
                c.p_value,
            ];
            for (b, v) in nums.iter_mut().zip(values) {
                b.append_option(v);
            }
            significant.append_value(c.significant);
            let g = c.guardrail.as_ref();
            kind.append_option(g.map(|g| g.kind.name()));
            direction.append_option(g.map(|g| g.direction.name()));
            test.append_option(g.map(|g| g.test.as_str()));
            let guard_values = [
                g.map(|g| g.threshold),
                g.map(|g| g.limit),
                g.and_then(|g| g.observed),
                g.and_then(|g| g.bound),
                g.and_then(|g| g.margin_p_value),
                g.and_then(|g| g.margin_p_adjusted),
            ];
            for (b, v) in guard_nums.iter_mut().zip(guard_values) {
                b.append_option(v);
            }
            breached.append_option(g.map(|g| g.breached));
            non_inferior.append_option(g.map(|g| g.non_inferior));
            cuped.append_option(c.cuped.as_ref().map(|a| a.variance_reduction));
        }
    }
    let mut columns = runs.finish();
    columns.push(Arc::new(variant.finish()));
    columns.push(Arc::new(metric.finish()));
    columns.push(Arc::new(base_users.finish()));
    columns.push(Arc::new(var_users.finish()));
    columns.extend(nums.iter_mut().map(|b| Arc::new(b.finish()) as ArrayRef));
    columns.push(Arc::new(significant.finish()));
    columns.push(Arc::new(kind.finish()));
    columns.push(Arc::new(direction.finish()));
    columns.push(Arc::new(test.finish()));
    columns.extend(
        guard_nums
            .iter_mut()
            .map(|b| Arc::new(b.finish()) as ArrayRef),
    );
    columns.push(Arc::new(breached.finish()));
    columns.push(Arc::new(non_inferior.finish()));
    columns.push(Arc::new(cuped.finish()));
    Ok(RecordBatch::try_new(
        HistoryTable::Results.schema(),
        columns,
    )?)
}

fn decisions_batch(run: &Run, reports: &[Report]) -> Result<RecordBatch> {
    let mut runs = RunColumns::new();
    let mut verdict = StringBuilder::new();
    let mut first_reason = StringBuilder::new();
    let mut reasons = ListBuilder::new(StringBuilder::new())
        .with_field(Arc::new(Field::new_list_field(DataType::Utf8, true)));
    let mut confidence = Float64Builder::new();
    let mut users = Int64Builder::new();
    let mut srm_p = Float64Builder::new();
    let mut multiple = Int64Builder::new();
    let mut duplicates = Int64Builder::new();
    for r in reports {
        runs.push(run, r);
        verdict.append_value(r.verdict.as_str());
        first_reason.append_option(r.reasons.first());
        for reason in &r.reasons {
            reasons.values().append_value(reason);
        }
        reasons.append(true);
        confidence.append_value(r.confidence);
        users.append_value(r.variants.iter().map(|v| v.users as i64).sum());
        srm_p.append_option(r.srm.p_value);
        multiple.append_value(r.data_quality.multiple_variant_users as i64);
        duplicates.append_value(r.data_quality.duplicates_dropped as i64);
    }
    let mut columns = runs.finish();
    columns.push(Arc::new(verdict.finish()));
    columns.push(Arc::new(first_reason.finish()));
    columns.push(Arc::new(reasons.finish()));
    columns.push(Arc::new(confidence.finish()));
    columns.push(Arc::new(users.finish()));
    columns.push(Arc::new(srm_p.finish()));
    columns.push(Arc::new(multiple.finish()));
    columns.push(Arc::new(duplicates.finish()));
    Ok(RecordBatch::try_new(
        HistoryTable::Decisions.schema(),
        columns,
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every number of a comparison and of its guardrail has a column in `results`, so that the
    /// history keeps what the report shows.
    #[test]
    fn results_columns_cover_the_report_schema() {
        let schema: serde_json::Value =
            serde_json::from_str(include_str!("../../schemas/report.schema.json")).unwrap();
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
        let readme = include_str!("../../queries/README.md");
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
        let users = crate::summary::ExperimentSummary::from_user_rows(
            vec![("v1", rows(400, 1)), ("v2", rows(100, 3))],
            None,
        );
        let report = crate::decision::decide("checkout", &users, &Default::default());
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

    fn rows(n: usize, errors: u64) -> crate::summary::UserRows {
        crate::summary::UserRows::from_rows(
            (0..n)
                .map(|u| {
                    let row = crate::summary::UserRow {
                        requests: 10,
                        errors,
                        converted: u % 5 == 0,
                        revenue: if u % 5 == 0 { 20.0 } else { 0.0 },
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
