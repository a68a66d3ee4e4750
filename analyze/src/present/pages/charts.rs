//! The report pages' charts, drawn by plotters into SVG strings that the pages inline (no network,
//! no script): a forest plot of relative lifts with their CIs and limits, latency CDFs with each
//! variant's p99 marked, and hourly series of error rate and p99.

use plotters::coord::ranged1d::SegmentValue;
use plotters::prelude::*;

use crate::error::{Error, Result};

/// One row of the forest plot: a metric of a variant against the baseline.
#[derive(Debug, Clone, PartialEq)]
pub struct LiftRow {
    /// `error_rate · v2`.
    pub label: String,
    /// Relative lift.
    pub lift: f64,
    /// Its confidence interval.
    pub low: f64,
    pub high: f64,
    /// The guardrail's limit as a lift (a ratio limit k is k − 1), when the metric has one.
    pub limit: Option<f64>,
}

/// One line of a chart: a variant's points.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

const WIDTH: u32 = 760;
const FONT: &str = "sans-serif";

fn color(i: usize) -> RGBColor {
    const COLORS: [RGBColor; 6] = [
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
        RGBColor(214, 39, 40),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
    ];
    COLORS[i % COLORS.len()]
}

fn chart_error(e: impl std::fmt::Display) -> Error {
    Error::Chart(e.to_string())
}

/// The padded range of `values`; `fallback` when there are none.
fn range(values: impl Iterator<Item = f64>, fallback: (f64, f64)) -> (f64, f64) {
    let (lo, hi) = values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    if !lo.is_finite() {
        return fallback;
    }
    let pad = ((hi - lo) * 0.08).max(1e-9);
    (lo - pad, hi + pad)
}

/// Relative lifts with CIs, zero and each guardrail's limit marked.
pub fn forest_plot(rows: &[LiftRow]) -> Result<String> {
    let mut svg = String::new();
    let n = rows.len().max(1);
    {
        let height = 90 + 34 * n as u32;
        let root = SVGBackend::with_string(&mut svg, (WIDTH, height)).into_drawing_area();
        root.fill(&WHITE).map_err(chart_error)?;
        let (x0, x1) = range(
            rows.iter()
                .flat_map(|r| [r.low, r.high, r.lift, 0.0].into_iter().chain(r.limit)),
            (-0.5, 0.5),
        );
        let mut chart = ChartBuilder::on(&root)
            .caption("Relative lift against the baseline, with CI", (FONT, 16))
            .margin(12)
            .x_label_area_size(32)
            .y_label_area_size(230)
            .build_cartesian_2d(x0..x1, (0..n).into_segmented())
            .map_err(chart_error)?;
        let labels: Vec<String> = rows.iter().map(|r| r.label.clone()).collect();
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(n)
            .y_label_formatter(&|v| match v {
                // Rows run top to bottom; segments count from the bottom.
                SegmentValue::CenterOf(i) => n
                    .checked_sub(1 + *i)
                    .and_then(|k| labels.get(k))
                    .cloned()
                    .unwrap_or_default(),
                _ => String::new(),
            })
            .x_label_formatter(&|x| format!("{:+.0}%", x * 100.0))
            .x_desc("lift (variant / baseline − 1)")
            .draw()
            .map_err(chart_error)?;
        let at = |i: usize| SegmentValue::CenterOf(n - 1 - i);
        chart
            .draw_series(std::iter::once(PathElement::new(
                vec![(0.0, SegmentValue::Exact(0)), (0.0, SegmentValue::Last)],
                BLACK.stroke_width(1),
            )))
            .map_err(chart_error)?;
        for (i, r) in rows.iter().enumerate() {
            let c = color(usize::from(r.limit.is_none()));
            chart
                .draw_series(std::iter::once(PathElement::new(
                    vec![(r.low, at(i)), (r.high, at(i))],
                    c.stroke_width(3),
                )))
                .map_err(chart_error)?;
            chart
                .draw_series(std::iter::once(Circle::new((r.lift, at(i)), 5, c.filled())))
                .map_err(chart_error)?;
            if let Some(limit) = r.limit {
                chart
                    .draw_series(std::iter::once(Text::new(
                        "┃ limit",
                        (limit, at(i)),
                        (FONT, 13).into_font().color(&RED),
                    )))
                    .map_err(chart_error)?;
            }
        }
        root.present().map_err(chart_error)?;
    }
    Ok(svg)
}

