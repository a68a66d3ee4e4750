//! `shiftright report`: one day's experiments as pages people read and share — a self-contained
//! HTML page per experiment (verdict banner, tables, inline SVG charts, data quality), an index
//! page, and the same content as Markdown and JSON.
//!
//! The data is cut at the end of the day (events after it are not seen), every experiment with
//! exposures or requests that day is analysed with the same code as `analyze`, and the charts are
//! drawn from the users the verdict was computed from. Pages come from minijinja templates
//! (`analyze/templates/`), charts from plotters (`charts`).

pub mod charts;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, Float64Type, Int64Type};
use chrono::NaiveDate;
use datafusion::prelude::SessionContext;
use minijinja::{context, Environment, Value};
use serde::Serialize;

use crate::config::ExperimentsFile;
use crate::decide::report::Report;
use crate::error::{Error, Result};
use crate::present::render;
use crate::read::summary::ExperimentSummary;
use crate::read::{queries, tables};
use crate::stats::Scale;
use charts::{LiftRow, Series};

const DAY_MS: i64 = 86_400_000;

/// What `report` wrote.
#[derive(Debug)]
pub struct Written {
    /// The reports, by experiment.
    pub reports: Vec<Report>,
    /// Every file written (pages, Markdown, JSON, the index).
    pub files: Vec<PathBuf>,
}

/// Progress of a report run, for a progress bar.
#[derive(Debug, Clone, Copy)]
pub enum Progress {
    /// The analysis is done; `n` experiments get pages.
    Analysed(usize),
    /// One more experiment's page is written.
    PageWritten,
}

/// Analyses every experiment active on `date` over the data up to its end and writes the pages
/// to `out_dir`.
pub async fn write_day(
    data_dir: &Path,
    read: tables::ReadOptions,
    experiments: &ExperimentsFile,
    date: NaiveDate,
    out_dir: &Path,
    progress: &mut dyn FnMut(Progress),
) -> Result<Written> {
    let engine = read.engine.clone();
    write_day_in(data_dir, read, experiments, date, out_dir, progress)
        .await
        .map_err(|e| tables::explain_failure(data_dir, &engine, e))
}

async fn write_day_in(
    data_dir: &Path,
    read: tables::ReadOptions,
    experiments: &ExperimentsFile,
    date: NaiveDate,
    out_dir: &Path,
    progress: &mut dyn FnMut(Progress),
) -> Result<Written> {
    let start = date
        .and_hms_opt(0, 0, 0)
        .map(|t| t.and_utc().timestamp_millis())
        .unwrap_or_default();
    let end = start + DAY_MS;
    // The data up to the day's end: the tables are views of it before the analysis is planned.
    let mut read = read;
    read.scope.to_ms = Some(read.scope.to_ms.map_or(end, |to| to.min(end)));
    let ctx = tables::session_with(data_dir, read.clone()).await?;
    let active = active_experiments(&ctx, start, end).await?;
    if active.is_empty() {
        return Err(Error::NoData {
            path: data_dir.to_path_buf(),
            message: format!(
                "no experiment has exposures or requests on {date}; dates with exposures: {}",
                exposure_dates(data_dir, read).await?.join(", ")
            ),
        });
    }
    let analysed = crate::analyze_in(&ctx, data_dir, experiments, &active).await?;
    progress(Progress::Analysed(analysed.len()));
    let dead_letters = dead_letters_between(&ctx, start, end).await?;
    let env = environment()?;
    std::fs::create_dir_all(out_dir).map_err(io(out_dir))?;
    let mut files = Vec::new();
    let mut index_rows = Vec::new();
    let generated_at = chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string();
    let mut hourly = hourly(&ctx, start).await?;
    let mut stems: HashMap<String, &str> = HashMap::new();
    for (report, users) in &analysed {
        let file = file_stem(&report.experiment);
        // The stems are injective by construction; this makes an overwrite impossible even so.
        if let Some(other) = stems.insert(file.to_lowercase(), &report.experiment) {
            return Err(Error::PageName {
                first: other.to_string(),
                second: report.experiment.clone(),
                stem: file,
            });
        }
        let hours = hourly.remove(&report.experiment).unwrap_or_default();
        let page = ExperimentPage::new(report, users, &hours, &dead_letters)?;
        let html = env.get_template("experiment.html")?.render(page.context(
            date,
            &file,
            &generated_at,
        ))?;
        let markdown = format!(
            "{}\n### Data quality\n\n{}\n",
            render::to_markdown(std::slice::from_ref(report)),
            page.quality
                .iter()
                .map(|q| format!("- {}: {}", q.check, q.status))
                .collect::<Vec<_>>()
                .join("\n")
        );
        let json = serde_json::to_string_pretty(report)? + "\n";
        for (ext, text) in [("html", html), ("md", markdown), ("json", json)] {
            files.push(write(out_dir, &format!("{file}.{ext}"), &text)?);
        }
        index_rows.push(context! {
            name => report.experiment.clone(),
            file => file,
            verdict => report.verdict.as_str(),
            users => report.variants.iter().map(|v| v.users).sum::<u64>(),
            reason => report.reasons.first().cloned().unwrap_or_default(),
        });
        progress(Progress::PageWritten);
    }
    let dead_total: u64 = dead_letters.values().sum();
    let index = env.get_template("index.html")?.render(context! {
        date => date.to_string(),
        experiments => index_rows,
        dead_letters => dead_total,
        version => env!("CARGO_PKG_VERSION"),
        generated_at => generated_at,
    })?;
    files.push(write(out_dir, "index.html", &index)?);
    let reports: Vec<Report> = analysed.into_iter().map(|(r, _)| r).collect();
    let index_md = format!(
        "# Experiments of {date}\n\n| experiment | verdict | why |\n|---|---|---|\n{}",
        reports
            .iter()
            .map(|r| format!(
                "| [{}]({}.md) | **{}** | {} |\n",
                r.experiment,
                file_stem(&r.experiment),
                r.verdict,
                r.reasons
                    .first()
                    .map_or("", String::as_str)
                    .replace('|', "\\|")
            ))
            .collect::<String>()
    );
    files.push(write(out_dir, "index.md", &index_md)?);
    Ok(Written { reports, files })
}

