//! Reports for people: a terminal table and Markdown. (JSON is the report struct serialised.)

use std::fmt::Write as _;

use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::Table;

use crate::decide::report::{Comparison, Report};
use crate::error::Result;

/// Output formats of `shiftright analyze`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportFormat {
    /// Terminal tables.
    Table,
    /// The JSON report (`schemas/report.schema.json`), an array of one object per experiment.
    Json,
    /// Markdown, for pull requests and chat.
    Markdown,
}

fn num(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "–".into(), |x| format!("{x:.digits$}"))
}

pub(crate) fn pct(v: Option<f64>) -> String {
    v.map_or_else(|| "–".into(), |x| format!("{:.3}%", x * 100.0))
}

fn interval(lo: Option<f64>, hi: Option<f64>, scale: f64, digits: usize) -> String {
    match (lo, hi) {
        (Some(l), Some(h)) => format!("[{:.digits$}, {:.digits$}]", l * scale, h * scale),
        _ => "–".into(),
    }
}

fn value_of(c: &Comparison, v: Option<f64>) -> String {
    if c.metric.is_share() {
        pct(v)
    } else {
        num(v, 2)
    }
}

/// The variant table, the experiments file's own metrics (`[[metrics]]`) last; `with_ci` adds
/// each metric's confidence interval under its value (pages and Markdown, where there is room).
pub(crate) fn variant_rows(report: &Report, with_ci: bool) -> (Vec<String>, Vec<Vec<String>>) {
    let ci = |i: Option<crate::decide::report::Interval>, scale: f64, digits: usize| match i {
        Some(i) if with_ci => format!(" [{:.digits$}, {:.digits$}]", i.low * scale, i.high * scale),
        _ => String::new(),
    };
    let q = |v: &crate::decide::report::VariantMetrics, name: &str| {
        let e = v.latency_ci.get(name);
        let value = num(e.and_then(|e| e.value), 1);
        match e.map(|e| (e.ci_low, e.ci_high)) {
            Some((Some(l), Some(h))) if with_ci => format!("{value} [{l:.1}, {h:.1}]"),
            _ => value,
        }
    };
    let defined: Vec<&String> = report
        .variants
        .first()
        .map(|v| v.metrics.keys().collect())
        .unwrap_or_default();
    let header = [
        "variant",
        "users",
        "share",
        "requests",
        "errors",
        "error rate",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "conversion",
        "revenue/user",
    ]
    .into_iter()
    .map(String::from)
    .chain(defined.iter().map(|m| m.to_string()))
    .collect();
    let rows = report
        .variants
        .iter()
        .map(|v| {
            let own = defined.iter().map(|m| {
                let value = v.metrics.get(*m);
                num(value.and_then(|x| x.value), 3) + &ci(value.and_then(|x| x.ci), 1.0, 3)
            });
            let mut row = vec![
                v.name.clone(),
                v.users.to_string(),
                format!("{:.2}%", v.share * 100.0),
                v.requests.to_string(),
                v.errors.to_string(),
                pct(v.error_rate) + &ci(v.error_rate_ci, 100.0, 3),
                q(v, "p50"),
                q(v, "p95"),
                q(v, "p99"),
                pct(v.conversion_rate) + &ci(v.conversion_rate_ci, 100.0, 3),
                num(v.revenue_per_user, 3) + &ci(v.revenue_per_user_ci, 1.0, 3),
            ];
            row.extend(own);
            row
        })
        .collect();
    (header, rows)
}

pub(crate) fn comparison_rows(report: &Report) -> (Vec<String>, Vec<Vec<String>>) {
    let header = [
        "metric",
        "variant",
        "baseline",
        "value",
        "diff",
        "diff CI",
        "lift",
        "lift CI",
        "p",
        "guardrail",
    ]
    .map(String::from)
    .to_vec();
    let rows = report
        .comparisons
        .iter()
        .map(|c| {
            let scale = if c.metric.is_share() { 100.0 } else { 1.0 };
            let guard = c.guardrail.as_ref().map_or_else(String::new, |g| {
                let state = if g.breached {
                    "BREACHED"
                } else if g.non_inferior {
                    "ok"
                } else {
                    "pending"
                };
                format!(
                    "{state}: {} vs limit {} (bound {})",
                    g.on_scale(g.observed),
                    g.on_scale(Some(g.limit)),
                    g.on_scale(g.bound)
                )
            });
            vec![
                match &c.cuped {
                    Some(a) => format!(
                        "{} (CUPED, variance −{:.0}%)",
                        c.metric,
                        a.variance_reduction * 100.0
                    ),
                    None => c.metric.to_string(),
                },
                c.variant.clone(),
                value_of(c, c.baseline_value),
                value_of(c, c.variant_value),
                c.absolute_diff
                    .map_or_else(|| "–".into(), |d| format!("{:+.4}", d * scale)),
                interval(c.ci_low, c.ci_high, scale, 4),
                c.relative_lift
                    .map_or_else(|| "–".into(), |l| format!("{:+.1}%", l * 100.0)),
                interval(
                    c.lift_ci_low.map(|x| x * 100.0),
                    c.lift_ci_high.map(|x| x * 100.0),
                    1.0,
                    1,
                ),
                c.p_value.map_or_else(|| "–".into(), |p| format!("{p:.3}")),
                guard,
            ]
        })
        .collect();
    (header, rows)
}

