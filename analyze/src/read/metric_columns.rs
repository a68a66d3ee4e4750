//! The columns user-defined metrics (`[[metrics]]`, `config::user_metrics`) add to the plan, and
//! the statistics read back from them.
//!
//! In the plan, `analysis_users` gives each user's counts and value sums per kind after first
//! exposure (`kinds`, `kind_counts`, `kind_values`); [`arm_columns`] adds to `analysis_arms` the
//! per-user sums, squares and products each metric needs, and [`UserMetricStats`] is what the
//! tests read, as large as the arms.

use crate::config::user_metrics::{Aggregate, Definition, UserMetric};
use crate::read::queries::sql_literal as literal;
use crate::stats::{MeanStats, RatioStats};

/// The user's value of a per-user metric, over an `analysis_users` row.
fn per_user_value(kinds: &[String], aggregate: Aggregate) -> String {
    let column = match aggregate {
        Aggregate::Count => "kind_counts",
        Aggregate::Sum => "kind_values",
    };
    let terms: Vec<String> = kinds
        .iter()
        .map(|k| {
            format!(
                "COALESCE(CAST(array_element({column}, CAST(array_position(kinds, {}) AS BIGINT)) AS DOUBLE), 0.0)",
                literal(k)
            )
        })
        .collect();
    format!("({})", terms.join(" + "))
}

/// The column of metric `i`'s per-arm sum, sum of squares or (ratios) sum of products.
pub fn column(i: usize, what: &str) -> String {
    format!("user_metric_{i}_{what}")
}

/// The aggregates `analysis_arms` gains for `metrics`: per per-user metric Σx and Σx², per ratio
/// metric Σx·y of its numerator and denominator.
pub fn arm_columns(metrics: &[UserMetric]) -> Vec<String> {
    let value = |i: usize| match &metrics[i].definition {
        Definition::PerUser { kinds, aggregate } => per_user_value(kinds, *aggregate),
        Definition::Ratio { .. } => unreachable!("ratios name per-user metrics (checked in parse)"),
    };
    let mut out = Vec::new();
    for (i, m) in metrics.iter().enumerate() {
        match &m.definition {
            Definition::PerUser { .. } => {
                let x = value(i);
                out.push(format!("SUM({x}) AS {}", column(i, "sum")));
                out.push(format!("SUM({x} * {x}) AS {}", column(i, "sq")));
            }
            Definition::Ratio {
                numerator,
                denominator,
            } => out.push(format!(
                "SUM({} * {}) AS {}",
                value(*numerator),
                value(*denominator),
                column(i, "product")
            )),
        }
    }
    out
}

/// One arm's statistics of one user-defined metric.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum UserMetricStats {
    /// A per-user count or sum: its mean over users, zeros included.
    Mean(MeanStats),
    /// Σ numerator / Σ denominator over users.
    Ratio(RatioStats),
}

/// The statistics of every metric from an arm's `users` and the per-metric sums [`arm_columns`]
/// made (`sums[i]`: (Σx, Σx²) of a per-user metric, (Σx·y, 0) of a ratio).
pub fn arm_stats(metrics: &[UserMetric], users: u64, sums: &[(f64, f64)]) -> Vec<UserMetricStats> {
    let n = users as f64;
    metrics
        .iter()
        .enumerate()
        .map(|(i, m)| match m.definition {
            Definition::PerUser { .. } => UserMetricStats::Mean(MeanStats {
                n,
                sum: sums[i].0,
                sum_sq: sums[i].1,
            }),
            Definition::Ratio {
                numerator,
                denominator,
            } => UserMetricStats::Ratio(RatioStats {
                n,
                sum_x: sums[numerator].0,
                sum_y: sums[denominator].0,
                sum_xx: sums[numerator].1,
                sum_yy: sums[denominator].1,
                sum_xy: sums[i].0,
            }),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ExperimentsFile;

    #[test]
    fn a_ratio_reads_its_parts_sums() {
        let file = ExperimentsFile::parse(
            "[[metrics]]\nname = \"a\"\nkinds = [\"x\"]\n[[metrics]]\nname = \"b\"\nkinds = [\"y\"]\n\
             [[metrics]]\nname = \"r\"\nnumerator = \"a\"\ndenominator = \"b\"",
        )
        .unwrap();
        let metrics = file.metrics();
        let stats = arm_stats(&metrics, 10, &[(3.0, 5.0), (6.0, 8.0), (4.0, 0.0)]);
        assert_eq!(
            stats[2],
            UserMetricStats::Ratio(RatioStats {
                n: 10.0,
                sum_x: 3.0,
                sum_y: 6.0,
                sum_xx: 5.0,
                sum_yy: 8.0,
                sum_xy: 4.0
            })
        );
        assert_eq!(
            stats[0],
            UserMetricStats::Mean(MeanStats {
                n: 10.0,
                sum: 3.0,
                sum_sq: 5.0
            })
        );
    }
}