/// The templates, compiled into the binary.
fn environment() -> Result<Environment<'static>> {
    let mut env = Environment::new();
    env.add_template("style.css", include_str!("../../../templates/style.css"))?;
    env.add_template(
        "experiment.html",
        include_str!("../../../templates/experiment.html"),
    )?;
    env.add_template("index.html", include_str!("../../../templates/index.html"))?;
    Ok(env)
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.to_path_buf();
    move |source| Error::Write { path, source }
}

fn write(dir: &Path, name: &str, text: &str) -> Result<PathBuf> {
    let path = dir.join(name);
    std::fs::write(&path, text).map_err(io(&path))?;
    Ok(path)
}

/// The file name stem of an experiment's pages: bounded and injective (see
/// `shiftright_schemas::keys`), so two experiments never write the same page.
pub use shiftright_schemas::file_stem;

/// The window parameters of the day-bounded queries.
fn window(start: i64, end: i64) -> [(&'static str, String); 2] {
    [("start_ms", start.to_string()), ("end_ms", end.to_string())]
}

/// Column `column` of every batch of query `name`, as strings.
fn strings(batches: &[arrow::array::RecordBatch], name: &str, column: &str) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for b in batches {
        let col = queries::column(b, name, column, &DataType::Utf8)?;
        let col = col.as_string::<i32>();
        out.extend(
            (0..col.len())
                .filter(|&i| !col.is_null(i))
                .map(|i| col.value(i).to_string()),
        );
    }
    Ok(out)
}

async fn active_experiments(ctx: &SessionContext, start: i64, end: i64) -> Result<Vec<String>> {
    const NAME: &str = "active_experiments";
    strings(
        &queries::run_named(ctx, NAME, &window(start, end)).await?,
        NAME,
        "experiment",
    )
}

/// The dates with exposures in the whole store (the error above names them).
async fn exposure_dates(data_dir: &Path, mut read: tables::ReadOptions) -> Result<Vec<String>> {
    const NAME: &str = "exposure_dates";
    read.scope = Default::default();
    let ctx = tables::session_with(data_dir, read).await?;
    strings(&queries::run_named(&ctx, NAME, &[]).await?, NAME, "date")
}

async fn dead_letters_between(
    ctx: &SessionContext,
    start: i64,
    end: i64,
) -> Result<BTreeMap<String, u64>> {
    const NAME: &str = "dead_letters_between";
    let batches = queries::run_named(ctx, NAME, &window(start, end)).await?;
    let mut out = BTreeMap::new();
    for b in &batches {
        let reason = queries::column(b, NAME, "reason", &DataType::Utf8)?;
        let n = queries::column(b, NAME, "messages", &DataType::Int64)?;
        let (reason, n) = (reason.as_string::<i32>(), n.as_primitive::<Int64Type>());
        for i in 0..b.num_rows() {
            out.insert(reason.value(i).to_string(), n.value(i).max(0) as u64);
        }
    }
    Ok(out)
}

/// One hour of one variant (the `hourly` query).
#[derive(Debug, Clone, PartialEq)]
struct HourRow {
    /// Hour of the day, 0–23.
    hour: f64,
    variant: String,
    error_rate: Option<f64>,
    p99_ms: Option<f64>,
}