pub(crate) fn srm_line(report: &Report) -> String {
    let s = &report.srm;
    if !s.stages.is_empty() {
        let per: Vec<String> = s
            .stages
            .iter()
            .map(|st| match st.adjusted_p_value {
                Some(p) => format!("stage {} p = {p:.4}", st.stage),
                None => format!("stage {} not checked", st.stage),
            })
            .collect();
        return format!("SRM per rollout stage (Holm-adjusted): {}", per.join(", "));
    }
    match (s.checked, s.p_value) {
        (true, Some(p)) => format!("SRM: χ² p = {p:.4} over {:?}", s.counts),
        _ => format!("SRM: not checked ({})", s.note.clone().unwrap_or_default()),
    }
}

/// Terminal rendering of the reports.
pub fn to_table(reports: &[Report]) -> String {
    let mut out = String::new();
    for r in reports {
        let _ = writeln!(out, "experiment {}: {}", r.experiment, r.verdict);
        for reason in &r.reasons {
            let _ = writeln!(out, "  - {reason}");
        }
        let _ = writeln!(
            out,
            "baseline {} · {} · {:.0}% confidence, {} · {} users in two variants excluded",
            r.baseline.as_deref().unwrap_or("none"),
            srm_line(r),
            r.confidence * 100.0,
            method_line(r),
            r.data_quality.multiple_variant_users
        );
        for line in side_lines(r) {
            let _ = writeln!(out, "{line}");
        }
        for (header, rows) in [variant_rows(r, false), comparison_rows(r)] {
            let mut t = Table::new();
            t.load_preset(UTF8_FULL_CONDENSED).set_header(header);
            for row in rows {
                t.add_row(row);
            }
            let _ = writeln!(out, "{t}");
        }
        out.push('\n');
    }
    out
}

/// One line per synthetic-check variant and per shadow/mirror mode: traffic beside the verdict.
pub(crate) fn side_lines(r: &Report) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(st) = &r.rollout_stage {
        out.push(format!(
            "compared within rollout stage {}{}: its {} users; {} users first exposed in earlier stages count toward SRM and the blast radius only",
            st.stage,
            st.from.as_ref().map(|f| format!(" (from {f})")).unwrap_or_default(),
            st.users,
            st.earlier_users
        ));
    }
    for c in &r.synthetic_checks {
        out.push(format!(
            "synthetic checks on {}: {} of {} succeeded ({} probes)",
            c.variant,
            pct(c.success_rate),
            c.checks,
            c.users
        ));
    }
    for s in &r.shadow_traffic {
        out.push(format!(
            "{} calls on {}: {} · error rate {} (live {}, p = {}) · p99 {} ms (live {}) · {} of {} results mismatched",
            s.mode,
            s.variant,
            s.requests,
            pct(s.error_rate),
            pct(s.live_error_rate),
            num(s.error_rate_p_value, 3),
            num(s.latency_p99, 1),
            num(s.live_latency_p99, 1),
            pct(s.mismatch_rate),
            s.compared
        ));
    }
    out
}

pub(crate) fn method_line(r: &Report) -> String {
    match r.n_star {
        Some(n_star) => format!("sequential (anytime-valid, N* = {n_star:.0})"),
        None => format!("{} horizon", r.method),
    }
}

/// Markdown rendering of the reports.
pub fn to_markdown(reports: &[Report]) -> String {
    let mut out = String::new();
    for r in reports {
        let _ = writeln!(out, "## {} — **{}**\n", r.experiment, r.verdict);
        for reason in &r.reasons {
            let _ = writeln!(out, "- {reason}");
        }
        let _ = writeln!(
            out,
            "\nBaseline `{}`. {}. {:.0}% confidence, {}.\n",
            r.baseline.as_deref().unwrap_or("none"),
            srm_line(r),
            r.confidence * 100.0,
            method_line(r)
        );
        for line in side_lines(r) {
            let _ = writeln!(out, "- {line}");
        }
        if !r.synthetic_checks.is_empty() || !r.shadow_traffic.is_empty() {
            out.push('\n');
        }
        for (header, rows) in [variant_rows(r, true), comparison_rows(r)] {
            let _ = writeln!(out, "| {} |", header.join(" | "));
            let _ = writeln!(out, "|{}|", vec!["---"; header.len()].join("|"));
            for row in rows {
                let cells: Vec<String> = row.iter().map(|c| c.replace('|', "\\|")).collect();
                let _ = writeln!(out, "| {} |", cells.join(" | "));
            }
            out.push('\n');
        }
    }
    out
}

/// Renders reports in `format`.
pub fn render(reports: &[Report], format: ReportFormat) -> Result<String> {
    Ok(match format {
        ReportFormat::Table => to_table(reports),
        ReportFormat::Markdown => to_markdown(reports),
        ReportFormat::Json => serde_json::to_string_pretty(reports)? + "\n",
    })
}