/// Lines per variant on shared axes, with optional vertical markers (value, label) per series.
pub fn line_chart(
    title: &str,
    x_desc: &str,
    y_desc: &str,
    series: &[Series],
    markers: &[(usize, f64, String)],
    x_label: &dyn Fn(&f64) -> String,
    y_label: &dyn Fn(&f64) -> String,
) -> Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, 340)).into_drawing_area();
        root.fill(&WHITE).map_err(chart_error)?;
        let points = || series.iter().flat_map(|s| s.points.iter());
        let (x0, x1) = range(points().map(|p| p.0), (0.0, 1.0));
        let (mut y0, y1) = range(points().map(|p| p.1), (0.0, 1.0));
        if points().all(|p| p.1 >= 0.0) {
            // Rates and latencies: the axis starts at zero so that changes are not exaggerated.
            y0 = 0.0;
        }
        let mut chart = ChartBuilder::on(&root)
            .caption(title, (FONT, 16))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(64)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(chart_error)?;
        chart
            .configure_mesh()
            .x_desc(x_desc)
            .y_desc(y_desc)
            .x_label_formatter(x_label)
            .y_label_formatter(y_label)
            .draw()
            .map_err(chart_error)?;
        for (i, s) in series.iter().enumerate() {
            let c = color(i);
            chart
                .draw_series(LineSeries::new(s.points.iter().copied(), c.stroke_width(2)))
                .map_err(chart_error)?
                .label(s.name.clone())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(2))
                });
        }
        for (i, x, label) in markers {
            let c = color(*i);
            chart
                .draw_series(std::iter::once(PathElement::new(
                    vec![(*x, y0), (*x, y1)],
                    c.stroke_width(1),
                )))
                .map_err(chart_error)?;
            chart
                .draw_series(std::iter::once(Text::new(
                    label.clone(),
                    (*x, y1 - (y1 - y0) * (0.08 + 0.07 * *i as f64)),
                    (FONT, 12).into_font().color(&c),
                )))
                .map_err(chart_error)?;
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.3))
            .position(SeriesLabelPosition::LowerRight)
            .draw()
            .map_err(chart_error)?;
        root.present().map_err(chart_error)?;
    }
    Ok(svg)
}

/// The empirical CDF of sorted `values`, at most `points` points, up to its 99.9th percentile (so
/// that a few extreme requests do not flatten the curve).
pub fn cdf_points(
    distribution: &crate::stats::LatencyDistribution,
    points: usize,
) -> Vec<(f64, f64)> {
    if distribution.is_empty() || points == 0 {
        return Vec::new();
    }
    let n = distribution.len() as usize;
    let last = ((n as f64 * 0.999).ceil() as usize).clamp(1, n);
    let step = (last / points).max(1);
    let at = |rank: usize| (distribution.order_stat(rank as f64), rank as f64 / n as f64);
    let mut out: Vec<(f64, f64)> = (1..=last).step_by(step).map(at).collect();
    out.push(at(last));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cdf_points_are_increasing_and_stop_at_the_999th_percentile() {
        let values: Vec<f64> = (1..=10_000).map(f64::from).collect();
        let values =
            crate::stats::LatencyDistribution::from_users(values.iter().map(std::slice::from_ref));
        let cdf = cdf_points(&values, 100);
        assert!(cdf.len() <= 102, "{}", cdf.len());
        assert!(cdf.windows(2).all(|w| w[0].0 <= w[1].0 && w[0].1 <= w[1].1));
        assert_eq!(cdf.last().copied(), Some((9_990.0, 0.999)));
        assert!(cdf_points(&Default::default(), 10).is_empty());
    }

    #[test]
    fn charts_are_svg_documents_with_their_labels() {
        let forest = forest_plot(&[
            LiftRow {
                label: "error_rate · v2".into(),
                lift: 1.9,
                low: 1.2,
                high: 2.7,
                limit: Some(1.0),
            },
            LiftRow {
                label: "conversion_rate · v2".into(),
                lift: 0.01,
                low: -0.05,
                high: 0.07,
                limit: None,
            },
        ])
        .unwrap();
        assert!(forest.starts_with("<svg") && forest.contains("error_rate · v2"));
        assert!(forest.contains("limit"));
        let lines = line_chart(
            "p99 by hour",
            "hour",
            "ms",
            &[Series {
                name: "v1".into(),
                points: vec![(0.0, 10.0), (1.0, 12.0)],
            }],
            &[(0, 11.0, "v1 p99".into())],
            &|x| format!("{x:.0}"),
            &|y| format!("{y:.0}"),
        )
        .unwrap();
        assert!(
            lines.starts_with("<svg") && lines.contains("v1 p99") && lines.contains("<polyline")
        );
    }
}