/// The day's hours of every experiment, by experiment: one run of the `hourly` query.
async fn hourly(ctx: &SessionContext, day_start: i64) -> Result<BTreeMap<String, Vec<HourRow>>> {
    const NAME: &str = "hourly";
    let batches = queries::run_named(ctx, NAME, &[("experiment", "*".into())]).await?;
    let mut out: BTreeMap<String, Vec<HourRow>> = BTreeMap::new();
    for b in &batches {
        let col = |name: &str, to: &DataType| queries::column(b, NAME, name, to);
        let experiment = col("experiment", &DataType::Utf8)?;
        let experiment = experiment.as_string::<i32>();
        // The hour as ms since the epoch, whatever unit date_trunc returns.
        let hour = col(
            "hour",
            &DataType::Timestamp(arrow::datatypes::TimeUnit::Millisecond, Some("UTC".into())),
        )?;
        let hour = arrow::compute::cast(&hour, &DataType::Int64)?;
        let variant = col("variant", &DataType::Utf8)?;
        let (rate, p99) = (
            col("error_rate", &DataType::Float64)?,
            col("p99_ms", &DataType::Float64)?,
        );
        let (hour, variant) = (hour.as_primitive::<Int64Type>(), variant.as_string::<i32>());
        let (rate, p99) = (
            rate.as_primitive::<Float64Type>(),
            p99.as_primitive::<Float64Type>(),
        );
        for i in 0..b.num_rows() {
            let offset = hour.value(i) - day_start;
            if !(0..DAY_MS).contains(&offset) {
                continue;
            }
            out.entry(experiment.value(i).to_string())
                .or_default()
                .push(HourRow {
                    hour: offset as f64 / 3_600_000.0,
                    variant: variant.value(i).to_string(),
                    error_rate: (!rate.is_null(i)).then(|| rate.value(i)),
                    p99_ms: (!p99.is_null(i)).then(|| p99.value(i)),
                });
        }
    }
    Ok(out)
}

/// A data-quality line of a page.
#[derive(Debug, Clone, Serialize)]
struct Quality {
    check: String,
    status: String,
    /// `ok` or `bad` (drawn red).
    state: &'static str,
}

/// One experiment's page, before rendering.
struct ExperimentPage<'a> {
    report: &'a Report,
    forest_svg: String,
    cdf_svg: String,
    hourly_errors_svg: String,
    hourly_p99_svg: String,
    quality: Vec<Quality>,
}

impl<'a> ExperimentPage<'a> {
    fn new(
        report: &'a Report,
        users: &ExperimentSummary,
        hourly: &[HourRow],
        dead_letters: &BTreeMap<String, u64>,
    ) -> Result<Self> {
        Ok(ExperimentPage {
            report,
            forest_svg: charts::forest_plot(&lift_rows(report))?,
            cdf_svg: latency_cdf(report, users)?,
            hourly_errors_svg: hourly_chart(
                hourly,
                "Error rate by hour",
                "error rate",
                |r| r.error_rate,
                &|y| format!("{:.2}%", y * 100.0),
            )?,
            hourly_p99_svg: hourly_chart(
                hourly,
                "p99 latency by hour",
                "ms",
                |r| r.p99_ms,
                &|y| format!("{y:.0}"),
            )?,
            quality: quality(report, dead_letters),
        })
    }

    fn context(&self, date: NaiveDate, file: &str, generated_at: &str) -> Value {
        let r = self.report;
        let (variant_header, variant_rows) = render::variant_rows(r, true);
        let (comparison_header, comparison_rows) = render::comparison_rows(r);
        context! {
            experiment => r.experiment.clone(),
            experiment_file => file,
            verdict => r.verdict.as_str(),
            reasons => r.reasons.clone(),
            date => date.to_string(),
            baseline => r.baseline.clone().unwrap_or_else(|| "none".into()),
            method => render::method_line(r),
            confidence => format!("{:.0}%", r.confidence * 100.0),
            users => r.variants.iter().map(|v| v.users).sum::<u64>(),
            variant_header => variant_header,
            variant_rows => variant_rows,
            comparison_header => comparison_header,
            comparison_rows => comparison_rows,
            forest_svg => Value::from_safe_string(self.forest_svg.clone()),
            cdf_svg => Value::from_safe_string(self.cdf_svg.clone()),
            hourly_errors_svg => Value::from_safe_string(self.hourly_errors_svg.clone()),
            hourly_p99_svg => Value::from_safe_string(self.hourly_p99_svg.clone()),
            quality => self.quality.clone(),
            version => env!("CARGO_PKG_VERSION"),
            generated_at => generated_at,
        }
    }
}

/// The forest plot's rows: every comparison with a lift CI; ratio guardrails show their limit.
fn lift_rows(report: &Report) -> Vec<LiftRow> {
    report
        .comparisons
        .iter()
        .filter_map(|c| {
            Some(LiftRow {
                label: format!("{} · {}", c.metric, c.variant),
                lift: c.relative_lift?,
                low: c.lift_ci_low?,
                high: c.lift_ci_high?,
                limit: c
                    .guardrail
                    .as_ref()
                    .filter(|g| g.kind == Scale::Ratio)
                    .map(|g| g.limit - 1.0),
            })
        })
        .collect()
}

fn latency_cdf(report: &Report, users: &ExperimentSummary) -> Result<String> {
    let mut series = Vec::new();
    let mut markers = Vec::new();
    for v in &report.variants {
        let Some(rows) = users.variants.get(&v.name) else {
            continue;
        };
        if let Some(p99) = v.latency_ms.p99 {
            markers.push((series.len(), p99, format!("{} p99 {p99:.0} ms", v.name)));
        }
        series.push(Series {
            name: v.name.clone(),
            points: charts::cdf_points(&rows.latencies, 200),
        });
    }
    charts::line_chart(
        "Latency distribution (CDF of live requests, to the 99.9th percentile)",
        "latency, ms",
        "share of requests at or below",
        &series,
        &markers,
        &|x| format!("{x:.0}"),
        &|y| format!("{:.0}%", y * 100.0),
    )
}

fn hourly_chart(
    rows: &[HourRow],
    title: &str,
    y_desc: &str,
    value: impl Fn(&HourRow) -> Option<f64>,
    y_label: &dyn Fn(&f64) -> String,
) -> Result<String> {
    let mut by_variant: BTreeMap<&str, Vec<(f64, f64)>> = BTreeMap::new();
    for r in rows {
        if let Some(v) = value(r) {
            by_variant.entry(&r.variant).or_default().push((r.hour, v));
        }
    }
    let series: Vec<Series> = by_variant
        .into_iter()
        .map(|(name, mut points)| {
            points.sort_by(|a, b| a.0.total_cmp(&b.0));
            Series {
                name: name.to_string(),
                points,
            }
        })
        .collect();
    charts::line_chart(
        title,
        "hour of the day (UTC)",
        y_desc,
        &series,
        &[],
        &|x| {
            let minutes = (x * 60.0).round() as i64;
            format!("{:02}:{:02}", minutes / 60, minutes % 60)
        },
        y_label,
    )
}

fn quality(r: &Report, dead_letters: &BTreeMap<String, u64>) -> Vec<Quality> {
    let ok = |good: bool| if good { "ok" } else { "bad" };
    let mut out = vec![
        Quality {
            check: "sample ratio".into(),
            status: render::srm_line(r),
            state: ok(r.srm.p_value.is_none_or(|p| p >= 0.001)),
        },
        Quality {
            check: "users in two variants".into(),
            status: format!(
                "{} ({:.2}% of users; excluded)",
                r.data_quality.multiple_variant_users,
                r.data_quality.multiple_variant_share * 100.0
            ),
            state: ok(r.data_quality.multiple_variant_share <= 0.01),
        },
        Quality {
            check: "duplicates dropped".into(),
            status: format!(
                "{} resent events counted once",
                r.data_quality.duplicates_dropped
            ),
            state: "ok",
        },
        Quality {
            check: "dead letters that day (all topics)".into(),
            status: if dead_letters.is_empty() {
                "none".into()
            } else {
                dead_letters
                    .iter()
                    .map(|(reason, n)| format!("{n} {reason}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            },
            state: ok(dead_letters.is_empty()),
        },
        Quality {
            check: "synthetic users".into(),
            status: if r.data_quality.synthetic_users.is_empty() {
                "none".into()
            } else {
                r.data_quality
                    .synthetic_users
                    .iter()
                    .map(|(v, n)| format!("{n} on {v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
                    + " (excluded from the verdict)"
            },
            state: "ok",
        },
    ];
    for line in render::side_lines(r) {
        out.push(Quality {
            check: "beside the verdict".into(),
            status: line,
            state: "ok",
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_render_with_escaping() {
        let env = environment().unwrap();
        let html = env
            .get_template("index.html")
            .unwrap()
            .render(context! {
                date => "2026-11-27",
                experiments => vec![context! { name => "<x>", file => "x", verdict => "PROMOTE", users => 3, reason => "a & b" }],
                dead_letters => 0,
                version => "0",
                generated_at => "now",
            })
            .unwrap();
        assert!(
            html.contains("&lt;x&gt;") && html.contains("a &amp; b"),
            "{html}"
        );
        assert!(html.contains("class=\"promote\""));
    }
}
